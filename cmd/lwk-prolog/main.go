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
	"strconv"
	"strings"
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
	"github.com/slurm-lwk/slurm-lwk/pkg/verdict"
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
	lwknode.ShortLived()
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
	var specErr *slurm.SpecError
	if err != nil && !errors.As(err, &specErr) {
		return fmt.Errorf("job environment: %w", err)
	}
	if specErr == nil && lwknode.LinuxJob(env.Spec) {
		return nil
	}
	log, closer := lwknode.Logger(cfg.LogDir, "lwk-prolog", o.verbose)
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
			err = boot(ctx, cfg, o.configPath, env, req, log, o.start)
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, errJobEnded) {
		// The job is over: nothing to boot, nothing to cancel or drain.
		fmt.Fprintf(os.Stderr, "lwk: job %d: %s\n", env.JobID, err)
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
		fmt.Fprintf(os.Stderr, "lwk: job %d cancelled: %s\n", env.JobID, lwknode.OneLine(err))
	case verdict.Requeue:
		log.Warn("another job's LWK is on this node; job requeued", "err", err)
		fmt.Fprintf(os.Stderr, "lwk: job %d requeued: %s\n", env.JobID, lwknode.OneLine(err))
	default:
		if res.Decided != verdict.Drain {
			log.Error("cannot "+res.Decided.String()+" the job; draining the node", "err", herr)
		}
	}
	return herr
}

// errJobEnded: the job attempt's epilog ran before this prolog took the
// node lock.
var errJobEnded = errors.New("the job's epilog already ran on this node; no LWK booted")

// boot plans and boots the job's LWK.
func boot(ctx context.Context, cfg *config.Config, configPath string, env slurm.JobEnv, req lwkmode.Request, log *slog.Logger, start time.Time) error {
	node, err := lwknode.Open(cfg, log, true)
	if err != nil {
		return err
	}
	if err := node.ArmTestKill(configPath); err != nil {
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
