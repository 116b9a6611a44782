package nodeprep

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysconfine"
)

// Settings are the node's split, from lwk.conf.
type Settings struct {
	// OSCores are the CPUs of the system (lwk.conf OSCores). Required.
	OSCores cpuset.CPUSet
	// SystemNodes and JobNodes split the memory (SystemNUMANodes,
	// JobNUMANodes); both empty when the node is not split yet.
	SystemNodes, JobNodes cpuset.CPUSet
	// SystemMemBytes is the memory the system side needs, used to size
	// NUMA emulation on a node that has too few NUMA nodes. Units: bytes.
	SystemMemBytes uint64
	// PageBytes is the base page size (4096 when 0).
	PageBytes uint64
}

// MaxFakeNodes bounds the NUMA nodes numa=fake is asked for: Debian's
// x86_64 kernel allows 1024 (NODES_SHIFT=10), but every node costs
// per-node kernel data and a longer boot.
const MaxFakeNodes = 64

// FakeNUMA is a numa=fake= proposal for a node with too few NUMA nodes.
type FakeNUMA struct {
	// Nodes is N of numa=fake=N; NodeBytes the size of each.
	Nodes     int    `json:"nodes"`
	NodeBytes uint64 `json:"node_bytes"`
	// SystemNodes and JobNodes are the split to put in lwk.conf after the
	// reboot.
	SystemNodes string `json:"system_nodes"`
	JobNodes    string `json:"job_nodes"`
}

// BlockChange is a memory block to move to another zone.
type BlockChange struct {
	Index int    `json:"index"`
	Node  int    `json:"node"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// IRQChange is an interrupt to move.
type IRQChange struct {
	Number   int      `json:"irq"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Handlers []string `json:"handlers,omitempty"`
}

// Confinement is how system processes are to be confined.
type Confinement struct {
	Mode  sysconfine.Mode `json:"mode"`
	Units []string        `json:"units,omitempty"`
	CPUs  string          `json:"cpus"`
	Mems  string          `json:"mems"`
}

// Plan is what the node needs.
type Plan struct {
	OSCores     string `json:"os_cores"`
	AppCores    string `json:"app_cores"`
	SystemNodes string `json:"system_nodes"`
	JobNodes    string `json:"job_nodes"`
	// KernelArgs are the boot parameters to add; Missing those of them
	// the running kernel was not booted with.
	KernelArgs []string `json:"kernel_args"`
	Missing    []string `json:"kernel_args_missing"`
	// FakeNUMA is set when NUMA emulation is proposed.
	FakeNUMA *FakeNUMA `json:"fake_numa,omitempty"`
	// MovableBytes is the predicted ZONE_MOVABLE per node with the
	// proposed movablecore= (node ID as key). Units: bytes.
	MovableBytes map[int]uint64 `json:"predicted_movable_bytes,omitempty"`
	// JobCpusetMems are the memory nodes every job cpuset must hold: the
	// job nodes, plus a system node when job nodes have no Normal memory
	// (a cpuset with only Movable memory makes pipe and ramfs writes fail
	// with ENOMEM, Linux ≥ 5.16).
	JobCpusetMems string `json:"job_cpuset_mems"`
	// Blocks, IRQs and Confine are the run-time changes apply makes.
	Blocks  []BlockChange `json:"blocks"`
	IRQs    []IRQChange   `json:"irqs"`
	Confine Confinement   `json:"confine"`
	// Notes explain the choices and what the plan cannot do.
	Notes []string `json:"notes"`
}

// MakePlan plans the node. It is pure.
func MakePlan(m *Machine, s Settings) (*Plan, error) {
	if s.OSCores.IsEmpty() {
		return nil, errors.New("plan: OSCores is empty")
	}
	if s.PageBytes == 0 {
		s.PageBytes = 4096
	}
	all := cpuset.New()
	for _, c := range m.Topo.CPUs {
		all = all.Union(cpuset.New(c.ID))
	}
	if !s.OSCores.IsSubsetOf(all) {
		return nil, fmt.Errorf("plan: OS cores %s not all on this node (cpus %s)", s.OSCores, all)
	}
	memNodes := m.Topo.MemoryNodes()
	p := &Plan{OSCores: s.OSCores.String(), AppCores: all.Difference(s.OSCores).String(), MovableBytes: map[int]uint64{}}
	sys, job := s.SystemNodes, s.JobNodes
	if sys.IsEmpty() || job.IsEmpty() {
		if err := planFakeNUMA(m, s, memNodes, p); err != nil {
			return nil, err
		}
		sys, job = memNodes, cpuset.New()
	} else {
		if missing := sys.Union(job).Difference(memNodes); !missing.IsEmpty() {
			return nil, fmt.Errorf("plan: NUMA nodes %s have no memory on this node (memory nodes %s)", missing, memNodes)
		}
		planMovableCore(m, s, sys, job, p)
	}
	p.SystemNodes, p.JobNodes = sys.String(), job.String()
	p.KernelArgs = append(p.KernelArgs, "irqaffinity="+s.OSCores.String())
	for _, a := range p.KernelArgs {
		if !slices.Contains(m.Cmdline, a) {
			p.Missing = append(p.Missing, a)
		}
	}

	for _, b := range m.Topo.MemoryBlocks {
		if !job.Contains(b.NUMANode) || b.State != "online" || len(b.ValidZones) == 0 || b.ValidZones[0] == memblock.ZoneMovable {
			continue
		}
		p.Blocks = append(p.Blocks, BlockChange{Index: b.Index, Node: b.NUMANode, From: b.ValidZones[0], To: memblock.ZoneMovable})
	}
	for _, irq := range m.IRQs {
		if irq.Affinity.IsSubsetOf(s.OSCores) {
			continue
		}
		p.IRQs = append(p.IRQs, IRQChange{Number: irq.Number, From: irq.Affinity.String(), To: s.OSCores.String(), Handlers: irq.Handlers})
	}
	p.Confine = Confinement{Mode: m.Confine, Units: m.Units, CPUs: s.OSCores.String(), Mems: sys.String()}
	switch m.Confine {
	case sysconfine.ModeNone:
		p.Notes = append(p.Notes, "no systemd and no cpuset hierarchy: system processes cannot be confined")
	case sysconfine.ModeSystemd:
		p.Notes = append(p.Notes, "systemd applies AllowedCPUs=/AllowedMemoryNodes= only with the unified cgroup (v2) hierarchy")
	}
	return p, nil
}

// planFakeNUMA proposes numa=fake on a node whose hardware has one memory
// node: equal-sized nodes, each a whole number of memory blocks, sized so
// the system side gets what it needs in whole nodes.
func planFakeNUMA(m *Machine, s Settings, memNodes cpuset.CPUSet, p *Plan) error {
	if memNodes.Size() > 1 {
		p.Notes = append(p.Notes, fmt.Sprintf("the node has %d memory nodes (%s) but lwk.conf does not split them: set SystemNUMANodes and JobNUMANodes", memNodes.Size(), memNodes))
		return nil
	}
	var total uint64
	for _, n := range m.Topo.Nodes {
		total += n.MemTotalBytes
	}
	block := m.Topo.MemoryBlockBytes
	if block == 0 {
		block = 128 << 20
	}
	need := s.SystemMemBytes
	if need == 0 {
		return errors.New("plan: one NUMA node and no split in lwk.conf: give the system side's memory (--system-mem) to size NUMA emulation")
	}
	if need >= total {
		return fmt.Errorf("plan: system memory %d MiB is not below the node's %d MiB", need>>20, total>>20)
	}
	size := roundUp(need, block)
	n := int(total / size)
	if n > MaxFakeNodes {
		n = MaxFakeNodes
		size = total / uint64(n) / block * block
	}
	if n < 2 {
		return fmt.Errorf("plan: %d MiB of memory cannot hold a %d MiB system node and a job node", total>>20, size>>20)
	}
	sysNodes := int((need + size - 1) / size)
	if sysNodes >= n {
		return fmt.Errorf("plan: %d emulated nodes of %d MiB leave none for jobs", n, size>>20)
	}
	f := &FakeNUMA{Nodes: n, NodeBytes: size, SystemNodes: span(0, sysNodes-1), JobNodes: span(sysNodes, n-1)}
	p.FakeNUMA = f
	p.KernelArgs = append(p.KernelArgs, fmt.Sprintf("numa=fake=%d", n))
	p.Notes = append(p.Notes,
		fmt.Sprintf("one NUMA node: numa=fake=%d gives about %d MiB per node; after the reboot set SystemNUMANodes=%s JobNUMANodes=%s in lwk.conf and plan again for boot-time MOVABLE", n, size>>20, f.SystemNodes, f.JobNodes),
		"numa=fake splits physical addresses: holes make the nodes slightly unequal, and CPUs are spread over the emulated nodes")
	return nil
}

func span(a, b int) string {
	if a == b {
		return fmt.Sprint(a)
	}
	return fmt.Sprintf("%d-%d", a, b)
}

func roundUp(v, to uint64) uint64 { return (v + to - 1) / to * to }

// planMovableCore picks the largest movablecore= (whole memory blocks) that
// leaves every system node without ZONE_MOVABLE, and predicts each node's
// Movable memory with it.
func planMovableCore(m *Machine, s Settings, sys, job cpuset.CPUSet, p *Plan) {
	var spans []nodeSpan
	idx := map[int]int{}
	for _, z := range m.Zones {
		if z.Present == 0 {
			continue
		}
		i, ok := idx[z.Node]
		if !ok {
			i = len(spans)
			idx[z.Node] = i
			spans = append(spans, nodeSpan{node: z.Node})
		}
		switch z.Name {
		case "Normal", "Movable":
			spans[i].high += z.Present
		default:
			spans[i].low += z.Present
		}
	}
	block := m.Topo.MemoryBlockBytes
	if block == 0 {
		block = 128 << 20
	}
	blockPages := block / s.PageBytes
	var jobHigh, jobAll uint64
	for _, ns := range spans {
		if job.Contains(ns.node) {
			jobHigh += ns.high
			jobAll += ns.low + ns.high
		}
	}
	systemClean := func(mv map[int]uint64) bool {
		for n, v := range mv {
			if sys.Contains(n) && v > 0 {
				return false
			}
		}
		return true
	}
	// Binary search over whole blocks: system Movable grows with
	// movablecore.
	lo, hi := uint64(0), jobHigh/blockPages
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if systemClean(movableSplit(slices.Clone(spans), mid*blockPages)) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	movPages := lo * blockPages
	if movPages == 0 {
		p.Notes = append(p.Notes, "no movablecore= keeps the system nodes free of ZONE_MOVABLE: the job nodes' memory is not in the highest zone (put job nodes above 4 GiB)")
		return
	}
	pred := movableSplit(slices.Clone(spans), movPages)
	var jobMov uint64
	normalLeft := false
	for n, v := range pred {
		p.MovableBytes[n] = v * s.PageBytes
		if job.Contains(n) {
			jobMov += v
			ns := spans[idx[n]]
			if ns.low+ns.high-v >= blockPages {
				normalLeft = true
			}
		}
	}
	p.KernelArgs = append(p.KernelArgs, fmt.Sprintf("movablecore=%dM", movPages*s.PageBytes>>20))
	p.Notes = append(p.Notes, fmt.Sprintf("movablecore= spreads kernel memory evenly over the nodes (Linux 6.1 find_zone_movable_pfns_for_nodes); predicted Movable: %d%% of job-node memory, none on system nodes", pct(jobMov, jobAll)),
		"movable_node does the same where the firmware marks job memory hot-pluggable in SRAT")
	normal := cpuset.New()
	if normalLeft {
		normal = job
	}
	mems := JobCpusetMems(job, sys, normal)
	if !mems.Equals(job) {
		p.Notes = append(p.Notes, fmt.Sprintf("job nodes keep no Normal memory after this boot: every job cpuset must also hold system node %s, or pipe and ramfs writes fail with ENOMEM", mems.Difference(job)))
	}
	p.JobCpusetMems = mems.String()
}

func pct(a, b uint64) int {
	if b == 0 {
		return 0
	}
	return int(a * 100 / b)
}

// Format writes the plan for people.
func (p *Plan) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "OS cores %s, app cores %s; system nodes %s, job nodes %s\n", p.OSCores, p.AppCores, p.SystemNodes, p.JobNodes)
	fmt.Fprintf(&b, "kernel command line: %s\n", strings.Join(p.KernelArgs, " "))
	if len(p.Missing) > 0 {
		fmt.Fprintf(&b, "  not on the running kernel's command line: %s\n", strings.Join(p.Missing, " "))
	}
	if p.JobCpusetMems != "" {
		fmt.Fprintf(&b, "job cpuset mems: %s\n", p.JobCpusetMems)
	}
	fmt.Fprintf(&b, "memory blocks to make Movable: %d\n", len(p.Blocks))
	for _, c := range p.Blocks {
		fmt.Fprintf(&b, "  memory%d (node %d): %s -> %s\n", c.Index, c.Node, c.From, c.To)
	}
	fmt.Fprintf(&b, "IRQs to move to %s: %d\n", p.OSCores, len(p.IRQs))
	fmt.Fprintf(&b, "confine system processes (%s) to cpus %s, mems %s", p.Confine.Mode, p.Confine.CPUs, p.Confine.Mems)
	if len(p.Confine.Units) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(p.Confine.Units, " "))
	}
	b.WriteString("\n")
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
