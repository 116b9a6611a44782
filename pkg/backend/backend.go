// Package backend opens the IHK backend that lwk.conf names: the real driver
// (ioctls on DevDir/mcd0 and DevDir/mcosN) or the simulator, which reads the
// node topology from SysfsRoot and keeps its state in SimStateDir. It never
// picks one by itself: config parsing refuses a file without IHKBackend=.
//
// It is the one place outside pkg/ihk/sim that knows which backend runs:
// the rest of slurm-lwk sees an IHK client, a NodeView and, with the
// simulator's fault injection, a step hook.
package backend

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/cpuhotplug"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ioctl"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/retry"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// NodeView is the node as the planner sees it.
type NodeView interface {
	// Layout returns the node's CPU and NUMA layout, without asking IHK
	// (to map Slurm's CPU IDs before the node lock is taken).
	Layout() (*topology.Topology, error)
	// Snapshot returns the topology as it is now and what IHK holds that
	// it does not show. The caller holds the node lock.
	Snapshot(ctx context.Context) (*topology.Topology, plan.Held, error)
}

// StepHook is called around every prolog step (apply.Faults).
type StepHook interface {
	Before(step string) error
	After(step string)
}

// holdings is the part of IHK a node view asks what IHK holds.
type holdings interface {
	ReservedCPUs(ctx context.Context) ([]int, error)
	ReservedMemory(ctx context.Context) ([]ihk.MemChunk, error)
	ListOS(ctx context.Context) ([]int, error)
	AssignedCPUs(ctx context.Context, os int) ([]int, error)
	AssignedMemory(ctx context.Context, os int) ([]ihk.MemChunk, error)
}

// Opened is an opened backend.
type Opened struct {
	Client ihk.Client
	View   NodeView
	// StepFaults is apply's fault hook for the prolog steps that are not
	// IHK operations; nil (a nil interface) unless the simulator injects
	// faults.
	StepFaults StepHook
	// DriverTime is the time spent in the simulated driver so far; nil
	// with the real driver (whose time is the kernel's).
	DriverTime func() time.Duration
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
		return &Opened{Client: c, View: sysfsView{root: cfg.SysfsRoot, cache: layoutCache(cfg), c: c}}, nil
	case config.BackendSim:
		// Read when first needed: the epilog, like the real driver's,
		// never needs the layout.
		topo := sync.OnceValues(func() (*topology.Topology, error) {
			t, _, err := topology.ReadLayoutCached(cfg.SysfsRoot, layoutCache(cfg))
			if err != nil {
				return nil, fmt.Errorf("simulated ihk: node topology: %w", err)
			}
			return t, nil
		})
		var hotplug sim.CPUHotplug
		if cfg.SimOfflineCPUs {
			hotplug = cpuhotplug.New(cfg.SysfsRoot)
		}
		b, err := sim.Open(sim.Options{
			CPUHotplug:   hotplug,
			StateDir:     cfg.SimStateDir,
			DevDir:       cfg.DevDir,
			LoadTopology: topo,
			BootDelay:    cfg.SimBootDelay,
			Logger:       log,
		})
		if err != nil {
			return nil, err
		}
		o := &Opened{Client: b, DriverTime: b.DriverTime}
		if withFaults {
			f, warning, err := sim.FaultsFromEnv(cfg.SimStateDir)
			if err != nil {
				return nil, fmt.Errorf("simulated ihk: %w", err)
			}
			if warning != "" {
				log.Warn("simulated ihk: fault file ignored", "reason", warning)
			}
			o.Client = sim.Inject(b, f, log)
			if !f.Empty() {
				o.StepFaults = f
			}
		}
		o.View = simView{topo: topo, c: o.Client}
		return o, nil
	}
	return nil, fmt.Errorf("ihk backend %q: unknown (want ihk or sim)", cfg.Backend)
}

// sysfsView reads the topology from sysfs: IHK offlines reserved CPUs and
// takes reserved memory out of MemFree, so the kernel's view changes under
// us and already shows what IHK holds, except which online CPUs are
// reserved or assigned. The layout comes through StateDir's cache, whose key
// includes the online CPUs, so the offlining is seen; MemFree is read fresh.
type sysfsView struct {
	root string
	// cache is the layout cache file (see topology.ReadLayoutCached): the
	// layout is read from sysfs only when the node changed, free memory
	// always.
	cache string
	c     holdings
}

// layoutCache is the node layout's cache file in StateDir; "" (no cache)
// when StateDir is not an absolute path.
func layoutCache(cfg *config.Config) string {
	if !filepath.IsAbs(cfg.StateDir) {
		return ""
	}
	return filepath.Join(cfg.StateDir, topology.CacheFileName)
}

func (v sysfsView) Layout() (*topology.Topology, error) {
	t, _, err := topology.ReadLayoutCached(v.root, v.cache)
	return t, err
}

func (v sysfsView) Snapshot(ctx context.Context) (*topology.Topology, plan.Held, error) {
	t, _, err := topology.ReadLayoutCached(v.root, v.cache)
	if err != nil {
		return nil, plan.Held{}, err
	}
	cpus, _, err := held(ctx, v.c, false)
	return t, plan.Held{CPUs: cpus}, err
}

// simView is the simulator's static topology (read once, when first asked
// for) with the memory the simulator has reserved or assigned taken out of
// each node's MemFree, as the driver takes it out of the kernel's.
type simView struct {
	topo func() (*topology.Topology, error)
	c    holdings
}

func (v simView) Layout() (*topology.Topology, error) { return v.topo() }

func (v simView) Snapshot(ctx context.Context) (*topology.Topology, plan.Held, error) {
	topo, err := v.topo()
	if err != nil {
		return nil, plan.Held{}, err
	}
	cpus, mem, err := held(ctx, v.c, true)
	if err != nil {
		return nil, plan.Held{}, err
	}
	t := *topo
	t.Nodes = slices.Clone(topo.Nodes)
	for _, c := range mem {
		for i := range t.Nodes {
			if t.Nodes[i].ID == c.NUMANode {
				t.Nodes[i].MemFreeBytes -= min(c.Bytes, t.Nodes[i].MemFreeBytes)
			}
		}
	}
	return &t, plan.Held{CPUs: cpus}, nil
}

// held queries the CPUs IHK holds (reserved, and assigned to any instance)
// and, if withMemory, the memory too.
func held(ctx context.Context, c holdings, withMemory bool) (cpuset.CPUSet, []ihk.MemChunk, error) {
	cpus, err := retry.Value(func() ([]int, error) { return c.ReservedCPUs(ctx) })
	if err != nil {
		return cpuset.New(), nil, fmt.Errorf("query reserved cpus: %w", err)
	}
	set := cpuset.New(cpus...)
	var mem []ihk.MemChunk
	if withMemory {
		if mem, err = retry.Value(func() ([]ihk.MemChunk, error) { return c.ReservedMemory(ctx) }); err != nil {
			return set, nil, fmt.Errorf("query reserved memory: %w", err)
		}
	}
	ids, err := retry.Value(func() ([]int, error) { return c.ListOS(ctx) })
	if err != nil {
		return set, nil, fmt.Errorf("list os instances: %w", err)
	}
	for _, idx := range ids {
		oc, err := retry.Value(func() ([]int, error) { return c.AssignedCPUs(ctx, idx) })
		if err != nil {
			return set, nil, fmt.Errorf("query cpus of os %d: %w", idx, err)
		}
		set = set.Union(cpuset.New(oc...))
		if withMemory {
			om, err := retry.Value(func() ([]ihk.MemChunk, error) { return c.AssignedMemory(ctx, idx) })
			if err != nil {
				return set, nil, fmt.Errorf("query memory of os %d: %w", idx, err)
			}
			mem = append(mem, om...)
		}
	}
	return set, mem, nil
}
