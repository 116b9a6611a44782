// Command lwk-prolog prepares a node for a job's light-weight kernel: it
// plans the partition, reserves the job's CPUs and memory through IHK, boots
// McKernel on them and gives the job's user access to the instance. slurmd
// runs it (through the SPANK plugin, or as Prolog=) as root with the job's
// environment; a job without an LWK request costs one environment lookup.
//
// With --dry-run it prints the plan for the given inputs and touches nothing.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/slurm-lwk/slurm-lwk/pkg/apply"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
)

type options struct {
	configPath string
	dryRun     bool
	jsonOut    bool
	sysfsRoot  string
	jobID      uint32
	spec       string
	cpus, mem  string
	verbose    bool
	start      time.Time // when the process started work
}

func main() {
	// The Linux-job fast path: no flag parsing, no config, no lock.
	if len(os.Args) == 1 && lwknode.LinuxJob(slurm.SpecFromEnviron(os.Environ())) {
		return
	}
	o := options{start: time.Now()}
	fs := pflag.NewFlagSet("lwk-prolog", pflag.ContinueOnError)
	fs.StringVar(&o.configPath, "config", lwknode.DefaultConfigPath(), "node configuration file")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan for --lwk-mode/--cpus/--mem and touch nothing")
	fs.BoolVar(&o.jsonOut, "json", false, "with --dry-run: print the plan as JSON")
	fs.StringVar(&o.sysfsRoot, "sysfs-root", "", "with --dry-run: read the topology under this root instead of SysfsRoot")
	fs.Uint32Var(&o.jobID, "job-id", 0, "with --dry-run: the job ID")
	fs.StringVar(&o.spec, "lwk-mode", "", "with --dry-run: the --lwk-mode specification")
	fs.StringVar(&o.cpus, "cpus", "", "with --dry-run: the job's CPUs on this node (Linux numbering, list syntax)")
	fs.StringVar(&o.mem, "mem", "", "with --dry-run: the job's memory on this node (e.g. 10G)")
	fs.BoolVar(&o.verbose, "verbose", false, "log to stderr at debug level")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fail(err)
	}
}

// fail prints the one line slurmd turns into the drain reason and exits 1.
func fail(err error) {
	fmt.Fprintf(os.Stderr, "lwk: %s\n", lwknode.OneLine(err))
	os.Exit(1)
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	if o.dryRun {
		return dryRun(cfg, o, stdout)
	}
	env, err := slurm.FromEnviron(os.Environ())
	if err != nil {
		return fmt.Errorf("job environment: %w", err)
	}
	if lwknode.LinuxJob(env.Spec) {
		return nil
	}
	log, closer := lwknode.Logger(cfg.LogDir, "lwk-prolog", o.verbose)
	defer closer.Close()
	log = log.With("job", env.JobID)
	req, err := lwkmode.Parse(env.Spec)
	if err == nil && req.Off {
		return nil
	}
	if err != nil {
		// The submit-side check let it through (a plugin or version skew):
		// still the user's request, not the node's fault.
		err = fmt.Errorf("%w: %w", err, plan.ErrRequest)
	} else {
		err = boot(ctx, cfg, env, req, log, o.start)
	}
	if errors.Is(err, errJobEnded) {
		// The job is over: nothing to boot, nothing to cancel or drain.
		fmt.Fprintf(os.Stderr, "lwk: job %d: %s\n", env.JobID, err)
		return nil
	}
	if err != nil {
		if env.Node == "" {
			return err
		}
		// Nothing was reserved when planning refused the request: cancel
		// the job rather than fail the prolog, which would drain the node
		// for a user's mistake.
		if errors.Is(err, plan.ErrRequest) {
			cerr := refuse(cfg, env, err)
			if cerr == nil {
				log.Warn("request cannot be satisfied on this node; job cancelled", "err", err)
				fmt.Fprintf(os.Stderr, "lwk: job %d cancelled: %s\n", env.JobID, lwknode.OneLine(err))
				return nil
			}
			log.Error("cannot cancel the job; failing the prolog", "err", cerr)
		}
		if derr := drain(cfg, env, err); derr != nil {
			return fmt.Errorf("%w (and setting the drain reason failed: %w)", err, derr)
		}
		return err
	}
	return nil
}

// errJobEnded: the job attempt's epilog ran before this prolog took the
// node lock.
var errJobEnded = errors.New("the job's epilog already ran on this node; no LWK booted")

// refuse records why on the job (AdminComment, shown by scontrol show job
// and sacct) and cancels it.
func refuse(cfg *config.Config, env slurm.JobEnv, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r := lwknode.ScontrolRunner(env)
	comment := slurm.SanitizeReason("lwk: " + lwknode.OneLine(cause))
	// Without the comment the user sees only CANCELLED; still cancel.
	cerr := slurm.SetAdminComment(ctx, r, cfg.ScontrolPath, env.JobID, comment)
	if err := slurm.CancelJob(ctx, r, cfg.ScancelPath, env.JobID); err != nil {
		return errors.Join(err, cerr)
	}
	return nil
}

// boot plans and boots the job's LWK.
func boot(ctx context.Context, cfg *config.Config, env slurm.JobEnv, req lwkmode.Request, log *slog.Logger, start time.Time) error {
	node, err := lwknode.Open(cfg, log, true)
	if err != nil {
		return err
	}
	defer node.LogDone("prolog done", start)
	topo, err := node.View.Layout()
	if err != nil {
		return err
	}
	alloc, err := lwknode.Allocation(ctx, cfg, topo, env)
	if err != nil {
		return err
	}
	attempt, err := jobend.AttemptFromEnviron(os.Environ())
	if err != nil {
		return fmt.Errorf("job environment: %w", err)
	}
	lock, err := node.Lock(ctx)
	if err != nil {
		return err
	}
	defer lock.Release()
	// slurmd runs a job's epilog without waiting for its prolog: if this
	// attempt's epilog took the lock first, nothing would tear down what we
	// boot now.
	key := jobend.Key{JobID: env.JobID, Attempt: attempt}
	if ended, err := node.Ended.Ended(key); err != nil {
		return err
	} else if ended {
		log.Warn("the job's epilog already ran on this node; not booting an LWK for it", "attempt", attempt)
		return errJobEnded
	}
	// A journal for this job already: an earlier prolog of it (requeued to
	// this node) died without an epilog. Tear that down first.
	if _, err := node.Journal.Read(env.JobID); !errors.Is(err, journal.ErrNotFound) {
		log.Warn("job already has a journal on this node; cleaning up its earlier attempt", "err", err)
		if _, err := teardown.Run(ctx, node.TeardownDeps(), env.JobID); err != nil {
			return fmt.Errorf("clean up the job's earlier attempt: %w", err)
		}
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
	log.Info("plan", "cpus", p.CPUSet().String(), "memory_bytes", p.MemoryBytes(), "profile", p.Profile)
	idx, err := apply.Run(ctx, node.ApplyDeps(), apply.Job{
		ID: env.JobID, UID: env.UID, GID: env.GID, User: env.User, Spec: env.Spec, Attempt: attempt,
	}, p)
	if err != nil {
		log.Error("prolog failed", "err", err)
		return err
	}
	log.Info("lwk running", "os", idx)
	return nil
}

// drain sets the node's drain reason to the prolog's error. slurmd drains a
// node whose prolog fails with the fixed reason "Prolog error"; a node that
// is already drained keeps the reason it has, so setting ours first is what
// lets the admin see which step failed and why.
func drain(cfg *config.Config, env slurm.JobEnv, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	reason := fmt.Sprintf("lwk: job %d: %s", env.JobID, lwknode.OneLine(cause))
	return slurm.DrainNode(ctx, lwknode.ScontrolRunner(env), cfg.ScontrolPath, env.Node, reason)
}

func dryRun(cfg *config.Config, o options, stdout io.Writer) error {
	if o.sysfsRoot != "" {
		cfg.SysfsRoot = o.sysfsRoot
	}
	p, err := lwknode.DryRun(lwknode.PlanRequest{Config: cfg, JobID: o.jobID, Spec: o.spec, CPUs: o.cpus, Mem: o.mem})
	if err != nil {
		return err
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	return p.Format(stdout)
}
