package plan

import (
	"fmt"
	"strings"
)

// KargOversubscribe is McKernel's kernel argument that lets it run more
// processes and threads than it has CPUs.
const KargOversubscribe = "allow_oversubscribe"

// Oversubscribe reports whether the plan boots McKernel with
// allow_oversubscribe.
func (p *Plan) Oversubscribe() bool {
	for _, k := range strings.Fields(p.Kargs) {
		if k == KargOversubscribe {
			return true
		}
	}
	return false
}

// CheckTasks refuses a plan with fewer LWK CPUs than the tasks the job puts
// on this node. The SPANK plugin runs each node's tasks of a step as
// `mcexec -n <local tasks>`, and mcexec refuses -n larger than the LWK CPU
// count (exit 22), so every task of such a job would fail. ntasks and
// nnodes are the job's task and node counts (SLURM_JOB_NTASKS,
// SLURM_JOB_NUM_NODES); the tasks per node are at least ntasks/nnodes
// rounded up, whatever the distribution. Unknown counts (0) pass, and so
// does a plan that boots McKernel with allow_oversubscribe (the plugin then
// runs each task as its own mcexec on the shared CPUs). The error wraps
// ErrRequest: the user's request, not the node, is at fault.
func CheckTasks(p *Plan, ntasks, nnodes uint32) error {
	if ntasks == 0 || nnodes == 0 || p.Oversubscribe() {
		return nil
	}
	per := (uint64(ntasks) + uint64(nnodes) - 1) / uint64(nnodes)
	if per <= uint64(len(p.CPUs)) {
		return nil
	}
	return fmt.Errorf("plan job %d: %d tasks on this node (%d tasks on %d nodes) but the LWK has %d CPUs: "+
		"ask for more cores (or no cores=), fewer tasks, or a profile with kargs %s: %w",
		p.JobID, per, ntasks, nnodes, len(p.CPUs), KargOversubscribe, ErrRequest)
}
