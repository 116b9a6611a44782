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

	"github.com/slurm-lwk/slurm-lwk/pkg/jobhook"
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
	return jobhook.Epilog(ctx, jobhook.Call{
		Environ: os.Environ(), ConfigPath: configPath, Verbose: verbose, Start: start, Stderr: os.Stderr,
	})
}
