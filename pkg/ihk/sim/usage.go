package sim

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

func startTicks(proc procfs.FS, pid int) (uint64, error) {
	st, err := proc.Stat(pid)
	if err != nil {
		return 0, err
	}
	return st.StartTicks, nil
}

// usageSample is an instance's CPU and memory use at one instant.
type usageSample struct {
	UserNS, SystemNS uint64
	RSSBytes         uint64
	MaxRSSBytes      uint64
	Threads          int32
}

// measure adds the usage records the mcexec stand-ins appended to the
// instance's device (finished programs of this boot) to the live programs:
// the children of the stand-ins, which hold the device with flock(LOCK_SH),
// read from /proc/<pid>/stat.
func (b *Backend) measure(o *osState) (usageSample, error) {
	var u usageSample
	path := b.DevicePath(o.Index)
	f, err := os.Open(path)
	if err != nil {
		return u, err
	}
	_, recs, err := ReadDevice(f)
	f.Close()
	if err != nil {
		return u, err
	}
	for _, r := range recs {
		if r.BootID != o.Boot.ID {
			continue
		}
		u.UserNS += r.UserNS
		u.SystemNS += r.SystemNS
		u.MaxRSSBytes = max(u.MaxRSSBytes, r.MaxRSSBytes)
	}
	isHolder, err := b.flockHolders(path)
	if err != nil {
		return u, err
	}
	if len(isHolder) == 0 {
		return u, nil
	}
	pids, err := b.proc.PIDs()
	if err != nil {
		return u, err
	}
	page := uint64(os.Getpagesize())
	for _, pid := range pids {
		st, err := b.proc.Stat(pid)
		if err != nil || !isHolder[st.PPID] || isHolder[pid] {
			continue
		}
		u.UserNS += st.UserTicks * uint64(time.Second/procfs.UserHZ)
		u.SystemNS += st.SystemTicks * uint64(time.Second/procfs.UserHZ)
		u.RSSBytes += st.RSSPages * page
		u.Threads += st.Threads
	}
	u.MaxRSSBytes = max(u.MaxRSSBytes, u.RSSBytes)
	return u, nil
}

// Rusage reports the instance's usage since boot, built from the programs
// the mcexec stand-ins ran (see measure): user and system time, RSS in the
// 4 KiB class, threads, and peaks. Per-CPU user time is the total spread
// evenly over the LWK CPUs and NUMA usage is charged to the first LWK NUMA
// node: the stand-in cannot know how the LWK would have placed the work.
// Kernel memory is reported as 0. EINVAL when not booted.
func (b *Backend) Rusage(ctx context.Context, i int) (*ihk.Rusage, error) {
	const op = "rusage"
	var out *ihk.Rusage
	err := b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.booted(op, o); err != nil {
			return err
		}
		u, err := b.measure(o)
		if err != nil {
			return b.err(op, i, syscall.EIO, "measure usage: %v", err)
		}
		o.Boot.PeakThreads = max(o.Boot.PeakThreads, u.Threads)
		o.Boot.PeakRSSBytes = max(o.Boot.PeakRSSBytes, u.MaxRSSBytes)
		r := &ihk.Rusage{
			MemoryMaxUsageBytes: o.Boot.PeakRSSBytes,
			SystemTicks:         ceilDiv(u.SystemNS, uint64(time.Second/procfs.UserHZ)),
			UserTicks:           ceilDiv(u.UserNS, uint64(time.Second/procfs.UserHZ)),
			UserNanoseconds:     u.UserNS,
			Threads:             u.Threads,
			MaxThreads:          o.Boot.PeakThreads,
		}
		r.MemoryRSSBytes[ihk.PageSize4K] = u.RSSBytes
		nodes := map[int]bool{}
		for _, c := range o.Memory {
			nodes[c.NUMANode] = true
		}
		r.NUMABytes = make([]uint64, len(nodes))
		if len(nodes) > 0 {
			r.NUMABytes[0] = u.RSSBytes
		}
		n := uint64(len(o.CPUs))
		r.PerCPUUserNanoseconds = make([]uint64, n)
		for k := range r.PerCPUUserNanoseconds {
			r.PerCPUUserNanoseconds[k] = u.UserNS / n
		}
		if n > 0 {
			r.PerCPUUserNanoseconds[0] += u.UserNS % n
		}
		out = r
		return nil
	})
	return out, err
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// PerfSet registers up to perfCounters (4) counters, like a CPU with four
// programmable counters, and returns how many were registered. Counting is
// disabled until PerfControl(ihk.PerfEnable). EINVAL when not booted or
// without attributes.
func (b *Backend) PerfSet(ctx context.Context, i int, attrs []ihk.PerfAttr) (int, error) {
	const op = "perf_set"
	n := 0
	err := b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.booted(op, o); err != nil {
			return err
		}
		if len(attrs) == 0 {
			return b.err(op, i, syscall.EINVAL, "no attributes")
		}
		n = min(len(attrs), perfCounters)
		o.Boot.Perf = perfState{Attrs: append([]ihk.PerfAttr{}, attrs[:n]...), Values: make([]uint64, n)}
		return nil
	})
	return n, err
}

// PerfControl enables, disables or destroys the registered counters.
// Simulated counters count CPU time of the instance's programs, one event
// per nanosecond (a 1 GHz cycle counter), honouring ExcludeUser and
// ExcludeKernel.
func (b *Backend) PerfControl(ctx context.Context, i int, pop ihk.PerfOp) error {
	const op = "perf_control"
	if name, ok := perfCallNames[pop]; ok {
		b.countAs(name)
	}
	return b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.booted(op, o); err != nil {
			return err
		}
		p := &o.Boot.Perf
		switch pop {
		case ihk.PerfEnable:
			if p.Enabled {
				return nil
			}
			u, err := b.measure(o)
			if err != nil {
				return b.err(op, i, syscall.EIO, "measure usage: %v", err)
			}
			p.Enabled, p.BaseUserNS, p.BaseSystemNS = true, u.UserNS, u.SystemNS
		case ihk.PerfDisable, ihk.PerfDestroy:
			if p.Enabled {
				u, err := b.measure(o)
				if err != nil {
					return b.err(op, i, syscall.EIO, "measure usage: %v", err)
				}
				p.Values = p.counts(u)
				p.Enabled = false
			}
			if pop == ihk.PerfDestroy {
				*p = perfState{}
			}
		default:
			return b.err(op, i, syscall.EINVAL, "unknown perf operation %d", pop)
		}
		return nil
	})
}

// counts returns the counter values with the current enabled period added.
func (p *perfState) counts(u usageSample) []uint64 {
	out := append([]uint64{}, p.Values...)
	if !p.Enabled {
		return out
	}
	du := u.UserNS - min(u.UserNS, p.BaseUserNS)
	ds := u.SystemNS - min(u.SystemNS, p.BaseSystemNS)
	for k, a := range p.Attrs {
		if !a.ExcludeUser {
			out[k] += du
		}
		if !a.ExcludeKernel {
			out[k] += ds
		}
	}
	return out
}

// PerfRead returns the first n counters (1 ≤ n ≤ registered, else EINVAL).
func (b *Backend) PerfRead(ctx context.Context, i int, n int) ([]uint64, error) {
	const op = "perf_read"
	var out []uint64
	err := b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.booted(op, o); err != nil {
			return err
		}
		p := &o.Boot.Perf
		if n < 1 || n > len(p.Attrs) {
			return b.err(op, i, syscall.EINVAL, "%d counters requested, %d registered", n, len(p.Attrs))
		}
		var u usageSample
		if p.Enabled {
			if u, err = b.measure(o); err != nil {
				return b.err(op, i, syscall.EIO, "measure usage: %v", err)
			}
		}
		out = p.counts(u)[:n]
		return nil
	})
	return out, err
}

// flockHolders returns the processes that hold a flock on the device
// stand-in: the mcexec stand-ins running on the instance. /proc/locks is
// one read, where finding every process with the file open would scan the
// descriptor tables of all of them (devholders), too slow to repeat at each
// monitoring sample.
func (b *Backend) flockHolders(path string) (map[int]bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	locks, err := b.proc.Locks()
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, l := range locks {
		if l.Class == "FLOCK" && l.PID > 0 && l.Inode == st.Ino &&
			l.Major == unix.Major(st.Dev) && l.Minor == unix.Minor(st.Dev) {
			out[l.PID] = true
		}
	}
	return out, nil
}
