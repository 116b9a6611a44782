package teardown

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
)

// Confiner is the confinement of jobs' Linux side in cgroups
// (proxycgroup.Manager): what teardown needs of it.
type Confiner interface {
	// Members lists the processes still in the job's cgroups.
	Members(jobID uint32) ([]int, error)
	// Remove removes the job's cgroups (EBUSY retried, ENOENT success).
	Remove(jobID uint32) error
}

// unconfine removes the job's cgroups once its processes are gone, and the
// record the task wrapper joins by. It runs whether or not the journal
// knows of the confinement: the directories follow from the job ID, so a
// prolog killed between creating them and journaling the step leaves
// nothing behind either. Slurm has normally ended the job's processes
// before the epilog and the OS destroy has stopped the proxies that held
// the device; whatever is still in the cgroups belongs to this job, which
// is over, and is stopped like the holders.
func (d Deps) unconfine(ctx context.Context, log *slog.Logger, jobID uint32, res *Result) error {
	if err := proxycgroup.RemoveRecord(d.RunDir, jobID); err != nil {
		return err
	}
	if d.Cgroups == nil {
		return nil
	}
	pids, err := d.Cgroups.Members(jobID)
	if err != nil {
		return fmt.Errorf("list processes of job %d's cgroups: %w", jobID, err)
	}
	// The user's step saw only "task N: Killed" (SIGKILL, exit code 0:9):
	// say here, in slurmd's log, why.
	if s, ok := d.Cgroups.(interface {
		Stats(uint32) (proxycgroup.Stats, error)
	}); ok {
		if st, err := s.Stats(jobID); err == nil && st.OOMKills > 0 {
			log.Warn("the kernel killed proxies of this job for exceeding the proxy memory limit (ProxyMemory); their tasks ended with SIGKILL",
				"oom_kills", st.OOMKills, "memory_max_bytes", st.MemoryMaxBytes)
		}
	}
	if len(pids) > 0 {
		log.Info("stopping processes left in the job's cgroups", "pids", pids)
		signalAll(pids, syscall.SIGTERM)
		deadline := time.Now().Add(d.KillGrace)
		for len(pids) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			if pids, err = d.Cgroups.Members(jobID); err != nil {
				return fmt.Errorf("list processes of job %d's cgroups: %w", jobID, err)
			}
		}
		if len(pids) > 0 {
			signalAll(pids, syscall.SIGKILL)
			res.Killed = append(res.Killed, pids...)
			for end := time.Now().Add(5 * time.Second); len(pids) > 0 && time.Now().Before(end) && ctx.Err() == nil; {
				time.Sleep(20 * time.Millisecond)
				if pids, err = d.Cgroups.Members(jobID); err != nil {
					return fmt.Errorf("list processes of job %d's cgroups: %w", jobID, err)
				}
			}
		}
	}
	// Remove retries EBUSY with backoff while killed processes are reaped.
	if err := d.Cgroups.Remove(jobID); err != nil {
		return fmt.Errorf("%w: %w", err, ErrNodeUnusable)
	}
	res.Cgroups = true
	return nil
}

// signalAll signals the processes found in the job's own cgroups; ESRCH
// (already gone) is fine. A PID listed by the cgroup a moment ago that was
// reused meanwhile would belong to a new process placed in that cgroup,
// which only the job can do.
func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}
