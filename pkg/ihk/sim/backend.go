package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/devholders"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// Simulation constants.
const (
	// maxRequestCPUs is the driver's limit on CPUs per request.
	maxRequestCPUs = 512
	// perfCounters is how many hardware counters a simulated LWK CPU has.
	perfCounters = 4
	// freezeLatency is how long FREEZING lasts before FROZEN.
	freezeLatency = 10 * time.Millisecond
	// kmsgSize is IHK_KMSG_SIZE, the LWK message ring size. Units: bytes.
	kmsgSize = 4<<20 - 4096
)

// Options configures a simulated backend.
type Options struct {
	// StateDir holds the shared state (state.json, lock, faults). Created
	// 0700 (0711 when it is DevDir's parent, so users can reach the device
	// stand-ins they were granted). Required, absolute.
	StateDir string
	// DevDir holds the device stand-ins mcd0 and mcosN. Created 0755.
	// Default: StateDir/dev.
	DevDir string
	// Proc is procfs, read to find the programs mcexec stand-ins run (for
	// rusage) and to signal eventfds. The zero value means
	// procfs.DefaultMountPoint.
	Proc procfs.FS
	// Topology says which CPUs exist and are online and how much memory
	// each NUMA node has free. Either it or LoadTopology is required.
	Topology *topology.Topology
	// LoadTopology, used when Topology is nil, reads the topology the
	// first time an operation needs it (reserving CPUs or memory), so a
	// process that only tears down never reads it, as none does with the
	// real driver. It is called at most once per Backend.
	LoadTopology func() (*topology.Topology, error)
	// BootDelay is how long a boot takes from BOOT to RUNNING; BOOT returns
	// at READY, after 80% of it.
	BootDelay time.Duration
	// Logger receives one record per state change; nil discards.
	Logger *slog.Logger
	// CPUHotplug, when set, gives reserving and releasing CPUs IHK's real
	// Linux-side effect: reserved CPUs go offline (cpuhotplug.Writer).
	// nil keeps the simulation in its state file only.
	CPUHotplug CPUHotplug
}

// CPUHotplug takes CPUs offline or online, all or none.
type CPUHotplug interface {
	SetAll(cpus []int, online bool) error
}

// Backend is the simulated IHK driver. It is safe for concurrent use by
// several goroutines and processes: every operation locks the state
// directory.
type Backend struct {
	store     store
	devDir    string
	proc      procfs.FS
	topo      func() (*topology.Topology, error)
	bootDelay time.Duration
	log       *slog.Logger
	hotplug   CPUHotplug
	// busyNS is the time this Backend spent inside simulated operations
	// (lock, load, check, save). Units: ns.
	busyNS atomic.Int64
	// calls counts the operations asked of this Backend, by ioctl name.
	callsMu sync.Mutex
	calls   map[string]uint64
}

var _ ihk.Client = (*Backend)(nil)

// DriverTime is how long this Backend has spent inside simulated driver
// operations: time a real IHK ioctl would spend in the kernel instead.
// Benchmarks subtract it to measure the lifecycle's own overhead.
func (b *Backend) DriverTime() time.Duration { return time.Duration(b.busyNS.Load()) }

// Open prepares the state and device directories and returns the backend.
// Several Backends (in one or many processes) on the same StateDir share one
// simulated driver.
func Open(opts Options) (*Backend, error) {
	if !filepath.IsAbs(opts.StateDir) {
		return nil, fmt.Errorf("open ihk simulator: state dir %q is not absolute", opts.StateDir)
	}
	topo := opts.LoadTopology
	if opts.Topology != nil {
		t := opts.Topology
		topo = func() (*topology.Topology, error) { return t, nil }
	}
	if topo == nil {
		return nil, fmt.Errorf("open ihk simulator %s: no topology", opts.StateDir)
	}
	if opts.BootDelay < 0 {
		return nil, fmt.Errorf("open ihk simulator %s: negative boot delay %v", opts.StateDir, opts.BootDelay)
	}
	b := &Backend{
		store:     store{dir: filepath.Clean(opts.StateDir)},
		devDir:    filepath.Clean(opts.DevDir),
		proc:      procfs.Default(),
		topo:      sync.OnceValues(topo),
		bootDelay: opts.BootDelay,
		log:       opts.Logger,
		hotplug:   opts.CPUHotplug,
	}
	if opts.DevDir == "" {
		b.devDir = filepath.Join(b.store.dir, "dev")
	}
	if !filepath.IsAbs(b.devDir) {
		return nil, fmt.Errorf("open ihk simulator: dev dir %q is not absolute", opts.DevDir)
	}
	if opts.Proc.Root != "" {
		b.proc = opts.Proc
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	stateMode := os.FileMode(0o700)
	if filepath.Dir(b.devDir) == b.store.dir {
		stateMode = 0o711
	}
	if err := ensureDir(b.store.dir, stateMode); err != nil {
		return nil, fmt.Errorf("open ihk simulator: %w", err)
	}
	if err := ensureDir(b.devDir, 0o755); err != nil {
		return nil, fmt.Errorf("open ihk simulator: %w", err)
	}
	mcd := filepath.Join(b.devDir, "mcd0")
	f, err := os.OpenFile(mcd, os.O_CREATE|os.O_RDONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open ihk simulator: %w", err)
	}
	f.Close()
	return b, nil
}

// ensureDir creates dir with mode if needed and checks that it is a real
// directory owned by the caller; it then sets exactly mode.
func ensureDir(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s: owned by uid %d, not by uid %d", dir, st.Uid, os.Geteuid())
	}
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	return nil
}

// StateDir returns the state directory.
func (b *Backend) StateDir() string { return b.store.dir }

// DevDir returns the directory of the device stand-ins.
func (b *Backend) DevDir() string { return b.devDir }

// DevicePath returns the stand-in for /dev/mcos<os>.
func (b *Backend) DevicePath(os int) string {
	return filepath.Join(b.devDir, "mcos"+strconv.Itoa(os))
}

func (b *Backend) err(op string, os int, errno syscall.Errno, format string, args ...any) *ihk.Error {
	return &ihk.Error{Op: ioctlName(op), OS: os, Errno: errno, Detail: fmt.Sprintf(format, args...)}
}

// do runs one operation under the state lock: load, fn, save if fn changed
// the state (also when fn fails after a partial change, as the driver leaves
// earlier chunks of a failed request reserved), rewrite the device documents
// that changed.
func (b *Backend) do(ctx context.Context, op string, osIdx int, fn func(s *state, now time.Time) error) error {
	b.count(op)
	start := time.Now()
	defer func() { b.busyNS.Add(int64(time.Since(start))) }()
	lk, err := b.store.lock(ctx)
	if err != nil {
		return fmt.Errorf("ihk %s: %w", ioctlName(op), err)
	}
	defer lk.Release()
	s, _, err := b.store.load()
	if err != nil {
		return fmt.Errorf("ihk %s: %w", ioctlName(op), err)
	}
	before, err := json.Marshal(s)
	if err != nil {
		return err
	}
	docsBefore := b.docs(s)
	opErr := fn(s, time.Now())
	after, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if string(after) != string(before) {
		if _, err := b.store.save(s); err != nil {
			return errors.Join(opErr, fmt.Errorf("ihk %s: %w", ioctlName(op), err))
		}
		for idx, doc := range b.docs(s) {
			if docsBefore[idx] == doc {
				continue
			}
			info := b.deviceInfo(s.os(idx))
			if err := writeDevice(b.DevicePath(idx), info); err != nil {
				b.log.Warn("cannot update simulated device", "os", idx, "err", err)
			}
		}
	}
	return opErr
}

func (b *Backend) docs(s *state) map[int]string {
	m := map[int]string{}
	for _, o := range s.OS {
		d, _ := json.Marshal(b.deviceInfo(o))
		m[o.Index] = string(d)
	}
	return m
}

func (b *Backend) deviceInfo(o *osState) *DeviceInfo {
	info := &DeviceInfo{Simulator: SimulatorName, Index: o.Index, CPUs: nonNil(o.CPUs), Memory: nonNilChunks(o.Memory)}
	if o.Boot != nil {
		info.BootID = o.Boot.ID
		tl := o.Boot.Timeline
		info.Timeline = &tl
	}
	return info
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return append([]int{}, s...)
}

func nonNilChunks(s []ihk.MemChunk) []ihk.MemChunk {
	if s == nil {
		return []ihk.MemChunk{}
	}
	return append([]ihk.MemChunk{}, s...)
}

func listString(cpus []int) string { return cpuset.New(cpus...).String() }

// instance returns OS i for an OS-device operation: ENOENT when it does not
// exist, as opening a missing /dev/mcosN fails.
func (b *Backend) instance(s *state, op string, i int) (*osState, error) {
	if o := s.os(i); o != nil {
		return o, nil
	}
	return nil, b.err(op, i, syscall.ENOENT, "no such os instance")
}

// initial returns EBUSY unless the instance is INITIAL (not booted).
func (b *Backend) initial(op string, o *osState, now time.Time) error {
	if o.Boot != nil {
		return b.err(op, o.Index, syscall.EBUSY, "os is %s, not NOT_BOOTED", o.Boot.Timeline.Status(now))
	}
	return nil
}

// booted returns EINVAL unless the instance is booted: mcctrl's aux handlers
// and the kmsg ring exist only between BOOT and SHUTDOWN.
// bootedInstance returns instance i if it exists and is booted.
func (b *Backend) bootedInstance(s *state, op string, i int) (*osState, error) {
	o, err := b.instance(s, op, i)
	if err != nil {
		return nil, err
	}
	if err := b.booted(op, o); err != nil {
		return nil, err
	}
	return o, nil
}

func (b *Backend) booted(op string, o *osState) error {
	if o.Boot == nil {
		return b.err(op, o.Index, syscall.EINVAL, "os is not booted")
	}
	return nil
}

// ReserveCPUs takes CPUs from Linux (in the simulation: marks them offline in
// the state; real sysfs is never touched). Every CPU must exist and be online
// in the topology (EINVAL); a CPU that is already reserved gives EBUSY.
// Nothing is reserved when any CPU is refused.
func (b *Backend) ReserveCPUs(ctx context.Context, cpus []int) error {
	const op = "reserve_cpus"
	return b.do(ctx, op, -1, func(s *state, _ time.Time) error {
		if len(cpus) > maxRequestCPUs {
			return b.err(op, -1, syscall.EINVAL, "%d cpus, limit %d", len(cpus), maxRequestCPUs)
		}
		topo, err := b.topo()
		if err != nil {
			return b.err(op, -1, syscall.EIO, "node topology: %v", err)
		}
		reserved := cpuset.New(s.ReservedCPUs...)
		seen := map[int]bool{}
		for _, c := range cpus {
			cpu, ok := topo.CPU(c)
			switch {
			case !ok:
				return b.err(op, -1, syscall.EINVAL, "cpu %d does not exist", c)
			case seen[c]:
				return b.err(op, -1, syscall.EINVAL, "cpu %d given twice", c)
			case reserved.Contains(c):
				return b.err(op, -1, syscall.EBUSY, "cpu %d already reserved", c)
			case !cpu.Online:
				return b.err(op, -1, syscall.EINVAL, "cpu %d is offline", c)
			}
			seen[c] = true
		}
		if len(cpus) == 0 {
			return nil
		}
		if b.hotplug != nil {
			if err := b.hotplug.SetAll(cpus, false); err != nil {
				return b.err(op, -1, syscall.EBUSY, "take cpus %s offline: %v", listString(cpus), err)
			}
		}
		s.ReservedCPUs = reserved.Union(cpuset.New(cpus...)).List()
		b.log.Info("ihk sim: reserved cpus", "cpus", listString(cpus))
		return nil
	})
}

// ReleaseCPUs returns reserved, unassigned CPUs to Linux; EINVAL (and
// nothing released) if any is not.
func (b *Backend) ReleaseCPUs(ctx context.Context, cpus []int) error {
	const op = "release_cpus"
	return b.do(ctx, op, -1, func(s *state, _ time.Time) error {
		if len(cpus) > maxRequestCPUs {
			return b.err(op, -1, syscall.EINVAL, "%d cpus, limit %d", len(cpus), maxRequestCPUs)
		}
		avail := cpuset.New(s.availableCPUs()...)
		seen := map[int]bool{}
		for _, c := range cpus {
			if seen[c] || !avail.Contains(c) {
				return b.err(op, -1, syscall.EINVAL, "cpu %d is not reserved and unassigned", c)
			}
			seen[c] = true
		}
		if len(cpus) == 0 {
			return nil
		}
		if b.hotplug != nil {
			if err := b.hotplug.SetAll(cpus, true); err != nil {
				return b.err(op, -1, syscall.EBUSY, "bring cpus %s online: %v", listString(cpus), err)
			}
		}
		s.ReservedCPUs = cpuset.New(s.ReservedCPUs...).Difference(cpuset.New(cpus...)).List()
		if s.ReservedCPUs == nil {
			s.ReservedCPUs = []int{}
		}
		b.log.Info("ihk sim: released cpus", "cpus", listString(cpus))
		return nil
	})
}

// ReservedCPUs lists the reserved CPUs not assigned to any instance.
func (b *Backend) ReservedCPUs(ctx context.Context) ([]int, error) {
	var out []int
	err := b.do(ctx, "reserved_cpus", -1, func(s *state, _ time.Time) error {
		out = s.availableCPUs()
		return nil
	})
	return out, err
}

// ReserveMemory reserves one chunk per request entry. Sizes must be non-zero
// multiples of ihk.MemoryGranule on an existing NUMA node (EINVAL, nothing
// reserved). Chunks are then taken in order; one that exceeds the node's
// free memory (topology MemFreeBytes minus what the simulator has reserved
// there) fails with ENOMEM and, as in the driver, the earlier chunks of the
// request stay reserved.
func (b *Backend) ReserveMemory(ctx context.Context, chunks []ihk.MemChunk) error {
	const op = "reserve_memory"
	return b.do(ctx, op, -1, func(s *state, _ time.Time) error {
		topo, err := b.topo()
		if err != nil {
			return b.err(op, -1, syscall.EIO, "node topology: %v", err)
		}
		for _, c := range chunks {
			if c.Bytes == 0 || c.Bytes%ihk.MemoryGranule != 0 {
				return b.err(op, -1, syscall.EINVAL, "chunk %s: size not a multiple of %d", c, ihk.MemoryGranule)
			}
			if _, ok := topo.Node(c.NUMANode); !ok {
				return b.err(op, -1, syscall.EINVAL, "chunk %s: no numa node %d", c, c.NUMANode)
			}
		}
		for _, c := range chunks {
			node, _ := topo.Node(c.NUMANode)
			used := s.reservedBytes(c.NUMANode)
			var free uint64
			if node.MemFreeBytes > used {
				free = node.MemFreeBytes - used
			}
			if c.Bytes > free {
				return b.err(op, -1, syscall.ENOMEM, "chunk %s: numa node %d has %d bytes free", c, c.NUMANode, free)
			}
			s.FreeChunks = append(s.FreeChunks, c)
			b.log.Info("ihk sim: reserved memory", "numa", c.NUMANode, "bytes", c.Bytes)
		}
		return nil
	})
}

// ReleaseMemory releases chunks that each match one reserved, unassigned
// chunk exactly. It stops at the first mismatch with EINVAL, leaving the
// earlier ones released, as the driver does.
func (b *Backend) ReleaseMemory(ctx context.Context, chunks []ihk.MemChunk) error {
	const op = "release_memory"
	return b.do(ctx, op, -1, func(s *state, _ time.Time) error {
		for _, c := range chunks {
			i := indexChunk(s.FreeChunks, c)
			if i < 0 {
				return b.err(op, -1, syscall.EINVAL, "chunk %s is not a reserved, unassigned chunk", c)
			}
			s.FreeChunks = append(s.FreeChunks[:i], s.FreeChunks[i+1:]...)
			b.log.Info("ihk sim: released memory", "numa", c.NUMANode, "bytes", c.Bytes)
		}
		return nil
	})
}

func indexChunk(list []ihk.MemChunk, c ihk.MemChunk) int {
	for i, x := range list {
		if x == c {
			return i
		}
	}
	return -1
}

// ReservedMemory lists the reserved, unassigned chunks.
func (b *Backend) ReservedMemory(ctx context.Context) ([]ihk.MemChunk, error) {
	var out []ihk.MemChunk
	err := b.do(ctx, "reserved_memory", -1, func(s *state, _ time.Time) error {
		out = nonNilChunks(s.FreeChunks)
		return nil
	})
	return out, err
}

// CreateOS creates the instance with the lowest free index and its device
// stand-in DevDir/mcosN (0600, owned by the caller). ENOMEM when all
// ihk.MaxOSInstances exist.
func (b *Backend) CreateOS(ctx context.Context) (int, error) {
	const op = "create_os"
	idx := -1
	err := b.do(ctx, op, -1, func(s *state, _ time.Time) error {
		if len(s.OS) >= ihk.MaxOSInstances {
			return b.err(op, -1, syscall.ENOMEM, "%d os instances exist", len(s.OS))
		}
		i := 0
		for s.os(i) != nil {
			i++
		}
		path := b.DevicePath(i)
		// A stale stand-in (a crash between state and file) may carry a
		// previous job user's ownership: never reuse it.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return b.err(op, -1, syscall.EIO, "remove stale %s: %v", path, err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return b.err(op, -1, syscall.EIO, "create %s: %v", path, err)
		}
		err = f.Chmod(0o600)
		f.Close()
		if err != nil {
			return b.err(op, -1, syscall.EIO, "chmod %s: %v", path, err)
		}
		s.OS = append(s.OS, &osState{Index: i, CPUs: []int{}, Memory: []ihk.MemChunk{}})
		s.sortOS()
		idx = i
		b.log.Info("ihk sim: created os", "os", i)
		return nil
	})
	return idx, err
}

// DestroyOS destroys an instance, shutting it down first if it is booted,
// and returns its CPUs and memory to the reserved pool.
// A missing index gives EINVAL marked NotFound (as IHK_DEVICE_DESTROY_OS
// does); EBUSY while any process holds DevDir/mcosN with flock(LOCK_SH).
func (b *Backend) DestroyOS(ctx context.Context, i int) error {
	const op = "destroy_os"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o := s.os(i)
		if o == nil {
			e := b.err(op, i, syscall.EINVAL, "no such os instance")
			e.NotFound = true
			return e
		}
		held, err := b.held(i)
		if err != nil {
			return b.err(op, i, syscall.EIO, "%v", err)
		}
		if held {
			return b.err(op, i, syscall.EBUSY, "%s is held open", b.DevicePath(i))
		}
		// The driver's forced shutdown; for a never-booted instance it
		// still hands the assigned CPUs and memory back to the pool.
		b.shutdown(s, o, now)
		if err := os.Remove(b.DevicePath(i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return b.err(op, i, syscall.EIO, "remove %s: %v", b.DevicePath(i), err)
		}
		for k, x := range s.OS {
			if x.Index == i {
				s.OS = append(s.OS[:k], s.OS[k+1:]...)
				break
			}
		}
		b.log.Info("ihk sim: destroyed os", "os", i)
		return nil
	})
}

// held reports whether some process holds the stand-in: with flock(LOCK_SH)
// (a fresh descriptor cannot take LOCK_EX), or simply open, like the real
// device, found through /proc/<pid>/fd.
func (b *Backend) held(i int) (bool, error) {
	f, err := os.OpenFile(b.DevicePath(i), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	// The driver refuses DESTROY while any descriptor is open, flock or not:
	// look for other processes that have the stand-in open.
	pids, err := devholders.Find(b.proc.Root, b.DevicePath(i))
	if err != nil {
		return false, err
	}
	for _, pid := range pids {
		if pid != os.Getpid() {
			return true, nil
		}
		// This process: the probe's descriptor does not count, any other
		// does, as for the driver. In the node service (lwk-monitor runs
		// the epilog) another goroutine's leaked descriptor must keep
		// DESTROY_OS busy, not hide behind the epilog's pid.
		if other, err := b.selfHolds(f); err != nil || other {
			return other, err
		}
	}
	return false, nil
}

// selfHolds reports whether this process has the file of probe open on a
// descriptor other than probe's.
func (b *Backend) selfHolds(probe *os.File) (bool, error) {
	var want unix.Stat_t
	if err := unix.Fstat(int(probe.Fd()), &want); err != nil {
		return false, fmt.Errorf("stat %s: %w", probe.Name(), err)
	}
	dir := b.proc.Path("self", "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err != nil || n == int(probe.Fd()) {
			continue
		}
		var st unix.Stat_t
		// A descriptor closed meanwhile (another goroutine's) is gone.
		if unix.Stat(filepath.Join(dir, e.Name()), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			return true, nil
		}
	}
	return false, nil
}

// ListOS lists the instance indices, ascending.
func (b *Backend) ListOS(ctx context.Context) ([]int, error) {
	out := []int{}
	err := b.do(ctx, "list_os", -1, func(s *state, _ time.Time) error {
		for _, o := range s.OS {
			out = append(out, o.Index)
		}
		return nil
	})
	return out, err
}

// DetectHangup runs the simulated hang detector: EINVAL (NotFound) for a
// missing index, EAGAIN unless READY or RUNNING (or already FAILED/HUNGUP),
// HUNGUP if InjectHang was called since (signalling STATUS eventfds), else
// the current status.
func (b *Backend) DetectHangup(ctx context.Context, i int) (ihk.Status, error) {
	const op = "detect_hangup"
	var st ihk.Status
	err := b.do(ctx, op, i, func(s *state, now time.Time) error {
		o := s.os(i)
		if o == nil {
			e := b.err(op, i, syscall.EINVAL, "no such os instance")
			e.NotFound = true
			return e
		}
		st = o.status(now)
		switch {
		case st == ihk.StatusHungup || st == ihk.StatusFailed:
			return nil
		case st != ihk.StatusReady && st != ihk.StatusRunning:
			return b.err(op, i, syscall.EAGAIN, "os is %s", st)
		case o.Boot.HangPending:
			o.Boot.HangPending = false
			o.Boot.Timeline.HungNS = now.UnixNano()
			o.Boot.addKmsg(now, "hang detected: LWK cpu 0 monitor counter did not advance (simulated)")
			st = ihk.StatusHungup
			b.signal(o, ihk.EventStatus)
			b.log.Warn("ihk sim: os hung up", "os", i)
		}
		return nil
	})
	return st, err
}

func (o *osState) status(now time.Time) ihk.Status {
	if o.Boot == nil {
		return ihk.StatusNotBooted
	}
	return o.Boot.Timeline.Status(now)
}

// AssignCPUs assigns reserved, unassigned CPUs in LWK order (EINVAL
// otherwise; EBUSY unless the instance is NOT_BOOTED).
func (b *Backend) AssignCPUs(ctx context.Context, i int, cpus []int) error {
	const op = "assign_cpus"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.initial(op, o, now); err != nil {
			return err
		}
		if len(cpus) == 0 || len(cpus) > maxRequestCPUs {
			return b.err(op, i, syscall.EINVAL, "%d cpus", len(cpus))
		}
		avail := cpuset.New(s.availableCPUs()...)
		seen := map[int]bool{}
		for _, c := range cpus {
			if seen[c] || !avail.Contains(c) {
				return b.err(op, i, syscall.EINVAL, "cpu %d is not reserved and unassigned", c)
			}
			seen[c] = true
		}
		o.CPUs = append(o.CPUs, cpus...)
		for _, c := range cpus {
			delete(o.IKC, c) // the driver resets an assigned CPU's route to 0
		}
		b.log.Info("ihk sim: assigned cpus", "os", i, "cpus", listString(cpus))
		return nil
	})
}

// AssignedCPUs lists the instance's CPUs in LWK order.
func (b *Backend) AssignedCPUs(ctx context.Context, i int) ([]int, error) {
	const op = "assigned_cpus"
	var out []int
	err := b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		out = nonNil(o.CPUs)
		return nil
	})
	return out, err
}

// AssignMemory assigns memory from the reserved, unassigned chunks of each
// entry's node, as the driver does: an exact-size chunk if there is one,
// else the largest, split as needed. ENOMEM when the node has too little;
// on any failure nothing of the request stays assigned.
func (b *Backend) AssignMemory(ctx context.Context, i int, chunks []ihk.MemChunk) error {
	const op = "assign_memory"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.initial(op, o, now); err != nil {
			return err
		}
		if len(chunks) == 0 {
			return b.err(op, i, syscall.EINVAL, "no chunks")
		}
		free := append([]ihk.MemChunk{}, s.FreeChunks...)
		assigned := append([]ihk.MemChunk{}, o.Memory...)
		for _, c := range chunks {
			if c.Bytes == 0 || c.Bytes%ihk.MemoryGranule != 0 {
				return b.err(op, i, syscall.EINVAL, "chunk %s: size not a multiple of %d", c, ihk.MemoryGranule)
			}
			var pieces []ihk.MemChunk
			free, pieces = takeMemory(free, c)
			if pieces == nil {
				return b.err(op, i, syscall.ENOMEM, "chunk %s: not enough reserved memory on numa node %d", c, c.NUMANode)
			}
			assigned = append(assigned, pieces...)
		}
		s.FreeChunks, o.Memory = free, assigned
		for _, c := range chunks {
			b.log.Info("ihk sim: assigned memory", "os", i, "numa", c.NUMANode, "bytes", c.Bytes)
		}
		return nil
	})
}

// takeMemory takes want.Bytes from the free chunks of want.NUMANode and
// returns the remaining free list and the pieces taken (nil if the node has
// too little).
func takeMemory(free []ihk.MemChunk, want ihk.MemChunk) ([]ihk.MemChunk, []ihk.MemChunk) {
	var total uint64
	for _, c := range free {
		if c.NUMANode == want.NUMANode {
			total += c.Bytes
		}
	}
	if total < want.Bytes {
		return free, nil
	}
	free = append([]ihk.MemChunk{}, free...)
	var pieces []ihk.MemChunk
	remaining := want.Bytes
	for remaining > 0 {
		if k := indexChunk(free, ihk.MemChunk{Bytes: remaining, NUMANode: want.NUMANode}); k >= 0 {
			free = append(free[:k], free[k+1:]...)
			pieces = append(pieces, ihk.MemChunk{Bytes: remaining, NUMANode: want.NUMANode})
			break
		}
		largest := -1
		for k, c := range free {
			if c.NUMANode == want.NUMANode && (largest < 0 || c.Bytes > free[largest].Bytes) {
				largest = k
			}
		}
		if free[largest].Bytes > remaining {
			free[largest].Bytes -= remaining
			pieces = append(pieces, ihk.MemChunk{Bytes: remaining, NUMANode: want.NUMANode})
			break
		}
		pieces = append(pieces, free[largest])
		remaining -= free[largest].Bytes
		free = append(free[:largest], free[largest+1:]...)
	}
	return free, pieces
}

// AssignedMemory lists the instance's memory chunks.
func (b *Backend) AssignedMemory(ctx context.Context, i int) ([]ihk.MemChunk, error) {
	const op = "assigned_memory"
	var out []ihk.MemChunk
	err := b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		out = nonNilChunks(o.Memory)
		return nil
	})
	return out, err
}

// LoadImage records the kernel image: EBUSY unless NOT_BOOTED, EINVAL for a
// path over ihk.MaxPathLen bytes or without assigned CPUs and memory, ENOENT
// (or the stat error) when the file cannot be found, EINVAL when it is not a
// regular file. The image is not parsed.
func (b *Backend) LoadImage(ctx context.Context, i int, path string) error {
	const op = "load_image"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.initial(op, o, now); err != nil {
			return err
		}
		switch {
		case len(path) > ihk.MaxPathLen:
			return b.err(op, i, syscall.EINVAL, "image path is %d bytes, limit %d", len(path), ihk.MaxPathLen)
		case len(o.CPUs) == 0:
			return b.err(op, i, syscall.EINVAL, "no cpus assigned")
		case len(o.Memory) == 0:
			return b.err(op, i, syscall.EINVAL, "no memory assigned")
		}
		fi, err := os.Stat(path)
		if err != nil {
			errno := syscall.ENOENT
			var en syscall.Errno
			if errors.As(err, &en) {
				errno = en
			}
			return b.err(op, i, errno, "image %s", path)
		}
		if !fi.Mode().IsRegular() {
			return b.err(op, i, syscall.EINVAL, "image %s is not a regular file", path)
		}
		o.Image = path
		b.log.Info("ihk sim: loaded image", "os", i, "image", path)
		return nil
	})
}

// SetKernelArgs records the kernel arguments: EBUSY unless NOT_BOOTED,
// EINVAL over ihk.MaxKargsLen bytes or without ihk.RequiredKarg.
func (b *Backend) SetKernelArgs(ctx context.Context, i int, kargs string) error {
	const op = "set_kernel_args"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.initial(op, o, now); err != nil {
			return err
		}
		if len(kargs) > ihk.MaxKargsLen {
			return b.err(op, i, syscall.EINVAL, "kernel arguments are %d bytes, limit %d", len(kargs), ihk.MaxKargsLen)
		}
		if !slices.Contains(strings.Fields(kargs), ihk.RequiredKarg) {
			return b.err(op, i, syscall.EINVAL, "kernel arguments %q lack %s", kargs, ihk.RequiredKarg)
		}
		o.Kargs = kargs
		b.log.Info("ihk sim: set kernel arguments", "os", i, "kargs", kargs)
		return nil
	})
}

// Boot boots the instance and returns once it is READY (after 80% of
// BootDelay); RUNNING follows at BootDelay. EBUSY if this or any other
// instance is booted (one booted OS per device), EINVAL without CPUs, memory
// or a loaded image. If ctx ends first, Boot returns early and the boot
// goes on.
func (b *Backend) Boot(ctx context.Context, i int) error {
	const op = "boot"
	var readyAt time.Time
	err := b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		switch {
		case o.Boot != nil:
			return b.err(op, i, syscall.EBUSY, "os is %s", o.status(now))
		case s.BootedOS != nil:
			return b.err(op, i, syscall.EBUSY, "os %d is booted (one booted os per device)", *s.BootedOS)
		case len(o.CPUs) == 0 || len(o.Memory) == 0:
			return b.err(op, i, syscall.EINVAL, "no cpus or memory assigned")
		case o.Image == "":
			return b.err(op, i, syscall.EINVAL, "no image loaded")
		}
		id := make([]byte, 8)
		_, _ = rand.Read(id)
		start := now.UnixNano()
		d := int64(b.bootDelay)
		o.Boot = &bootState{
			ID: hex.EncodeToString(id),
			Timeline: Timeline{
				BootNS:    start,
				BootedNS:  start + d*4/10,
				ReadyNS:   start + d*8/10,
				RunningNS: start + d,
			},
		}
		o.Boot.addKmsg(now, fmt.Sprintf("IHK/McKernel simulated by slurm-lwk (not a real kernel) booting as os %d", i))
		o.Boot.addKmsg(now, fmt.Sprintf("image: %s", o.Image))
		o.Boot.addKmsg(now, fmt.Sprintf("kargs: %s", o.Kargs))
		o.Boot.addKmsg(now, fmt.Sprintf("cpus: %d LWK CPUs on Linux CPUs %s (LWK order %s, boot CPU %d)",
			len(o.CPUs), listString(o.CPUs), intsString(o.CPUs), o.CPUs[0]))
		for _, c := range o.Memory {
			o.Boot.addKmsg(now, fmt.Sprintf("memory: %d bytes on NUMA node %d", c.Bytes, c.NUMANode))
		}
		idx := i
		s.BootedOS = &idx
		readyAt = time.Unix(0, o.Boot.Timeline.ReadyNS)
		b.log.Info("ihk sim: booting os", "os", i, "cpus", listString(o.CPUs), "boot_delay", b.bootDelay)
		return nil
	})
	if err != nil {
		return err
	}
	if wait := time.Until(readyAt); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("ihk %s os %d: waiting for READY: %w", ioctlName(op), i, ctx.Err())
		}
	}
	return nil
}

func intsString(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// Shutdown shuts a booted instance down: its CPUs and memory go back to the
// reserved pool, the image and kernel arguments are forgotten and the
// status is NOT_BOOTED. A NOT_BOOTED instance is left alone. Programs that
// mcexec stand-ins run are not stopped.
func (b *Backend) Shutdown(ctx context.Context, i int) error {
	const op = "shutdown"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if o.Boot != nil {
			b.shutdown(s, o, now)
		}
		return nil
	})
}

func (b *Backend) shutdown(s *state, o *osState, now time.Time) {
	if o.Boot != nil {
		b.log.Info("ihk sim: shut down os", "os", o.Index, "status", o.status(now).String())
	}
	s.FreeChunks = append(s.FreeChunks, o.Memory...)
	o.Memory = []ihk.MemChunk{}
	o.CPUs = []int{}
	o.Image, o.Kargs = "", ""
	o.Boot = nil
	if s.BootedOS != nil && *s.BootedOS == o.Index {
		s.BootedOS = nil
	}
}

// Status returns the instance's status (ENOENT if it does not exist).
func (b *Backend) Status(ctx context.Context, i int) (ihk.Status, error) {
	const op = "status"
	var st ihk.Status
	err := b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		st = o.status(now)
		return nil
	})
	return st, err
}

// ReadKmsg returns the simulated LWK kernel log: the boot banner, the boot
// milestones reached so far, and events (freeze, panic, hang). EINVAL when
// not booted.
func (b *Backend) ReadKmsg(ctx context.Context, i int) ([]byte, error) {
	const op = "read_kmsg"
	var out []byte
	err := b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.bootedInstance(s, op, i)
		if err != nil {
			return err
		}
		out = o.Boot.kmsg(now)
		return nil
	})
	return out, err
}

func (bs *bootState) addKmsg(now time.Time, text string) {
	bs.Kmsg = append(bs.Kmsg, kmsgEntry{AtNS: now.UnixNano(), Text: text})
}

// kmsg renders the ring at now, Linux-style "[seconds.micros] text" relative
// to BOOT, keeping the newest kmsgSize bytes.
func (bs *bootState) kmsg(now time.Time) []byte {
	entries := append([]kmsgEntry{}, bs.Kmsg...)
	tl := bs.Timeline
	for _, m := range []kmsgEntry{
		{tl.BootedNS, "arch_init done: status BOOTED"},
		{tl.ReadyNS, "arch_ready: status READY, IKC up"},
		{tl.RunningNS, "done_init: status RUNNING"},
	} {
		if m.AtNS <= now.UnixNano() {
			entries = append(entries, m)
		}
	}
	sort.SliceStable(entries, func(a, b int) bool { return entries[a].AtNS < entries[b].AtNS })
	var sb strings.Builder
	for _, e := range entries {
		rel := time.Duration(e.AtNS - tl.BootNS)
		fmt.Fprintf(&sb, "[%5d.%06d] %s\n", int64(rel/time.Second), int64(rel%time.Second/time.Microsecond), e.Text)
	}
	out := []byte(sb.String())
	if len(out) > kmsgSize {
		out = out[len(out)-kmsgSize:]
	}
	return out
}

// Freeze freezes a RUNNING instance: FREEZING, then FROZEN shortly after.
// EBUSY if already FREEZING/FROZEN, EINVAL in any other state. The programs
// of mcexec stand-ins keep running on Linux.
func (b *Backend) Freeze(ctx context.Context, i int) error {
	const op = "freeze"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		switch st := o.status(now); st {
		case ihk.StatusFreezing, ihk.StatusFrozen:
			return b.err(op, i, syscall.EBUSY, "os is %s", st)
		case ihk.StatusRunning:
		default:
			return b.err(op, i, syscall.EINVAL, "os is %s, not RUNNING", st)
		}
		o.Boot.Timeline.FreezeNS = now.UnixNano()
		o.Boot.Timeline.FrozenNS = now.Add(freezeLatency).UnixNano()
		o.Boot.addKmsg(now, "freeze requested: all LWK cpus frozen")
		b.log.Info("ihk sim: froze os", "os", i)
		return nil
	})
}

// Thaw resumes a FREEZING or FROZEN instance (EINVAL otherwise).
func (b *Backend) Thaw(ctx context.Context, i int) error {
	const op = "thaw"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if st := o.status(now); st != ihk.StatusFreezing && st != ihk.StatusFrozen {
			return b.err(op, i, syscall.EINVAL, "os is %s, not FREEZING or FROZEN", st)
		}
		o.Boot.Timeline.FreezeNS, o.Boot.Timeline.FrozenNS = 0, 0
		o.Boot.addKmsg(now, "thawed: all LWK cpus resumed")
		b.log.Info("ihk sim: thawed os", "os", i)
		return nil
	})
}

// InjectPanic simulates an LWK kernel panic on a booted instance: status
// FAILED, a panic line in the kernel log, and a signal on every eventfd
// registered for ihk.EventStatus. Sim only; for tests.
func (b *Backend) InjectPanic(ctx context.Context, i int) error {
	const op = "inject_panic"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.bootedInstance(s, op, i)
		if err != nil {
			return err
		}
		o.Boot.Timeline.FailedNS = now.UnixNano()
		o.Boot.addKmsg(now, "Kernel panic - not syncing: simulated panic injected by a test")
		b.signal(o, ihk.EventStatus)
		b.log.Warn("ihk sim: injected panic", "os", i)
		return nil
	})
}

// InjectHang makes the next DetectHangup on a booted instance find a hang.
// Sim only; for tests.
func (b *Backend) InjectHang(ctx context.Context, i int) error {
	const op = "inject_hang"
	return b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.bootedInstance(s, op, i)
		if err != nil {
			return err
		}
		o.Boot.HangPending = true
		return nil
	})
}

// InjectOOM signals the eventfds registered for ihk.EventOOM on a booted
// instance, as McKernel does when its memory runs short. Sim only.
func (b *Backend) InjectOOM(ctx context.Context, i int) error {
	const op = "inject_oom"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.bootedInstance(s, op, i)
		if err != nil {
			return err
		}
		o.Boot.addKmsg(now, "memory usage reached the OOM margin (simulated)")
		b.signal(o, ihk.EventOOM)
		return nil
	})
}

// readSmall reads a small procfs file.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}
