package lwknode

import (
	"fmt"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// PlanRequest is a plan asked for by hand (lwkctl plan, lwk-prolog
// --dry-run): nothing is queried from IHK or Slurm.
type PlanRequest struct {
	// Config is the node configuration; SysfsRoot in it says where the
	// topology is read.
	Config *config.Config
	JobID  uint32
	// Spec is the --lwk-mode specification.
	Spec string
	// CPUs are the job's CPUs in Linux numbering (list syntax); Mem is the
	// job's memory on the node with a unit ("10G").
	CPUs, Mem string
}

// DryRun plans without touching the machine.
func DryRun(r PlanRequest) (*plan.Plan, error) {
	req, err := lwkmode.Parse(r.Spec)
	if err != nil {
		return nil, err
	}
	if req.Off {
		return nil, fmt.Errorf("lwk-mode %q: off means a Linux job; there is nothing to plan", r.Spec)
	}
	if strings.TrimSpace(r.CPUs) == "" {
		return nil, fmt.Errorf("--cpus: the job's cpus are required")
	}
	cpus, err := cpuset.Parse(r.CPUs)
	if err != nil {
		return nil, fmt.Errorf("--cpus %q: %w", r.CPUs, err)
	}
	mem, err := lwkmode.ParseSize(r.Mem)
	if err != nil {
		return nil, fmt.Errorf("--mem %q: %w", r.Mem, err)
	}
	topo, err := topology.ReadLayout(r.Config.SysfsRoot)
	if err != nil {
		return nil, err
	}
	return plan.Make(plan.Input{
		Topology: topo,
		Config:   r.Config,
		JobID:    r.JobID,
		Alloc:    plan.Allocation{CPUs: cpus, MemoryBytes: mem},
		Request:  req,
	})
}
