// Package jobhook is the work of a job's prolog and epilog on a node: for
// a job that asks for an LWK, plan and boot it (Prolog), and tear it down
// (Epilog), with the cancel, requeue or drain verdict when the prolog
// cannot boot. It takes the job's environment, the configuration and where
// to write the line slurmd shows as its own arguments, so that the same
// code runs as the lwk-prolog and lwk-epilog programs and inside the node
// service (lwk-monitor, package hookserver), which starts no process per
// job.
package jobhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/apply"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
	"github.com/slurm-lwk/slurm-lwk/pkg/verdict"
)

// Call is one run of a hook.
type Call struct {
	// Environ is the job's environment as slurmd gives it to a prolog
	// (NAME=VALUE).
	Environ []string
	// ConfigPath is the lwk.conf the configuration comes from; Config is
	// that file loaded, or nil to load it here.
	ConfigPath string
	Config     *config.Config
	// Verbose logs to Stderr at debug level instead of to LogDir.
	Verbose bool
	// Start is when the run began (the "done" log line's time).
	Start time.Time
	// Stderr takes what slurmd would show of the hook: a line for a job
	// cancelled, requeued or cleaned up after.
	Stderr io.Writer
	// Resident: the hook runs inside the node service, not as a program of
	// its own (see lwknode.Node.Resident). A resident prolog refuses
	// TestKillAfterStep and injects no simulator faults, both of which act
	// on the process.
	Resident bool
}

// config returns the call's configuration, loading it when not given.
func (c Call) config() (*config.Config, error) {
	if c.Config != nil {
		return c.Config, nil
	}
	return config.Load(c.ConfigPath)
}

// open opens the node for the call.
func (c Call) open(cfg *config.Config, log *slog.Logger, withFaults bool) (*lwknode.Node, error) {
	node, err := lwknode.Open(cfg, log, withFaults)
	if err != nil {
		return nil, err
	}
	node.Resident = c.Resident
	return node, nil
}

// ErrJobEnded: the job attempt's epilog ran before this prolog took the
// node lock.
var ErrJobEnded = errors.New("the job's epilog already ran on this node; no LWK booted")

// Prolog boots the LWK the job's environment asks for. A Linux job returns
// nil at once. When the request cannot be met it cancels or requeues the
// job through Slurm and returns nil; it returns an error only when the node
// is at fault, and slurmd then drains it.
func Prolog(ctx context.Context, c Call) error {
	env, err := slurm.FromEnviron(c.Environ)
	var specErr *slurm.SpecError
	if err != nil && !errors.As(err, &specErr) {
		return fmt.Errorf("job environment: %w", err)
	}
	if specErr == nil && lwknode.LinuxJob(env.Spec) {
		return nil
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	log, closer := lwknode.Logger(cfg.LogDir, "lwk-prolog", c.Verbose)
	defer closer.Close()
	log = log.With("job", env.JobID)
	if specErr != nil {
		// A spec that never passed the plugin's submit check (another
		// plugstack, libslurm bindings): the user's error.
		err = fmt.Errorf("--lwk-mode: %w", specErr)
	} else {
		var req lwkmode.Request
		req, err = lwkmode.Parse(env.Spec)
		if err == nil && req.Off {
			return nil
		}
		if err != nil {
			// The submit-side check let it through (a plugin or version
			// skew): still the user's request, not the node's fault.
			err = fmt.Errorf("%w: %w", err, plan.ErrRequest)
		} else {
			err = c.boot(ctx, cfg, env, req, log)
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrJobEnded) {
		// The job is over: nothing to boot, nothing to cancel or drain.
		fmt.Fprintf(c.Stderr, "lwk: job %d: %s\n", env.JobID, err)
		return nil
	}
	// Cancel, requeue or drain (pkg/verdict). The calls are bounded apart
	// from ctx: slurmd's timeout must not stop us halfway.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	res, herr := verdict.Handle(hctx, verdict.Slurm{
		Runner: lwknode.ScontrolRunner(env), Scontrol: cfg.ScontrolPath, Scancel: cfg.ScancelPath,
	}, env, err)
	switch res.Action {
	case verdict.Cancel:
		log.Warn("request cannot be met on this node; job cancelled", "err", err, "decided", res.Decided.String())
		fmt.Fprintf(c.Stderr, "lwk: job %d cancelled: %s\n", env.JobID, lwknode.OneLine(err))
	case verdict.Requeue:
		log.Warn("another job's LWK is on this node; job requeued", "err", err)
		fmt.Fprintf(c.Stderr, "lwk: job %d requeued: %s\n", env.JobID, lwknode.OneLine(err))
	default:
		if res.Decided != verdict.Drain {
			log.Error("cannot "+res.Decided.String()+" the job; draining the node", "err", herr)
		}
	}
	return herr
}

// boot plans and boots the job's LWK.
func (c Call) boot(ctx context.Context, cfg *config.Config, env slurm.JobEnv, req lwkmode.Request, log *slog.Logger) error {
	if cfg.TestKillAfterStep != "" && c.Resident {
		return fmt.Errorf("TestKillAfterStep %s: kills the prolog's process, which is the node service here; run lwk-prolog", cfg.TestKillAfterStep)
	}
	// The simulator's fault injection is the program's alone: its crashes
	// kill the process, and the service declined the request if faults
	// were armed when it came (one armed since is not applied).
	node, err := c.open(cfg, log, !c.Resident)
	if err != nil {
		return err
	}
	if err := node.ArmTestKill(c.ConfigPath); err != nil {
		return err
	}
	defer node.LogDone("prolog done", c.Start)
	topo, err := node.View.Layout()
	if err != nil {
		return err
	}
	alloc, err := lwknode.Allocation(ctx, cfg, topo, env)
	if err != nil {
		return err
	}
	lock, err := node.Lock(ctx)
	if err != nil {
		return err
	}
	defer lock.Release()
	// slurmd runs a job's epilog without waiting for its prolog: if this
	// attempt's epilog took the lock first, nothing would tear down what we
	// boot now.
	key := jobend.Key{JobID: env.JobID, Attempt: env.RestartCount}
	if ended, err := node.Ended.Ended(key); err != nil {
		return err
	} else if ended {
		log.Warn("the job's epilog already ran on this node; not booting an LWK for it", "attempt", env.RestartCount)
		return ErrJobEnded
	}
	// A journal for this job already: an earlier prolog of it (requeued to
	// this node) died without an epilog. Tear that down first.
	if _, err := node.Journal.Read(env.JobID); !errors.Is(err, journal.ErrNotFound) {
		log.Warn("job already has a journal on this node; cleaning up its earlier attempt", "err", err)
		if _, err := teardown.Run(ctx, node.TeardownDeps(), env.JobID); err != nil {
			return fmt.Errorf("clean up the job's earlier attempt: %w", err)
		}
	}
	// IHK boots one OS per device: while another job's LWK is here (its
	// journal says so), this job cannot boot one. Requeue it, do not drain.
	if err := checkNodeFree(node, env.JobID); err != nil {
		return err
	}
	// Re-read under the lock: another job may have taken CPUs offline.
	topo, held, err := node.View.Snapshot(ctx)
	if err != nil {
		return err
	}
	p, err := plan.Make(plan.Input{Topology: topo, Config: cfg, JobID: env.JobID, Alloc: alloc, Request: req, Held: held})
	if err != nil {
		return err
	}
	if err := plan.CheckTasks(p, env.NTasks, env.NumNodes); err != nil {
		return err
	}
	log.Info("plan", "cpus", p.CPUSet().String(), "memory_bytes", p.MemoryBytes(), "profile", p.Profile)
	idx, err := apply.Run(ctx, node.ApplyDeps(), apply.Job{
		ID: env.JobID, UID: env.UID, GID: env.GID, User: env.User, Spec: env.Spec, Attempt: env.RestartCount,
	}, p)
	if err != nil {
		log.Error("prolog failed", "err", err)
		return err
	}
	log.Info("lwk running", "os", idx)
	return nil
}

// checkNodeFree fails with verdict.ErrNodeBusy when another job has a
// journal on this node: its LWK is booted, or being booted or torn down. The
// caller holds the node lock.
func checkNodeFree(node *lwknode.Node, jobID uint32) error {
	ids, err := node.Journal.List()
	if err != nil {
		return err
	}
	var others []string
	for _, id := range ids {
		if id != jobID {
			others = append(others, strconv.FormatUint(uint64(id), 10))
		}
	}
	if len(others) == 0 {
		return nil
	}
	return fmt.Errorf("job %s holds this node's LWK (one LWK job per node): %w", strings.Join(others, ","), verdict.ErrNodeBusy)
}

// Epilog returns the node to its state before the job's LWK, from the
// job's journal and from live state, so it also cleans up after a prolog
// that was killed at any step; running it twice is harmless. Any error means
// the node is not confirmed clean: slurmd drains it.
func Epilog(ctx context.Context, c Call) error {
	env, err := slurm.FromEnviron(c.Environ)
	var specErr *slurm.SpecError
	if err != nil && !errors.As(err, &specErr) {
		return fmt.Errorf("job environment: %w", err)
	}
	// A malformed spec (the prolog cancelled the job) cannot have booted
	// anything, nor can an unparsable one, but a spec that only this
	// version rejects might have: tear down regardless. Failing here would
	// drain the node for the user's mistake.
	if specErr == nil {
		if lwknode.LinuxJob(env.Spec) {
			return nil
		}
		if req, err := lwkmode.Parse(env.Spec); err == nil && req.Off {
			return nil
		}
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	log, closer := lwknode.Logger(cfg.LogDir, "lwk-epilog", c.Verbose)
	defer closer.Close()
	node, err := c.open(cfg, log, false)
	if err != nil {
		return err
	}
	defer node.LogDone("epilog done", c.Start, "job", env.JobID)
	// A SIGTERM (slurmd's timeout) must not cut the teardown short between
	// DESTROY_OS and the releases: finish, bounded.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.LockTimeout+cfg.DestroyTimeout+30*time.Second)
	defer cancel()
	res, err := node.EndJob(tctx, jobend.Key{JobID: env.JobID, Attempt: env.RestartCount})
	if err != nil {
		return err
	}
	if len(res.Collected) > 0 {
		fmt.Fprintf(c.Stderr, "lwk: collected the leftovers of jobs %v, whose epilog had already run\n", res.Collected)
	}
	if res.Recovered && (len(res.OS) > 0 || !res.ReleasedCPUs.IsEmpty() || len(res.ReleasedMemory) > 0) {
		fmt.Fprintf(c.Stderr, "lwk: job %d had no readable journal; recovered from live state: os %v, cpus %s, %d memory chunks\n",
			env.JobID, res.OS, res.ReleasedCPUs, len(res.ReleasedMemory))
	}
	return nil
}
