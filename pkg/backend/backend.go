// Package backend opens the IHK backend that lwk.conf names: the real driver
// (ioctls on DevDir/mcd0 and DevDir/mcosN) or the simulator, which reads the
// node topology from SysfsRoot and keeps its state in SimStateDir. It never
// picks one by itself: config parsing refuses a file without IHKBackend=.
package backend

import (
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ioctl"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// Opened is an IHK client and, for the simulator, the faults injected into
// the lifecycle steps that are not IHK operations.
type Opened struct {
	Client ihk.Client
	// Faults is nil for the real driver.
	Faults *StepFaults
	// Topology is the simulator's node model (nil for the real driver,
	// whose topology is read fresh from sysfs when needed).
	Topology *topology.Topology
}

// Open opens the backend cfg names. withFaults enables the simulator's fault
// injection (LWK_SIM_FAULT, LWK_SIM_CRASH and SimStateDir/faults); only the
// lifecycle binaries ask for it.
func Open(cfg *config.Config, log *slog.Logger, withFaults bool) (*Opened, error) {
	switch cfg.Backend {
	case config.BackendIHK:
		c, err := ioctl.New(cfg.DevDir)
		if err != nil {
			return nil, err
		}
		return &Opened{Client: c}, nil
	case config.BackendSim:
		topo, err := topology.ReadLayout(cfg.SysfsRoot)
		if err != nil {
			return nil, fmt.Errorf("simulated ihk: node topology: %w", err)
		}
		var faults *sim.Faults
		if withFaults {
			f, warning, err := sim.FaultsFromEnv(cfg.SimStateDir)
			if err != nil {
				return nil, fmt.Errorf("simulated ihk: %w", err)
			}
			if warning != "" {
				log.Warn("simulated ihk: fault file ignored", "reason", warning)
			}
			faults = f
		}
		b, err := sim.Open(sim.Options{
			StateDir:  cfg.SimStateDir,
			DevDir:    cfg.DevDir,
			Topology:  topo,
			BootDelay: cfg.SimBootDelay,
			Faults:    faults,
			Logger:    log,
		})
		if err != nil {
			return nil, err
		}
		o := &Opened{Client: b, Topology: topo}
		if !faults.Empty() {
			o.Faults = &StepFaults{f: faults}
		}
		return o, nil
	}
	return nil, fmt.Errorf("ihk backend %q: unknown (want ihk or sim)", cfg.Backend)
}

// StepFaults applies the simulator's fault directives to lifecycle steps
// that are not IHK operations (wait_running, grant_device, write_marker).
type StepFaults struct {
	f *sim.Faults
}

// Before fails the step if a fault names it.
func (s *StepFaults) Before(step string) error {
	if errno, ok := s.f.Fail(step); ok {
		return fmt.Errorf("simulated fault: %w", errno)
	}
	return nil
}

// After kills the process if a crash names the step.
func (s *StepFaults) After(step string) {
	if s.f.Crash(step) {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
