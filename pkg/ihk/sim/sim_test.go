package sim

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ihktest"
)

// TestConformance runs the ihk conformance suite on fixture machines: the
// paper's numa=fake=12 evaluation node and this 2-CPU host.
func TestConformance(t *testing.T) {
	img := image(t)
	tests := []struct {
		name    string
		machine string
		caps    ihktest.Capabilities
	}{
		{
			name: "paper node", machine: "paper-e5520-fake12",
			// Node 2 (an emulated job node) has 995 MiB free.
			caps: ihktest.Capabilities{CPUs: []int{2, 3, 4}, MissingCPU: 16, NUMANode: 2, ChunkBytes: 256 << 20, TooMuchMemory: 1 << 30},
		},
		{
			name: "this host", machine: "this-host",
			caps: ihktest.Capabilities{CPUs: []int{1, 0}, MissingCPU: 2, NUMANode: 0, ChunkBytes: 64 << 20, TooMuchMemory: 4 << 30},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caps := tc.caps
			caps.Image = img
			caps.Kargs = "hidos allow_oversubscribe"
			caps.ReserveOverlap = ihk.ErrBusy
			caps.Hold = func(t *testing.T, c ihk.Client, idx int) func() { return hold(t, c.(*Backend), idx) }
			caps.RunningTimeout = 5 * time.Second
			caps.Perf = true
			ihktest.Run(t, func(t *testing.T) ihk.Client {
				return newBackend(t, func(o *Options) {
					o.Topology = fixture.Topology(tc.machine)
					o.BootDelay = 50 * time.Millisecond
				})
			}, caps)
		})
	}
}

// TestRefusals covers the simulator-specific rules on top of the suite.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		run      func(t *testing.T, b *Backend) error
		errno    syscall.Errno
		notFound bool
	}{
		{
			name:  "reserve an offline cpu",
			run:   func(t *testing.T, b *Backend) error { return b.ReserveCPUs(ctx, []int{15}) },
			errno: syscall.EINVAL,
		},
		{
			name: "reserve overlapping cpus",
			run: func(t *testing.T, b *Backend) error {
				require.NoError(t, b.ReserveCPUs(ctx, []int{2, 3}))
				return b.ReserveCPUs(ctx, []int{3, 4})
			},
			errno: syscall.EBUSY,
		},
		{
			name:  "reserve a cpu twice in one request",
			run:   func(t *testing.T, b *Backend) error { return b.ReserveCPUs(ctx, []int{2, 2}) },
			errno: syscall.EINVAL,
		},
		{
			name: "reserve memory on a missing node",
			run: func(t *testing.T, b *Backend) error {
				return b.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: ihk.MemoryGranule, NUMANode: 7}})
			},
			errno: syscall.EINVAL,
		},
		{
			name: "reserve more than the node's free memory in two steps",
			run: func(t *testing.T, b *Backend) error {
				require.NoError(t, b.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: gib, NUMANode: 1}}))
				return b.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: gib + ihk.MemoryGranule, NUMANode: 1}})
			},
			errno: syscall.ENOMEM,
		},
		{
			name: "configure a booting os",
			run: func(t *testing.T, b *Backend) error {
				idx := booted(t, b, []int{2})
				return b.SetKernelArgs(ctx, idx, "hidos")
			},
			errno: syscall.EBUSY,
		},
		{
			name: "boot without an image",
			run: func(t *testing.T, b *Backend) error {
				require.NoError(t, b.ReserveCPUs(ctx, []int{2}))
				require.NoError(t, b.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: ihk.MemoryGranule, NUMANode: 0}}))
				idx, err := b.CreateOS(ctx)
				require.NoError(t, err)
				require.NoError(t, b.AssignCPUs(ctx, idx, []int{2}))
				require.NoError(t, b.AssignMemory(ctx, idx, []ihk.MemChunk{{Bytes: ihk.MemoryGranule, NUMANode: 0}}))
				return b.Boot(ctx, idx)
			},
			errno: syscall.EINVAL,
		},
		{
			name: "load a directory",
			run: func(t *testing.T, b *Backend) error {
				require.NoError(t, b.ReserveCPUs(ctx, []int{2}))
				require.NoError(t, b.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: ihk.MemoryGranule, NUMANode: 0}}))
				idx, err := b.CreateOS(ctx)
				require.NoError(t, err)
				require.NoError(t, b.AssignCPUs(ctx, idx, []int{2}))
				require.NoError(t, b.AssignMemory(ctx, idx, []ihk.MemChunk{{Bytes: ihk.MemoryGranule, NUMANode: 0}}))
				return b.LoadImage(ctx, idx, t.TempDir())
			},
			errno: syscall.EINVAL,
		},
		{
			name: "kargs with hidos only as a substring",
			run: func(t *testing.T, b *Backend) error {
				idx, err := b.CreateOS(ctx)
				require.NoError(t, err)
				return b.SetKernelArgs(ctx, idx, "nohidos")
			},
			errno: syscall.EINVAL,
		},
		{
			name: "detect hangup on a missing os",
			run: func(t *testing.T, b *Backend) error {
				_, err := b.DetectHangup(ctx, 5)
				return err
			},
			errno: syscall.EINVAL, notFound: true,
		},
		{
			name: "detect hangup before boot",
			run: func(t *testing.T, b *Backend) error {
				idx, err := b.CreateOS(ctx)
				require.NoError(t, err)
				_, err = b.DetectHangup(ctx, idx)
				return err
			},
			errno: syscall.EAGAIN,
		},
		{
			name:  "destroy a missing os",
			run:   func(t *testing.T, b *Backend) error { return b.DestroyOS(ctx, 63) },
			errno: syscall.EINVAL, notFound: true,
		},
		{
			name:  "assign to a missing os",
			run:   func(t *testing.T, b *Backend) error { return b.AssignCPUs(ctx, 3, []int{2}) },
			errno: syscall.ENOENT, notFound: true,
		},
		{
			name: "perf read without counters",
			run: func(t *testing.T, b *Backend) error {
				idx := booted(t, b, []int{2})
				_, err := b.PerfRead(ctx, idx, 1)
				return err
			},
			errno: syscall.EINVAL,
		},
		{
			name: "register an unknown event type",
			run: func(t *testing.T, b *Backend) error {
				idx, err := b.CreateOS(ctx)
				require.NoError(t, err)
				_, err = b.RegisterEvent(ctx, idx, 1)
				return err
			},
			errno: syscall.EINVAL,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, nil)
			err := tc.run(t, b)
			var ie *ihk.Error
			require.ErrorAs(t, err, &ie)
			require.Equal(t, tc.errno, ie.Errno, "got %v", err)
			require.Equal(t, tc.notFound, errors.Is(err, ihk.ErrNotFound), "not found: %v", err)
		})
	}
}

func TestReserveMemoryKeepsEarlierChunks(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	err := b.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: gib, NUMANode: 2}, {Bytes: 2 * gib, NUMANode: 2}})
	require.ErrorIs(t, err, ihk.ErrNoMemory)
	mem, err := b.ReservedMemory(ctx)
	require.NoError(t, err)
	require.Equal(t, []ihk.MemChunk{{Bytes: gib, NUMANode: 2}}, mem, "the driver leaves earlier chunks reserved")
}

func TestAssignMemorySplitsChunks(t *testing.T) {
	ctx := context.Background()
	mib := uint64(1 << 20)
	tests := []struct {
		name     string
		reserved []ihk.MemChunk
		assign   []ihk.MemChunk
		assigned []ihk.MemChunk
		free     []ihk.MemChunk
	}{
		{
			name:     "exact match preferred over the largest",
			reserved: []ihk.MemChunk{{Bytes: 512 * mib}, {Bytes: 128 * mib}},
			assign:   []ihk.MemChunk{{Bytes: 128 * mib}},
			assigned: []ihk.MemChunk{{Bytes: 128 * mib}},
			free:     []ihk.MemChunk{{Bytes: 512 * mib}},
		},
		{
			name:     "largest split",
			reserved: []ihk.MemChunk{{Bytes: 128 * mib}, {Bytes: 512 * mib}},
			assign:   []ihk.MemChunk{{Bytes: 200 * mib}},
			assigned: []ihk.MemChunk{{Bytes: 200 * mib}},
			free:     []ihk.MemChunk{{Bytes: 128 * mib}, {Bytes: 312 * mib}},
		},
		{
			name:     "spans chunks",
			reserved: []ihk.MemChunk{{Bytes: 128 * mib}, {Bytes: 256 * mib}},
			assign:   []ihk.MemChunk{{Bytes: 320 * mib}},
			assigned: []ihk.MemChunk{{Bytes: 256 * mib}, {Bytes: 64 * mib}},
			free:     []ihk.MemChunk{{Bytes: 64 * mib}},
		},
		{
			name:     "other nodes untouched",
			reserved: []ihk.MemChunk{{Bytes: 128 * mib, NUMANode: 1}, {Bytes: 128 * mib}},
			assign:   []ihk.MemChunk{{Bytes: 128 * mib}},
			assigned: []ihk.MemChunk{{Bytes: 128 * mib}},
			free:     []ihk.MemChunk{{Bytes: 128 * mib, NUMANode: 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, nil)
			require.NoError(t, b.ReserveMemory(ctx, tc.reserved))
			idx, err := b.CreateOS(ctx)
			require.NoError(t, err)
			require.NoError(t, b.AssignMemory(ctx, idx, tc.assign))
			got, err := b.AssignedMemory(ctx, idx)
			require.NoError(t, err)
			require.Equal(t, tc.assigned, got)
			free, err := b.ReservedMemory(ctx)
			require.NoError(t, err)
			require.Equal(t, tc.free, free)
			// Destroy gives the memory back, split (chunks are not merged,
			// as in the driver).
			require.NoError(t, b.DestroyOS(ctx, idx))
			free, err = b.ReservedMemory(ctx)
			require.NoError(t, err)
			require.Len(t, free, len(tc.free)+len(tc.assigned))
		})
	}
}

func TestAssignMemoryAllOrNothing(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	require.NoError(t, b.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: 64 << 20}}))
	idx, err := b.CreateOS(ctx)
	require.NoError(t, err)
	err = b.AssignMemory(ctx, idx, []ihk.MemChunk{{Bytes: 32 << 20}, {Bytes: 64 << 20}})
	require.ErrorIs(t, err, ihk.ErrNoMemory)
	got, err := b.AssignedMemory(ctx, idx)
	require.NoError(t, err)
	require.Empty(t, got)
	free, err := b.ReservedMemory(ctx)
	require.NoError(t, err)
	require.Equal(t, []ihk.MemChunk{{Bytes: 64 << 20}}, free)
}

func TestTooManyInstances(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	for i := 0; i < ihk.MaxOSInstances; i++ {
		idx, err := b.CreateOS(ctx)
		require.NoError(t, err)
		require.Equal(t, i, idx)
	}
	_, err := b.CreateOS(ctx)
	require.ErrorIs(t, err, ihk.ErrNoMemory)
}

func TestBootTimeline(t *testing.T) {
	ctx := context.Background()
	// Boot returns at READY, 80% into the delay; RUNNING comes at the
	// delay. Long enough that a loaded machine's boot call (the state
	// file, the timeline) fits in the last 20%: at 400 ms it did not.
	const delay = 2 * time.Second
	b := newBackend(t, func(o *Options) { o.BootDelay = delay })
	start := time.Now()
	idx := booted(t, b, []int{2, 3})
	took := time.Since(start)
	require.GreaterOrEqual(t, took, delay*8/10, "Boot returns at READY")
	require.Less(t, took, delay, "Boot returns before RUNNING")

	// Another process's view: a second backend on the same state.
	other, err := Open(Options{StateDir: b.StateDir(), Topology: testTopology()})
	require.NoError(t, err)
	st, err := other.Status(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusReady, st)
	require.Eventually(t, func() bool {
		st, err := other.Status(ctx, idx)
		return err == nil && st == ihk.StatusRunning
	}, 2*delay, 10*time.Millisecond)

	kmsg, err := b.ReadKmsg(ctx, idx)
	require.NoError(t, err)
	for _, want := range []string{"simulated", "Linux CPUs 2-3", "268435456 bytes on NUMA node 0", "kargs: hidos allow_oversubscribe", "READY", "RUNNING"} {
		require.Contains(t, string(kmsg), want)
	}
}

func TestBootCancelled(t *testing.T) {
	b := newBackend(t, func(o *Options) { o.BootDelay = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	chunk := ihk.MemChunk{Bytes: ihk.MemoryGranule}
	require.NoError(t, b.ReserveMemory(ctx, []ihk.MemChunk{chunk}))
	require.NoError(t, b.ReserveCPUs(ctx, []int{2}))
	idx, err := b.CreateOS(ctx)
	require.NoError(t, err)
	require.NoError(t, b.AssignCPUs(ctx, idx, []int{2}))
	require.NoError(t, b.AssignMemory(ctx, idx, []ihk.MemChunk{chunk}))
	require.NoError(t, b.LoadImage(ctx, idx, image(t)))
	err = b.Boot(ctx, idx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	st, err := b.Status(context.Background(), idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusBooting, st, "the boot goes on")
	require.NoError(t, b.DestroyOS(context.Background(), idx))
}

func TestDeviceStandIn(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	fi, err := os.Stat(b.StateDir())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o711), fi.Mode().Perm(), "state dir traversable to reach dev")
	fi, err = os.Stat(b.DevDir())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	_, err = os.Stat(filepath.Join(b.DevDir(), "mcd0"))
	require.NoError(t, err)

	idx := booted(t, b, []int{5, 4})
	path := b.DevicePath(idx)
	fi, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	ino := fi.Sys().(*syscall.Stat_t).Ino

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	info, recs, err := ReadDevice(f)
	require.NoError(t, err)
	require.Equal(t, []int{5, 4}, info.CPUs)
	require.Equal(t, ihk.StatusRunning, info.Status(time.Now()))
	require.Empty(t, recs)

	rec := UsageRecord{BootID: info.BootID, PID: 42, UserNS: 3e9, SystemNS: 1e9, MaxRSSBytes: 1 << 20}
	require.NoError(t, AppendUsage(f, rec))
	require.NoError(t, AppendUsage(f, UsageRecord{BootID: "another-boot", PID: 43, UserNS: 5e9}))
	require.NoError(t, os.Chmod(path, 0o640))

	// A state change rewrites the document in place: same inode and mode,
	// records of this boot kept.
	require.NoError(t, b.Freeze(ctx, idx))
	fi, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, ino, fi.Sys().(*syscall.Stat_t).Ino)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	info, recs, err = ReadDevice(f)
	require.NoError(t, err)
	require.NotNil(t, info.Timeline)
	require.NotZero(t, info.Timeline.FreezeNS)
	require.Equal(t, []UsageRecord{rec}, recs)

	ru, err := b.Rusage(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, uint64(3e9), ru.UserNanoseconds)
	require.Equal(t, uint64(300), ru.UserTicks)
	require.Equal(t, uint64(100), ru.SystemTicks)
	require.Equal(t, []uint64{15e8, 15e8}, ru.PerCPUUserNanoseconds)
	require.Equal(t, uint64(1<<20), ru.MemoryMaxUsageBytes)

	// Shutdown forgets the boot: document without CPUs, records dropped.
	require.NoError(t, b.Shutdown(ctx, idx))
	info, recs, err = ReadDevice(f)
	require.NoError(t, err)
	require.Empty(t, info.CPUs)
	require.Nil(t, info.Timeline)
	require.Empty(t, recs)

	// The reader's descriptor would keep DESTROY_OS busy, as the driver's.
	f.Close()
	require.NoError(t, b.DestroyOS(ctx, idx))
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestDestroyHeld(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	idx := booted(t, b, []int{2})
	release := hold(t, b, idx)
	err := b.DestroyOS(ctx, idx)
	require.ErrorIs(t, err, ihk.ErrBusy)
	// Any other descriptor holds it too, as for the driver, also one of
	// the calling process (the node service runs the epilog in-process).
	f, err := os.Open(b.DevicePath(idx))
	require.NoError(t, err)
	release()
	require.ErrorIs(t, b.DestroyOS(ctx, idx), ihk.ErrBusy, "busy while this process has it open")
	require.NoError(t, f.Close())
	require.NoError(t, b.DestroyOS(ctx, idx))
	cpus, err := b.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{2}, cpus, "destroy returned the CPU to the pool")
}

// TestRusageLive runs a CPU-burning child of a holder (this process) and
// checks that the counters advance while it runs.
func TestRusageLive(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	idx := booted(t, b, []int{2})
	release := hold(t, b, idx)
	defer release()

	n, err := b.PerfSet(ctx, idx, []ihk.PerfAttr{{Config: 0x3c}, {Config: 0x3c, ExcludeUser: true, ExcludeKernel: true}})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, b.PerfControl(ctx, idx, ihk.PerfEnable))

	cmd := exec.Command(os.Args[0], "-test.run=^$", "300ms")
	cmd.Env = append(os.Environ(), helperEnv+"=burn")
	require.NoError(t, cmd.Start())
	var mid *ihk.Rusage
	require.Eventually(t, func() bool {
		mid, err = b.Rusage(ctx, idx)
		return err == nil && mid.UserNanoseconds+uint64(mid.SystemTicks) > 0 && mid.Threads > 0
	}, 2*time.Second, 20*time.Millisecond, "live child's CPU time is counted")
	require.NoError(t, cmd.Wait())
	vals, err := b.PerfRead(ctx, idx, 2)
	require.NoError(t, err)
	require.Zero(t, vals[1], "a counter excluding user and kernel counts nothing")
	require.NoError(t, b.PerfControl(ctx, idx, ihk.PerfDisable))

	// The exited child is no longer live; its usage arrives as a record.
	f, err := os.OpenFile(b.DevicePath(idx), os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	info, _, err := ReadDevice(f)
	require.NoError(t, err)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	require.NoError(t, AppendUsage(f, UsageRecord{BootID: info.BootID, PID: cmd.Process.Pid,
		UserNS: uint64(time.Duration(ru.Utime.Nano())), SystemNS: uint64(time.Duration(ru.Stime.Nano()))}))
	end, err := b.Rusage(ctx, idx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, end.UserNanoseconds, uint64(50*time.Millisecond), "300 ms of burning")
	require.GreaterOrEqual(t, end.MaxThreads, mid.Threads)
	require.Zero(t, end.Threads)
	after, err := b.PerfRead(ctx, idx, 1)
	require.NoError(t, err)
	require.GreaterOrEqual(t, after[0], vals[0], "counters do not go back")
}

func TestInjectPanicSignalsOtherProcess(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	idx := booted(t, b, []int{2})
	require.Equal(t, 0, idx)

	cmd := exec.Command(os.Args[0], "-test.run=^$", b.StateDir())
	cmd.Env = append(os.Environ(), helperEnv+"=wait-event")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	require.True(t, lines.Scan())
	require.Equal(t, "registered", lines.Text())

	require.NoError(t, b.InjectPanic(ctx, idx))
	require.True(t, lines.Scan(), "helper got the event")
	require.Equal(t, "event 1", lines.Text())
	require.NoError(t, cmd.Wait())

	st, err := b.Status(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusFailed, st)
	st, err = b.DetectHangup(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusFailed, st)
	kmsg, err := b.ReadKmsg(ctx, idx)
	require.NoError(t, err)
	require.Contains(t, string(kmsg), "panic")
	// The registering process is gone: raising again must not fail.
	require.NoError(t, b.InjectOOM(ctx, idx))
}

func TestInjectHang(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	idx := booted(t, b, []int{2})
	ev, err := b.RegisterEvent(ctx, idx, ihk.EventStatus)
	require.NoError(t, err)
	defer ev.Close()
	st, err := b.DetectHangup(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusRunning, st)
	require.NoError(t, b.InjectHang(ctx, idx))
	st, err = b.DetectHangup(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusHungup, st)
	n, err := ev.Read()
	require.NoError(t, err)
	require.Equal(t, uint64(1), n)
	st, err = b.Status(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusHungup, st)
	// A hung OS can still be shut down and destroyed.
	require.NoError(t, b.DestroyOS(ctx, idx))
}

func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	f, err := ParseFaults("# test\nfault create_os:EBUSY\nfault boot\nfault grant_device:EPERM\n")
	require.NoError(t, err)
	b := newBackend(t, nil)
	c := Inject(b, f, nil)
	_, err = c.CreateOS(ctx)
	require.ErrorIs(t, err, ihk.ErrBusy)
	require.Contains(t, err.Error(), "IHK_DEVICE_CREATE_OS (injected fault)")
	list, err := c.ListOS(ctx)
	require.NoError(t, err)
	require.Empty(t, list, "a failed operation does nothing")
	// apply's hook fails the steps that are not IHK operations, and only
	// those: the wrapper fails the others.
	require.ErrorIs(t, f.Before("grant_device"), syscall.EPERM)
	require.NoError(t, f.Before("boot"))
	require.NoError(t, f.Before("write_marker"))
	require.Same(t, b, Inject(b, nil, nil), "nothing to inject: no wrapper")
}

// TestCrashInjection runs CreateOS in a child process with LWK_SIM_CRASH:
// it must die by SIGKILL with the instance persisted.
func TestCrashInjection(t *testing.T) {
	b := newBackend(t, nil)
	for _, tc := range []struct {
		name      string
		env       string
		wantKill  bool
		wantOSes  []int
		wantError string
	}{
		{name: "crash after create", env: CrashEnv + "=create_os", wantKill: true, wantOSes: []int{0}},
		{name: "no fault", env: FaultEnv + "=", wantOSes: []int{0, 1}},
		{name: "fault", env: FaultEnv + "=create_os:ENOSPC", wantOSes: []int{0, 1}, wantError: "no space left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$", b.StateDir())
			cmd.Env = append(os.Environ(), helperEnv+"=create", tc.env)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			if tc.wantKill {
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee)
				ws := ee.Sys().(syscall.WaitStatus)
				require.True(t, ws.Signaled())
				require.Equal(t, syscall.SIGKILL, ws.Signal())
			} else if tc.wantError != "" {
				require.Error(t, err)
				require.Contains(t, stderr.String(), tc.wantError)
			} else {
				require.NoError(t, err, stderr.String())
			}
			list, err := b.ListOS(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.wantOSes, list)
		})
	}
}

func TestParseFaults(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		fault   string
		crash   string
		want    string
		wantErr string
	}{
		{name: "file", file: "fault boot:EBUSY\ncrash shutdown\n\n# comment\nfault reserve_cpus:22", want: "crash shutdown\nfault boot:EBUSY\nfault reserve_cpus:EINVAL"},
		{name: "default errno", file: "fault destroy_os", want: "fault destroy_os:EIO"},
		{name: "lifecycle steps", fault: "wait_running:ETIMEDOUT", crash: "grant_device,write_marker",
			want: "crash grant_device\ncrash write_marker\nfault wait_running:ETIMEDOUT"},
		{name: "optional defragmentation step", fault: "defrag_memory:EIO", crash: "defrag_memory",
			want: "crash defrag_memory\nfault defrag_memory:EIO"},
		{name: "env", fault: "boot:EBUSY,create_os", crash: "load_image", want: "crash load_image\nfault boot:EBUSY\nfault create_os:EIO"},
		{name: "unknown op in file", file: "fault reboot", wantErr: `faults line 1: unknown operation "reboot"`},
		{name: "unknown errno", fault: "boot:EWHAT", wantErr: `unknown errno "EWHAT"`},
		{name: "errno out of range", fault: "boot:0", wantErr: "out of range"},
		{name: "unknown directive", file: "fail boot", wantErr: `unknown directive "fail"`},
		{name: "unknown crash op", crash: "everything", wantErr: "LWK_SIM_CRASH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f *Faults
			var err error
			if tc.file != "" {
				f, err = ParseFaults(tc.file)
			} else {
				f, err = ParseFaultEnv(tc.fault, tc.crash)
			}
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, f.String())
		})
	}
}

func TestFaultsFromEnvFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FaultsFile)
	t.Setenv(FaultEnv, "boot:EBUSY")
	t.Setenv(CrashEnv, "")

	f, warn, err := FaultsFromEnv(dir)
	require.NoError(t, err)
	require.Empty(t, warn)
	require.Equal(t, "fault boot:EBUSY", f.String(), "no file")

	require.NoError(t, os.WriteFile(path, []byte("crash shutdown\n"), 0o600))
	f, warn, err = FaultsFromEnv(dir)
	require.NoError(t, err)
	require.Empty(t, warn)
	require.Equal(t, "crash shutdown\nfault boot:EBUSY", f.String())

	require.NoError(t, os.Chmod(path, 0o666))
	f, warn, err = FaultsFromEnv(dir)
	require.NoError(t, err)
	require.Contains(t, warn, "writable by group or others")
	require.Equal(t, "fault boot:EBUSY", f.String(), "file ignored")

	if os.Geteuid() == 0 {
		// A file owned by another user is ignored even when not writable.
		require.NoError(t, os.Chmod(path, 0o644))
		require.NoError(t, os.Chown(path, 65534, 65534))
		_, warn, err = FaultsFromEnv(dir)
		require.NoError(t, err)
		require.Contains(t, warn, "not owned by root")
	}
}

func TestOperationsCoverClient(t *testing.T) {
	// Every ihk.Client method has exactly one operation name.
	typ := reflectClient()
	require.Len(t, Operations(), typ.NumMethod())
	for i := 0; i < typ.NumMethod(); i++ {
		require.Contains(t, Operations(), snake(typ.Method(i).Name))
	}
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 && !(s[i-1] >= 'A' && s[i-1] <= 'Z') {
			b.WriteByte('_')
		}
		b.WriteString(strings.ToLower(string(r)))
	}
	// Runs of capitals (CPUs, OS) form one word.
	return b.String()
}

// TestConcurrentUpdates has many backends (each with its own lock file
// descriptor, as separate processes would) reserve and create at once: no
// update may be lost.
func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	first := newBackend(t, nil)
	errs := make(chan error, 14)
	for cpu := 0; cpu < 14; cpu++ {
		go func() {
			b, err := Open(Options{StateDir: first.StateDir(), Topology: testTopology()})
			if err == nil {
				err = b.ReserveCPUs(ctx, []int{cpu})
			}
			if err == nil {
				_, err = b.CreateOS(ctx)
			}
			errs <- err
		}()
	}
	for range 14 {
		require.NoError(t, <-errs)
	}
	cpus, err := first.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, cpus)
	list, err := first.ListOS(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, list)
}

func TestOpenChecks(t *testing.T) {
	tests := []struct {
		name    string
		opts    func(dir string) Options
		wantErr string
	}{
		{name: "relative state dir", opts: func(string) Options { return Options{StateDir: "sim", Topology: testTopology()} }, wantErr: "not absolute"},
		{name: "no topology", opts: func(dir string) Options { return Options{StateDir: dir} }, wantErr: "no topology"},
		{name: "negative boot delay", opts: func(dir string) Options {
			return Options{StateDir: dir, Topology: testTopology(), BootDelay: -time.Second}
		}, wantErr: "negative boot delay"},
		{name: "state dir is a file", opts: func(dir string) Options {
			p := filepath.Join(dir, "file")
			require.NoError(t, os.WriteFile(p, nil, 0o600))
			return Options{StateDir: p, Topology: testTopology()}
		}, wantErr: "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.opts(t.TempDir()))
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	// Separate DevDir: the state dir stays 0700.
	dir := t.TempDir()
	b, err := Open(Options{StateDir: filepath.Join(dir, "state"), DevDir: filepath.Join(dir, "dev"), Topology: testTopology()})
	require.NoError(t, err)
	fi, err := os.Stat(b.StateDir())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

func TestCorruptState(t *testing.T) {
	b := newBackend(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(b.StateDir(), stateFile), []byte("{not json"), 0o600))
	_, err := b.ListOS(context.Background())
	require.ErrorContains(t, err, "corrupt")
	require.NoError(t, os.WriteFile(filepath.Join(b.StateDir(), stateFile), []byte(`{"version":99}`), 0o600))
	_, err = b.ListOS(context.Background())
	require.ErrorContains(t, err, "version 99")
}

// The driver refuses DESTROY_OS while any descriptor on /dev/mcosN is open,
// flock or not: a process that merely has the stand-in open counts.
func TestDestroyBusyWhileOpenWithoutFlock(t *testing.T) {
	b := newBackend(t, nil)
	idx := booted(t, b, []int{2, 3})
	f, err := os.OpenFile(b.DevicePath(idx), os.O_RDONLY, 0)
	require.NoError(t, err)
	cmd := exec.Command("/bin/sleep", "30")
	cmd.ExtraFiles = []*os.File{f}
	require.NoError(t, cmd.Start())
	f.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	err = b.DestroyOS(context.Background(), idx)
	require.True(t, errors.Is(err, ihk.ErrBusy), "destroy with an open descriptor: %v", err)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.NoError(t, b.DestroyOS(context.Background(), idx))
}
