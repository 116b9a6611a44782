// Package nodestatus gathers what lwkctl status shows: the IHK backend, the
// CPUs and memory chunks IHK holds in reserve, each OS instance with its
// status and resources, and the jobs that have journals with the step each
// reached. It only reads: IHK queries (QUERY_CPU, QUERY_MEM, STATUS, and the
// per-OS queries), the journal directory and the run markers.
package nodestatus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/retry"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// Status is the node's LWK state. A pristine node has no reserved CPUs, no
// reserved memory, no instances and no jobs.
type Status struct {
	Backend        string         `json:"backend"`
	ReservedCPUs   string         `json:"reserved_cpus"`
	ReservedMemory []ihk.MemChunk `json:"reserved_memory"`
	OSInstances    []Instance     `json:"os_instances"`
	Jobs           []Job          `json:"jobs"`
	// Cgroups are the jobs' proxy cgroups (see AddCgroups).
	Cgroups []Cgroup `json:"cgroups"`
}

// Instance is one OS instance.
type Instance struct {
	Index  int            `json:"index"`
	Status string         `json:"status"`
	CPUs   string         `json:"cpus"`
	Memory []ihk.MemChunk `json:"memory"`
	// Error says why the instance could not be queried, if it could not.
	Error string `json:"error,omitempty"`
}

// Job is one job with a journal or a run marker.
type Job struct {
	JobID uint32 `json:"job_id"`
	// Step and State are the journal's last step and its state.
	Step  string `json:"step"`
	State string `json:"state"`
	// OS is the job's instance, -1 if it has none (yet).
	OS int `json:"os"`
	// LWKNUMAMap is how the job's LWK numbers its NUMA nodes, "linux:lwk"
	// pairs as LWK_NUMA_MAP gives them to the job; empty when unknown.
	LWKNUMAMap string `json:"lwk_numa_map,omitempty"`
	// Error says why the journal could not be read, if it could not.
	Error string `json:"error,omitempty"`
}

// Pristine reports whether IHK holds nothing and no job has state.
func (s *Status) Pristine() bool {
	return s.ReservedCPUs == "" && len(s.ReservedMemory) == 0 && len(s.OSInstances) == 0 && len(s.Jobs) == 0 &&
		len(s.Cgroups) == 0
}

// IHK is what lwkctl status asks of the IHK driver: queries only.
type IHK interface {
	ReservedCPUs(ctx context.Context) ([]int, error)
	ReservedMemory(ctx context.Context) ([]ihk.MemChunk, error)
	ListOS(ctx context.Context) ([]int, error)
	Status(ctx context.Context, os int) (ihk.Status, error)
	AssignedCPUs(ctx context.Context, os int) ([]int, error)
	AssignedMemory(ctx context.Context, os int) ([]ihk.MemChunk, error)
}

// Journals is the read side of the journal store (journal.Reader).
type Journals interface {
	List() ([]uint32, error)
	Read(jobID uint32) (*journal.Record, error)
}

// Collect reads the node's state.
func Collect(ctx context.Context, backend string, c IHK, store Journals, runDir string) (*Status, error) {
	s := &Status{Backend: backend, ReservedMemory: []ihk.MemChunk{}, OSInstances: []Instance{}, Jobs: []Job{}, Cgroups: []Cgroup{}}
	cpus, err := retry.Value(func() ([]int, error) { return c.ReservedCPUs(ctx) })
	if err != nil {
		return nil, fmt.Errorf("query reserved cpus: %w", err)
	}
	s.ReservedCPUs = cpuset.New(cpus...).String()
	mem, err := retry.Value(func() ([]ihk.MemChunk, error) { return c.ReservedMemory(ctx) })
	if err != nil {
		return nil, fmt.Errorf("query reserved memory: %w", err)
	}
	if mem != nil {
		s.ReservedMemory = mem
	}
	ids, err := retry.Value(func() ([]int, error) { return c.ListOS(ctx) })
	if err != nil {
		return nil, fmt.Errorf("list os instances: %w", err)
	}
	for _, idx := range ids {
		s.OSInstances = append(s.OSInstances, instance(ctx, c, idx))
	}
	jobs, err := jobs(store, runDir)
	if err != nil {
		return nil, err
	}
	s.Jobs = jobs
	return s, nil
}

func instance(ctx context.Context, c IHK, idx int) Instance {
	in := Instance{Index: idx, Memory: []ihk.MemChunk{}}
	var errs []string
	if st, err := retry.Value(func() (ihk.Status, error) { return c.Status(ctx, idx) }); err == nil {
		in.Status = st.String()
	} else {
		errs = append(errs, err.Error())
	}
	if cpus, err := retry.Value(func() ([]int, error) { return c.AssignedCPUs(ctx, idx) }); err == nil {
		in.CPUs = cpuset.New(cpus...).String()
	} else {
		errs = append(errs, err.Error())
	}
	if mem, err := retry.Value(func() ([]ihk.MemChunk, error) { return c.AssignedMemory(ctx, idx) }); err == nil && mem != nil {
		in.Memory = mem
	} else if err != nil {
		errs = append(errs, err.Error())
	}
	in.Error = strings.Join(errs, "; ")
	return in
}

func jobs(store Journals, runDir string) ([]Job, error) {
	ids, err := store.List()
	if err != nil {
		return nil, fmt.Errorf("list journals: %w", err)
	}
	markers, err := jobmarker.List(runDir)
	if err != nil {
		return nil, err
	}
	seen := map[uint32]bool{}
	out := []Job{}
	for _, id := range ids {
		seen[id] = true
		j := Job{JobID: id, OS: -1}
		rec, err := store.Read(id)
		if err != nil {
			j.Error = err.Error()
			out = append(out, j)
			continue
		}
		if last, ok := rec.Last(); ok {
			j.Step, j.State = last.Name, string(last.State)
		}
		if idx, ok := steps.OSIndex(rec); ok {
			j.OS = idx
		}
		var p plan.Plan
		if len(rec.Plan) > 0 && json.Unmarshal(rec.Plan, &p) == nil {
			j.LWKNUMAMap = plan.FormatNUMAMap(p.LWKNUMA)
		}
		out = append(out, j)
	}
	for _, id := range markers {
		if seen[id] {
			continue
		}
		j := Job{JobID: id, OS: -1, Error: "run marker without a journal"}
		if idx, err := jobmarker.Read(runDir, id); err == nil {
			j.OS = idx
		}
		out = append(out, j)
	}
	return out, nil
}

// WriteJSON writes the status as indented JSON.
func (s *Status) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteText writes the status for a human.
func (s *Status) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "backend:         %s\n", s.Backend)
	fmt.Fprintf(&b, "reserved cpus:   %s\n", orNone(s.ReservedCPUs))
	fmt.Fprintf(&b, "reserved memory: %s\n", chunks(s.ReservedMemory))
	if len(s.OSInstances) == 0 {
		b.WriteString("os instances:    none\n")
	}
	for _, in := range s.OSInstances {
		fmt.Fprintf(&b, "%-17s%s, cpus %s, memory %s", fmt.Sprintf("os %d:", in.Index), in.Status, orNone(in.CPUs), chunks(in.Memory))
		if in.Error != "" {
			fmt.Fprintf(&b, " (error: %s)", in.Error)
		}
		b.WriteString("\n")
	}
	if len(s.Jobs) == 0 {
		b.WriteString("jobs:            none\n")
	}
	for _, j := range s.Jobs {
		fmt.Fprintf(&b, "%-17sstep %s (%s), os %d", fmt.Sprintf("job %d:", j.JobID), orNone(j.Step), orNone(j.State), j.OS)
		if j.LWKNUMAMap != "" {
			fmt.Fprintf(&b, ", lwk numa (linux:lwk) %s", j.LWKNUMAMap)
		}
		if j.Error != "" {
			fmt.Fprintf(&b, " (error: %s)", j.Error)
		}
		b.WriteString("\n")
	}
	for _, c := range s.Cgroups {
		fmt.Fprintf(&b, "%-17scgroups %v", fmt.Sprintf("job %d:", c.JobID), c.Dirs)
		if c.Problem != "" {
			fmt.Fprintf(&b, " (problem: %s)", c.Problem)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func chunks(cs []ihk.MemChunk) string {
	if len(cs) == 0 {
		return "none"
	}
	var parts []string
	var total uint64
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s@%d", plan.FormatBytes(c.Bytes), c.NUMANode))
		total += c.Bytes
	}
	return fmt.Sprintf("%s (%s)", plan.FormatBytes(total), strings.Join(parts, ", "))
}
