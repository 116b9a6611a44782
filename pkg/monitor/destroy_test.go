package monitor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/spool"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// realLike makes the simulator hold the device the way the real backend
// does: each call on an instance opens its device for the call's duration
// (the real ioctl client opens /dev/mcosN, issues the ioctl, closes it),
// and the simulator's DESTROY counts a shared flock as an open descriptor.
// hold stretches each call, like a slow ioctl, to make a race likely.
type realLike struct {
	*sim.Backend
	hold time.Duration
}

func (r realLike) open(idx int) func() {
	f, err := os.OpenFile(r.DevicePath(idx), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return func() {}
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_SH)
	time.Sleep(r.hold)
	return func() { f.Close() }
}

func (r realLike) Status(ctx context.Context, i int) (ihk.Status, error) {
	defer r.open(i)()
	return r.Backend.Status(ctx, i)
}

func (r realLike) Rusage(ctx context.Context, i int) (*ihk.Rusage, error) {
	defer r.open(i)()
	return r.Backend.Rusage(ctx, i)
}

func (r realLike) RegisterEvent(ctx context.Context, i int, t ihk.EventType) (ihk.EventFD, error) {
	defer r.open(i)()
	return r.Backend.RegisterEvent(ctx, i, t)
}

func (r realLike) PerfRead(ctx context.Context, i, n int) ([]uint64, error) {
	defer r.open(i)()
	return r.Backend.PerfRead(ctx, i, n)
}

// noLock is a Locker that never excludes anybody: the control experiment.
type noLock struct{}

func (noLock) TryLock() (func(), error)             { return func() {}, nil }
func (noLock) Lock(context.Context) (func(), error) { return func() {}, nil }

// busyCounter counts DESTROY_OS calls that met EBUSY.
type busyCounter struct {
	teardown.IHK
	busy, calls atomic.Int64
}

func (b *busyCounter) DestroyOS(ctx context.Context, i int) error {
	err := b.IHK.DestroyOS(ctx, i)
	b.calls.Add(1)
	if errors.Is(err, ihk.ErrBusy) {
		b.busy.Add(1)
	}
	return err
}

// procConfig configures the monitor helper process.
type procConfig struct {
	SimDir, SysfsRoot, StateDir, JournalDir, RunDir, LogDir, SpoolDir string
	Lock                                                              bool
	HoldMS                                                            int
}

// monitorProcess runs a monitor sampling every 50 ms over the simulator
// in a process of its own, so that the simulator's DESTROY sees its
// descriptors as another process's, as the driver would.
func monitorProcess(arg string) {
	var c procConfig
	if json.Unmarshal([]byte(arg), &c) != nil {
		os.Exit(3)
	}
	topo, err := topology.Read(c.SysfsRoot)
	if err != nil {
		os.Exit(4)
	}
	b, err := sim.Open(sim.Options{StateDir: c.SimDir, Topology: topo})
	if err != nil {
		os.Exit(5)
	}
	reader, _ := journal.OpenReader(c.JournalDir)
	sp, err := spool.Open(c.SpoolDir, 64<<20, 8<<20)
	if err != nil {
		os.Exit(6)
	}
	var lock monitor.Locker = monitor.NodeLock{Dir: c.StateDir}
	if !c.Lock {
		lock = noLock{}
	}
	m, err := monitor.New(monitor.Config{
		Node: "n1", DevDir: b.DevDir(), RunDir: c.RunDir, LogDir: c.LogDir,
		Interval: 50 * time.Millisecond, RescanInterval: 20 * time.Millisecond, AllowFast: true,
		Proc: procfs.Default(),
	}, monitor.Deps{
		IHK: realLike{Backend: b, hold: time.Duration(c.HoldMS) * time.Millisecond}, Journals: reader, Lock: lock,
		Slurm: &fakeSlurm{}, Proxies: monitor.ProcProxies{Proc: procfs.Default(), CgroupRoot: "/sys/fs/cgroup"},
		Spool: sp, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		os.Exit(7)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	os.Stdout.WriteString("ready\n")
	_ = m.Run(ctx)
	os.Exit(0)
}

func (e *env) startMonitorProcess(lock bool, hold time.Duration) {
	e.t.Helper()
	c := procConfig{SimDir: e.sim.StateDir(), SysfsRoot: fixtureRoot(e.t), StateDir: e.stateDir, JournalDir: e.store.Dir,
		RunDir: e.runDir, LogDir: e.logDir, SpoolDir: e.spool.Dir, Lock: lock, HoldMS: int(hold / time.Millisecond)}
	arg, err := json.Marshal(c)
	require.NoError(e.t, err)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=monitor", argEnv+"="+string(arg))
	out, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	require.NoError(e.t, cmd.Start())
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	require.Equal(e.t, "ready\n", line)
}

func (e *env) samples(job uint32) int {
	b, err := os.ReadFile(e.spool.SamplesPath(job))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// cycles boots and tears down jobs while the monitor process samples, and
// returns how many DESTROY_OS calls met EBUSY.
func (e *env) cycles(n int) (busy, calls int64) {
	e.t.Helper()
	counter := &busyCounter{IHK: e.sim}
	for i := range n {
		e.boot(uint32(100 + i))
		// Let the monitor sample this instance a few times first.
		waitFor(e.t, "samples of the instance", func() bool { return e.samples(e.job) >= 2 })
		e.epilog(counter)
	}
	return counter.busy.Load(), counter.calls.Load()
}

// TestDestroyNeverBusyWhileSampling: DESTROY_OS never meets EBUSY caused by
// the monitor, sampling every 50 ms in another process with each call held
// open 30 ms, while a CPU burner loads the machine. The control run, the
// same monitor without the node lock, must meet EBUSY: it shows that the
// experiment can see the race the design prevents.
func TestDestroyNeverBusyWhileSampling(t *testing.T) {
	t.Run("with the node lock", func(t *testing.T) {
		e := newEnv(t)
		burn := exec.Command(os.Args[0])
		burn.Env = append(os.Environ(), modeEnv+"=spin")
		require.NoError(t, burn.Start())
		t.Cleanup(func() { _ = burn.Process.Kill(); _ = burn.Wait() })
		e.startMonitorProcess(true, 30*time.Millisecond)
		busy, calls := e.cycles(6)
		require.Equal(t, int64(6), calls, "one DESTROY_OS per job")
		require.Zero(t, busy, "DESTROY_OS met EBUSY while the monitor sampled")
	})
	t.Run("control without the node lock", func(t *testing.T) {
		e := newEnv(t)
		e.startMonitorProcess(false, 30*time.Millisecond)
		busy, calls := e.cycles(8)
		t.Logf("control: %d of %d DESTROY_OS calls met EBUSY", busy, calls)
		require.NotZero(t, busy, "without the lock the race should show; the experiment cannot see it")
	})
}
