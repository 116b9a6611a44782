// Command lwk-epilog returns a node to its state before a job's light-weight
// kernel: it stops the job's remaining mcexec proxies, saves the LWK kernel
// log, destroys the OS instance and releases the CPUs and memory IHK held
// for the job. It works from the job's journal and from live state, so it
// also cleans up after a prolog that was killed at any step, and running it
// twice is harmless.
//
// It exits 1, with the reason on stderr, on any error: slurmd then drains
// the node ("Epilog error"). That is deliberate. Whatever failed (the node
// lock, the journal directory, a DESTROY_OS still busy), the epilog has not
// confirmed that the node is back to its state before the job, and a node
// that may still hold a job's LWK, CPUs or memory must not get the next
// job. A job without an LWK, and a second run, exit 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
)

func main() {
	// The Linux-job fast path: no flag parsing, no config, no lock.
	if len(os.Args) == 1 && lwknode.LinuxJob(slurm.SpecFromEnviron(os.Environ())) {
		return
	}
	start := time.Now()
	lwknode.ShortLived()
	fs := pflag.NewFlagSet("lwk-epilog", pflag.ContinueOnError)
	configPath := fs.String("config", lwknode.DefaultConfigPath(), "node configuration file")
	verbose := fs.Bool("verbose", false, "log to stderr at debug level")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *configPath, *verbose, start); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "lwk: %s\n", lwknode.OneLine(err))
	os.Exit(1)
}

func run(ctx context.Context, configPath string, verbose bool, start time.Time) error {
	env, err := slurm.FromEnviron(os.Environ())
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
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	log, closer := lwknode.Logger(cfg.LogDir, "lwk-epilog", verbose)
	defer closer.Close()
	node, err := lwknode.Open(cfg, log, false)
	if err != nil {
		return err
	}
	defer node.LogDone("epilog done", start)
	// A SIGTERM (slurmd's timeout) must not cut the teardown short between
	// DESTROY_OS and the releases: finish, bounded.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.LockTimeout+cfg.DestroyTimeout+30*time.Second)
	defer cancel()
	res, err := node.EndJob(tctx, jobend.Key{JobID: env.JobID, Attempt: env.RestartCount})
	if err != nil {
		return err
	}
	if len(res.Collected) > 0 {
		fmt.Fprintf(os.Stderr, "lwk: collected the leftovers of jobs %v, whose epilog had already run\n", res.Collected)
	}
	if res.Recovered && (len(res.OS) > 0 || !res.ReleasedCPUs.IsEmpty() || len(res.ReleasedMemory) > 0) {
		fmt.Fprintf(os.Stderr, "lwk: job %d had no readable journal; recovered from live state: os %v, cpus %s, %d memory chunks\n",
			env.JobID, res.OS, res.ReleasedCPUs, len(res.ReleasedMemory))
	}
	return nil
}
