// Package lwknode wires one node's configuration to its collaborators: the
// IHK backend lwk.conf names, the journal store and node lock under
// StateDir, the topology under SysfsRoot, and the Slurm edge that tells the
// prolog what the job holds on this node. The lwk-* binaries and lwkctl
// build on it so that each main only parses flags.
package lwknode

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/apply"
	"github.com/slurm-lwk/slurm-lwk/pkg/backend"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodelock"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodeprep"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodestatus"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// Node is an opened node.
type Node struct {
	Config  *config.Config
	Log     *slog.Logger
	IHK     ihk.Client
	Journal *journal.Store
	// View is the node as the planner sees it, from the backend.
	View    backend.NodeView
	backend *backend.Opened
	// Cgroups confines jobs' Linux side, in the layout detected once at
	// Open; when the node mounts no usable layout it fails Create with why.
	Cgroups Confinement
	// Ended records which job attempts' epilogs have run.
	Ended *jobend.Store
	// Proc is the proc file system every /proc reader of the lifecycle
	// uses (procfs.DefaultMountPoint, chosen once in Open).
	Proc procfs.FS
	// Resident: the prolog or epilog runs inside the node service
	// (lwk-monitor), which started no process for it; LogDone says so and
	// gives no advice on starting programs.
	Resident bool
	// testKillStep is the armed TestKillAfterStep (ArmTestKill), or "".
	testKillStep string
}

// Confinement is what the lifecycle and lwkctl need of the cgroups
// (proxycgroup.Manager).
type Confinement interface {
	apply.Confiner
	nodestatus.CgroupLister
}

// JournalDir is where journals live under StateDir.
func JournalDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "journal") }

// Open opens the backend and the journal store. withFaults enables the
// simulator's fault injection (lifecycle binaries only).
func Open(cfg *config.Config, log *slog.Logger, withFaults bool) (*Node, error) {
	b, err := backend.Open(cfg, log, withFaults)
	if err != nil {
		return nil, err
	}
	// RunDir first (StateDir may lie under it, and creating that would
	// leave RunDir world-readable), and LogDir: root writes files in both.
	for _, dir := range []string{cfg.RunDir, cfg.LogDir} {
		if err := privateDir(dir); err != nil {
			return nil, err
		}
	}
	store, err := journal.Open(JournalDir(cfg))
	if err != nil {
		return nil, err
	}
	proc := procfs.Default()
	return &Node{Config: cfg, Log: log, IHK: b.Client, Journal: store, View: b.View, backend: b, Proc: proc,
		Cgroups: OpenCgroups(cfg, proc), Ended: jobend.Open(jobend.Dir(cfg.StateDir))}, nil
}

// OpenCgroups detects the node's cgroup layout from <proc>/self/mounts and
// returns the confinement manager for it.
func OpenCgroups(cfg *config.Config, proc procfs.FS) Confinement {
	layout, err := proxycgroup.Detect(proc)
	if err != nil {
		return noCgroups{err}
	}
	return proxycgroup.Manager{Layout: layout, FS: proxycgroup.Kernel{}, Prefix: cfg.CgroupPrefix}
}

// noCgroups is a node without a usable cgroup layout: the prolog fails at
// confine_proxies saying why; nothing of ours can exist to remove.
type noCgroups struct{ err error }

func (n noCgroups) Mode() proxycgroup.Mode           { return "" }
func (n noCgroups) JobDirs(uint32) map[string]string { return nil }
func (n noCgroups) Members(uint32) ([]int, error)    { return nil, nil }
func (n noCgroups) Remove(uint32) error              { return nil }
func (n noCgroups) Leftovers() ([]uint32, error)     { return nil, nil }
func (n noCgroups) Create(uint32, proxycgroup.Limits) (*proxycgroup.Record, error) {
	return nil, fmt.Errorf("confine the proxies: %w", n.err)
}

// Lock takes the node lock, waiting at most LockTimeout.
func (n *Node) Lock(ctx context.Context) (*nodelock.Lock, error) {
	ctx, cancel := context.WithTimeout(ctx, n.Config.LockTimeout)
	defer cancel()
	return nodelock.Acquire(ctx, n.Config.StateDir)
}

// DriverClock reads the time spent inside the simulated IHK driver so far;
// nil with the real driver (whose time is the kernel's).
func (n *Node) DriverClock() func() time.Duration { return n.backend.DriverTime }

// LogDone logs the end of a prolog or epilog with extra (key, value
// pairs), its wall time, the Go scheduler count it ran with and, with the
// simulator, the part of the time spent in the simulated driver. A program
// (not Resident) started with one scheduler per CPU of a large node (no
// GOMAXPROCS in its environment: a Prolog=/Epilog= program without the
// plugin) also says how to start faster.
func (n *Node) LogDone(msg string, start time.Time, extra ...any) {
	procs := runtime.GOMAXPROCS(0)
	attrs := append(extra, "seconds", time.Since(start).Seconds(), "gomaxprocs", procs)
	if clock := n.DriverClock(); clock != nil {
		attrs = append(attrs, "sim_driver_seconds", clock().Seconds())
	}
	if n.Resident {
		n.Log.Info(msg, append(attrs, "resident", true)...)
		return
	}
	n.Log.Info(msg, attrs...)
	if procs > manyProcs && !maxProcsSet(os.Getenv("GOMAXPROCS")) {
		n.Log.Warn("the Go runtime set up one scheduler per cpu before main, most of this program's start on a large node; "+
			"run it with GOMAXPROCS=2 in its environment, as the SPANK plugin does", "gomaxprocs", procs)
	}
}

// maxProcsSet reports whether a GOMAXPROCS value is one the runtime takes
// (a positive integer); it ignores any other.
func maxProcsSet(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n > 0
}

// manyProcs is the scheduler count above which LogDone says so. The
// runtime's setup costs each a few pages before main runs (about 8 per
// scheduler in Go 1.26; a whole lwk-prolog run touches about 800).
const manyProcs = 32

// TeardownDeps returns the epilog's collaborators.
func (n *Node) TeardownDeps() teardown.Deps {
	return teardown.Deps{IHK: n.IHK, Node: n.teardownNode()}
}

// teardownNode is what teardown works with besides the driver.
func (n *Node) teardownNode() teardown.Node {
	d := teardown.Node{
		Journal:        n.Journal,
		DevDir:         n.Config.DevDir,
		RunDir:         n.Config.RunDir,
		LogDir:         n.Config.LogDir,
		Proc:           n.Proc,
		DestroyTimeout: n.Config.DestroyTimeout,
		KillGrace:      defaultKillGrace,
		Cgroups:        n.Cgroups,
		Ended:          n.Ended,
		Log:            n.Log,
	}
	if df, ok := n.defragmenter(); ok {
		d.Memory = df
	}
	return d
}

// defragmenter is the job nodes' pre-boot defragmentation, when lwk.conf
// names job nodes. It acts on the real machine below SysfsRoot.
func (n *Node) defragmenter() (nodeprep.Defragmenter, bool) {
	if n.Config.JobNUMANodes.IsEmpty() {
		return nodeprep.Defragmenter{}, false
	}
	return nodeprep.Defragmenter{Root: n.Config.SysfsRoot, Log: n.Log, Settings: nodeprep.Settings{
		OSCores: n.Config.OSCores, SystemNodes: n.Config.SystemNUMANodes, JobNodes: n.Config.JobNUMANodes,
		PageBytes: uint64(os.Getpagesize()),
	}}, true
}

// ApplyDeps returns the prolog's collaborators.
func (n *Node) ApplyDeps() apply.Deps {
	d := apply.Deps{Node: n.teardownNode(), IHK: n.IHK, BootTimeout: n.Config.BootTimeout, Confine: n.Cgroups,
		McexecBuildID: n.Config.McexecBuildID}
	d.Faults = n.backend.StepFaults
	if n.testKillStep != "" {
		d.Faults = testKill{step: n.testKillStep, next: d.Faults, log: n.Log, kill: selfKill}
	}
	if df, ok := n.defragmenter(); ok {
		d.Defrag = df
	}
	return d
}

// Allocation asks Slurm what the job holds on this node and maps Slurm's
// abstract CPU IDs to Linux CPU IDs. It refuses when slurm.conf describes the
// node's CPUs differently from the hardware: Slurm's IDs follow slurm.conf
// (with ThreadsPerCore=1 on a two-thread node, ID 3 is the fourth core), so
// a mapping built from the hardware would give the LWK CPUs the job does
// not hold.
func Allocation(ctx context.Context, cfg *config.Config, topo *topology.Topology, env slurm.JobEnv) (plan.Allocation, error) {
	if env.Node == "" {
		return plan.Allocation{}, fmt.Errorf("job %d: SLURMD_NODENAME is not set", env.JobID)
	}
	r := ScontrolRunner(env)
	layout, err := slurm.ShowNode(ctx, r, cfg.ScontrolPath, env.Node)
	if err != nil {
		return plan.Allocation{}, err
	}
	num := topo.SlurmNumbering()
	hw := slurm.NodeLayout{Sockets: num.Sockets, CoresPerSocket: num.CoresPerSocket, ThreadsPerCore: num.ThreadsPerCore}
	if layout != hw {
		return plan.Allocation{}, fmt.Errorf("node %s: slurm.conf says %s, the hardware has %s: Slurm's CPU IDs cannot be mapped to Linux CPUs; make the NodeName line match slurmd -C",
			env.Node, layout, hw)
	}
	ja, err := slurm.ShowJob(ctx, r, cfg.ScontrolPath, env.JobID, env.Node)
	if err != nil {
		return plan.Allocation{}, err
	}
	cpus, err := topo.SlurmAbstractToMachineIn(num, ja.CPUIDs)
	if err != nil {
		return plan.Allocation{}, fmt.Errorf("job %d cpu_ids %s: %w", env.JobID, ja.CPUIDs, err)
	}
	return plan.Allocation{CPUs: cpus, MemoryBytes: ja.MemoryMB << 20}, nil
}

// Cleanup runs the epilog's teardown for one job under the node lock.
func (n *Node) Cleanup(ctx context.Context, jobID uint32) (*teardown.Result, error) {
	lock, err := n.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	return teardown.Run(ctx, n.TeardownDeps(), jobID)
}

// CollectEnded tears down, under the node lock, what jobs whose epilog
// already ran still hold (see teardown.CollectEnded); nil when none.
func (n *Node) CollectEnded(ctx context.Context) (*teardown.Result, error) {
	lock, err := n.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	return teardown.CollectEnded(ctx, n.TeardownDeps())
}

// EndJob is the epilog: under the node lock it records that the job
// attempt's epilog ran (so a prolog of that attempt still waiting for the
// lock boots nothing), prunes old records, and tears the job down.
func (n *Node) EndJob(ctx context.Context, key jobend.Key) (*teardown.Result, error) {
	lock, err := n.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if err := n.Ended.Record(key); err != nil {
		return nil, err
	}
	if _, err := n.Ended.Prune(endRecordAge(n.Config), time.Now()); err != nil {
		n.Log.Warn("cannot prune job end records", "err", err)
	}
	return teardown.Run(ctx, n.TeardownDeps(), key.JobID)
}

// endRecordAge is how long an epilog's record is kept: longer than any
// prolog can take from its start to the node lock (its Slurm calls, then
// LockTimeout).
func endRecordAge(cfg *config.Config) time.Duration {
	return max(time.Hour, 2*cfg.LockTimeout)
}

// ScontrolRunner runs Slurm commands with a minimal environment that keeps
// the job's SLURM_CONF, so a site with a non-default slurm.conf works.
func ScontrolRunner(env slurm.JobEnv) slurm.ExecRunner {
	r := slurm.ExecRunner{}
	if env.SlurmConf != "" {
		r.Env = append(append([]string(nil), slurm.DefaultEnv...), "SLURM_CONF="+env.SlurmConf)
	}
	return r
}

// privateDir makes sure dir exists, is a real directory owned by us, and
// gives nobody else any access: files written there as root (markers,
// kernel logs) must not be reachable or replaceable by users.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s: not a directory owned by uid %d", dir, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make %s private: %w", dir, err)
		}
	}
	return nil
}
