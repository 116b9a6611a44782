// Command lwk-monitor samples every LWK instance on the node — its status
// and its rusage (IHK_OS_STATUS, IHK_OS_GETRUSAGE: reads of memory McKernel
// shares with Linux, which do not interrupt the LWK) — and prints one JSON
// line per instance per sample. It pins itself to the node's OS cores first,
// so it never runs on an application core.
//
// This is the sampling core only: feeding Slurm accounting, Prometheus
// metrics and the panic/hang reaction come with the monitoring work.
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
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/sample"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

func main() {
	fs := pflag.NewFlagSet("lwk-monitor", pflag.ContinueOnError)
	configPath := fs.String("config", lwknode.DefaultConfigPath(), "node configuration file")
	once := fs.Bool("once", false, "take one sample and exit")
	interval := fs.Duration("interval", 10*time.Second, "sampling interval")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *configPath, *once, *interval, os.Stdout); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "lwk-monitor: %s\n", lwknode.OneLine(err))
	os.Exit(1)
}

func run(ctx context.Context, configPath string, once bool, interval time.Duration, out io.Writer) error {
	if interval <= 0 {
		return fmt.Errorf("--interval %s: must be positive", interval)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := pinToOSCores(cfg); err != nil {
		return err
	}
	node, err := lwknode.Open(cfg, log, false)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for {
		err := emit(ctx, node.IHK, enc)
		if once {
			return err
		}
		if err != nil {
			log.Warn("sample failed; trying again next interval", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

func emit(ctx context.Context, c sample.IHK, enc *json.Encoder) error {
	samples, err := sample.Take(ctx, c, time.Now)
	if err != nil {
		return err
	}
	for _, s := range samples {
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return nil
}

// pinToOSCores restricts the process to the online OS cores.
func pinToOSCores(cfg *config.Config) error {
	// sched_setaffinity speaks of this machine's CPUs: read the host's
	// layout, whatever machine SysfsRoot describes (a fixture, with the
	// simulator, may be larger than this one).
	host, err := topology.ReadLayout("/")
	if err != nil {
		return err
	}
	cpus := cfg.OSCores.Intersection(host.OnlineCPUs())
	if cpus.IsEmpty() {
		return fmt.Errorf("os cores %s: none online to run on", cfg.OSCores)
	}
	var set unix.CPUSet
	for _, c := range cpus.List() {
		set.Set(c)
	}
	// sched_setaffinity acts on one thread; the Go runtime already runs
	// several, and new ones inherit from their creator. Pin them all.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pin to os cores %s: %w", cpus, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d to os cores %s: %w", tid, cpus, err)
		}
	}
	return nil
}
