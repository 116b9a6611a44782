package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
)

// planJSON is the plan's stable JSON form; lwkctl plan --json prints it and
// the journal stores it. CPU sets use the kernel's list syntax.
type planJSON struct {
	JobID       uint32         `json:"job_id"`
	Profile     string         `json:"profile"`
	Image       string         `json:"image"`
	Kargs       string         `json:"kargs"`
	LWKCPUs     string         `json:"lwk_cpus"`
	CPUOrder    []int          `json:"lwk_cpu_order"`
	Memory      []ihk.MemChunk `json:"memory"`
	MemoryBytes uint64         `json:"memory_bytes"`
	NUMAPolicy  string         `json:"numa_policy"`
	Proxy       proxyJSON      `json:"proxy"`
	IKCMap      []ihk.IKCRoute `json:"ikc_map,omitempty"`
	LWKNUMA     []NUMAID       `json:"lwk_numa,omitempty"`
	// Defrag is present only when the profile defragments before reserving.
	Defrag *config.DefragPolicy `json:"defrag,omitempty"`
}

type proxyJSON struct {
	CPUs        string `json:"cpus"`
	MemoryBytes uint64 `json:"memory_bytes"`
	CPUQuotaUS  int64  `json:"cpu_quota_us"`
	CPUPeriodUS int64  `json:"cpu_period_us"`
	BatchCPUs   string `json:"batch_cpus"`
	Mems        string `json:"mems"`
}

// MarshalJSON writes the stable JSON form.
func (p *Plan) MarshalJSON() ([]byte, error) {
	mem := p.Memory
	if mem == nil {
		mem = []ihk.MemChunk{}
	}
	var defrag *config.DefragPolicy
	if p.Defrag.Enabled {
		d := p.Defrag
		defrag = &d
	}
	return json.Marshal(planJSON{
		Defrag:      defrag,
		JobID:       p.JobID,
		Profile:     p.Profile,
		Image:       p.Image,
		Kargs:       p.Kargs,
		LWKCPUs:     p.CPUSet().String(),
		CPUOrder:    p.CPUs,
		Memory:      mem,
		MemoryBytes: p.MemoryBytes(),
		NUMAPolicy:  string(p.NUMAPolicy),
		Proxy: proxyJSON{
			CPUs:        p.Proxy.CPUs.String(),
			MemoryBytes: p.Proxy.MemoryBytes,
			CPUQuotaUS:  p.Proxy.CPUQuotaUS,
			CPUPeriodUS: p.Proxy.CPUPeriodUS,
			BatchCPUs:   p.Proxy.BatchCPUs.String(),
			Mems:        p.Proxy.Mems.String(),
		},
		IKCMap:  p.IKCMap,
		LWKNUMA: p.LWKNUMA,
	})
}

// UnmarshalJSON reads the stable JSON form back, checking that the CPU order
// and the CPU list agree.
func (p *Plan) UnmarshalJSON(b []byte) error {
	var j planJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	proxyCPUs, err := cpuset.Parse(j.Proxy.CPUs)
	if err != nil {
		return fmt.Errorf("plan proxy cpus %q: %w", j.Proxy.CPUs, err)
	}
	// Absent in journals written before the batch step was confined.
	batchCPUs, err := cpuset.Parse(j.Proxy.BatchCPUs)
	if err != nil {
		return fmt.Errorf("plan proxy batch cpus %q: %w", j.Proxy.BatchCPUs, err)
	}
	mems, err := cpuset.Parse(j.Proxy.Mems)
	if err != nil {
		return fmt.Errorf("plan proxy mems %q: %w", j.Proxy.Mems, err)
	}
	lwk, err := cpuset.Parse(j.LWKCPUs)
	if err != nil {
		return fmt.Errorf("plan lwk cpus %q: %w", j.LWKCPUs, err)
	}
	if !lwk.Equals(cpuset.New(j.CPUOrder...)) || len(j.CPUOrder) != lwk.Size() {
		return fmt.Errorf("plan: lwk_cpu_order %v does not match lwk_cpus %s", j.CPUOrder, j.LWKCPUs)
	}
	var defrag config.DefragPolicy
	if j.Defrag != nil {
		defrag = *j.Defrag
	}
	*p = Plan{
		Defrag:     defrag,
		JobID:      j.JobID,
		Profile:    j.Profile,
		Image:      j.Image,
		Kargs:      j.Kargs,
		CPUs:       j.CPUOrder,
		Memory:     j.Memory,
		NUMAPolicy: lwkmode.NUMAPolicy(j.NUMAPolicy),
		Proxy: Proxy{
			CPUs:        proxyCPUs,
			MemoryBytes: j.Proxy.MemoryBytes,
			CPUQuotaUS:  j.Proxy.CPUQuotaUS,
			CPUPeriodUS: j.Proxy.CPUPeriodUS,
			BatchCPUs:   batchCPUs,
			Mems:        mems,
		},
		IKCMap:  j.IKCMap,
		LWKNUMA: j.LWKNUMA,
	}
	return nil
}

// Format writes the plan for a human.
func (p *Plan) Format(w io.Writer) error {
	var mem []string
	for _, c := range p.Memory {
		mem = append(mem, fmt.Sprintf("node %d: %s", c.NUMANode, FormatBytes(c.Bytes)))
	}
	order := make([]string, len(p.CPUs))
	for i, c := range p.CPUs {
		order[i] = fmt.Sprint(c)
	}
	_, err := fmt.Fprintf(w, `job %d: lwk profile %s
  image:      %s
  kargs:      %s
  lwk cpus:   %s (assign order %s)
  memory:     %s total, numa=%s
              %s
  proxies:    cpus %s, memory %s, cpu quota %dus per %dus
  batch step: cpus %s
  ikc map:    %s
  lwk numa:   %s (linux:lwk)%s
`, p.JobID, p.Profile, p.Image, p.Kargs, p.CPUSet(), strings.Join(order, ","),
		FormatBytes(p.MemoryBytes()), p.NUMAPolicy, strings.Join(mem, ", "),
		p.Proxy.CPUs, FormatBytes(p.Proxy.MemoryBytes), p.Proxy.CPUQuotaUS, p.Proxy.CPUPeriodUS, p.Proxy.BatchCPUs,
		orNone(ihk.FormatIKCMap(p.IKCMap)), orNone(FormatNUMAMap(p.LWKNUMA)), numaNote(p))
	return err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func numaNote(p *Plan) string {
	if p.NUMAIdentical() {
		return ""
	}
	return "; the LWK numbers nodes differently from Linux"
}
