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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobhook"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
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
	return jobhook.Prolog(ctx, jobhook.Call{
		Environ: os.Environ(), ConfigPath: o.configPath, Config: cfg, Verbose: o.verbose, Start: o.start, Stderr: os.Stderr,
	})
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
