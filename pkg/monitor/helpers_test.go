package monitor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/apply"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodelock"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
	"github.com/slurm-lwk/slurm-lwk/pkg/spool"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// Helper modes of the test binary (TestMain).
const (
	// modeEnv selects a helper mode: "proxy" holds a device like mcexec and
	// runs a spinning child; "spin" burns CPU; "monitor" runs a monitor in
	// its own process (see TestDestroyNeverBusyWhileSampling).
	modeEnv = "LWK_MONITOR_TEST_MODE"
	argEnv  = "LWK_MONITOR_TEST_ARG"
)

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "proxy":
		proxy(os.Getenv(argEnv))
	case "spin":
		for i := 0; ; i++ {
			spinSink = i
		}
	case "monitor":
		monitorProcess(os.Getenv(argEnv))
	default:
		os.Exit(m.Run())
	}
}

// spinSink keeps the spinning loop from being optimised away.
var spinSink int

// proxy opens the device like mcexec (read-write, shared flock) and runs a
// spinning child, whose CPU time the simulator counts as LWK time. On
// SIGTERM it ends the child and, like the mcexec stand-in, appends the
// child's usage to the device, so that the instance's rusage stays
// cumulative since boot.
func proxy(dev string) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		os.Exit(3)
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_SH) != nil {
		os.Exit(4)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), modeEnv+"=spin")
	// Die with the proxy.
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if child.Start() != nil {
		os.Exit(5)
	}
	os.Stdout.WriteString("holding\n")
	<-term
	_ = child.Process.Kill()
	_ = child.Wait()
	info, _, err := sim.ReadDevice(f)
	if err != nil {
		os.Exit(7)
	}
	ru, _ := child.ProcessState.SysUsage().(*syscall.Rusage)
	rec := sim.UsageRecord{BootID: info.BootID, PID: child.Process.Pid, UserNS: uint64(ru.Utime.Nano()),
		SystemNS: uint64(ru.Stime.Nano()), MaxRSSBytes: uint64(ru.Maxrss) * 1024}
	if sim.AppendUsage(f, rec) != nil {
		os.Exit(8)
	}
	os.Exit(0)
}

// env is a node with the simulated IHK backend, the paper's topology, and
// one booted job.
type env struct {
	t        *testing.T
	dir      string
	sim      *sim.Backend
	store    *journal.Store
	stateDir string
	runDir   string
	logDir   string
	spool    *spool.Spool
	job      uint32
	os       int
	// perf is the monitor's Config.Perf (newEnv: 0x3c for profile mck).
	perf map[string][]ihk.PerfAttr
	// configure, if set, adjusts the monitor's configuration.
	configure func(*monitor.Config)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("monitor tests signal eventfds through pidfd_getfd and read other processes' fds: need root (set LWK_FORCE_ROOT_TESTS=1 to try anyway)")
	}
	dir := t.TempDir()
	topo, err := topology.Read(fixture.Root(t, "paper-e5520-fake12"))
	require.NoError(t, err)
	b, err := sim.Open(sim.Options{StateDir: filepath.Join(dir, "sim"), Topology: topo, BootDelay: 20 * time.Millisecond})
	require.NoError(t, err)
	store, err := journal.Open(filepath.Join(dir, "state", "journal"))
	require.NoError(t, err)
	sp, err := spool.Open(filepath.Join(dir, "spool"), 64<<20, 8<<20)
	require.NoError(t, err)
	e := &env{t: t, dir: dir, sim: b, store: store, stateDir: filepath.Join(dir, "state"),
		runDir: filepath.Join(dir, "run"), logDir: filepath.Join(dir, "log"), spool: sp, os: -1,
		perf: map[string][]ihk.PerfAttr{"mck": {{Config: 0x3c}}}}
	require.NoError(t, os.MkdirAll(e.runDir, 0o700))
	require.NoError(t, os.MkdirAll(e.logDir, 0o700))
	return e
}

func (e *env) teardownDeps(c teardown.IHK) teardown.Deps {
	return teardown.Deps{IHK: c, Node: teardown.Node{
		Journal: e.store, DevDir: e.sim.DevDir(), RunDir: e.runDir, LogDir: e.logDir, Proc: procfs.Default(),
		DestroyTimeout: 5 * time.Second, KillGrace: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
}

// noConfine stands in for proxycgroup.Manager: the monitor does not read
// the proxies' cgroups, so these tests make none (pkg/apply and the
// lifecycle tests cover confinement).
type noConfine struct{}

func (noConfine) Mode() proxycgroup.Mode           { return proxycgroup.V1 }
func (noConfine) JobDirs(uint32) map[string]string { return nil }
func (noConfine) Members(uint32) ([]int, error)    { return nil, nil }
func (noConfine) Remove(uint32) error              { return nil }
func (noConfine) Create(jobID uint32, _ proxycgroup.Limits) (*proxycgroup.Record, error) {
	return &proxycgroup.Record{Version: 1, JobID: jobID, Mode: proxycgroup.V1}, nil
}

// boot runs the prolog's pipeline for job under the node lock.
func (e *env) boot(job uint32) {
	e.t.Helper()
	image := filepath.Join(e.dir, "mckernel.img")
	require.NoError(e.t, os.WriteFile(image, []byte("image"), 0o644))
	p := &plan.Plan{
		JobID: job, Profile: "mck", Image: image, Kargs: "hidos",
		CPUs:   []int{2, 4, 3, 5},
		Memory: []ihk.MemChunk{{NUMANode: 2, Bytes: 64 << 20}},
		Proxy:  plan.Proxy{CPUs: cpuset.New(0, 1), MemoryBytes: 128 << 20, CPUQuotaUS: 100000, CPUPeriodUS: 100000},
	}
	lk, err := nodelock.Acquire(context.Background(), e.stateDir)
	require.NoError(e.t, err)
	defer lk.Release()
	idx, err := apply.Run(context.Background(), apply.Deps{Node: e.teardownDeps(e.sim).Node, IHK: e.sim, BootTimeout: 5 * time.Second,
		StatusInterval: 5 * time.Millisecond, Confine: noConfine{}}, apply.Job{ID: job, User: "root", Spec: "mck"}, p)
	require.NoError(e.t, err)
	e.job, e.os = job, idx
}

// epilog tears the job down under the node lock, with client c.
func (e *env) epilog(c teardown.IHK) {
	e.t.Helper()
	lk, err := nodelock.Acquire(context.Background(), e.stateDir)
	require.NoError(e.t, err)
	defer lk.Release()
	_, err = teardown.Run(context.Background(), e.teardownDeps(c), e.job)
	require.NoError(e.t, err)
}

// stopProxy kills the proxy, as Slurm kills a job's tasks before the
// epilog (teardown itself only kills holders that are not root's).
func stopProxy(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Process.Signal(syscall.SIGCONT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// startProxy starts a device holder with a spinning child; its stderr is
// returned as a buffer.
func (e *env) startProxy() (*exec.Cmd, *syncBuffer) {
	e.t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=proxy", argEnv+"="+e.sim.DevicePath(e.os))
	out, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(e.t, cmd.Start())
	e.t.Cleanup(func() { stopProxy(cmd) })
	buf := make([]byte, 8)
	n, _ := io.ReadFull(out, buf)
	require.Equal(e.t, "holding\n", string(buf[:n]))
	return cmd, stderr
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeSlurm records the monitor's Slurm actions.
type fakeSlurm struct {
	mu      sync.Mutex
	failed  map[uint32]string
	drained []string
}

func (f *fakeSlurm) FailJob(_ context.Context, job uint32, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed == nil {
		f.failed = map[uint32]string{}
	}
	f.failed[job] = reason
	return nil
}

func (f *fakeSlurm) DrainNode(_ context.Context, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drained = append(f.drained, reason)
	return nil
}

func (f *fakeSlurm) state() (map[uint32]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[uint32]string{}
	for k, v := range f.failed {
		m[k] = v
	}
	return m, append([]string(nil), f.drained...)
}

// newMonitor builds a monitor over e with fast intervals.
func (e *env) newMonitor(c monitor.IHK, s monitor.Slurm, lock monitor.Locker) *monitor.Monitor {
	e.t.Helper()
	reader, err := journal.OpenReader(e.store.Dir)
	require.NoError(e.t, err)
	if lock == nil {
		lock = monitor.NodeLock{Dir: e.stateDir}
	}
	cfg := monitor.Config{
		Node: "n1", DevDir: e.sim.DevDir(), RunDir: e.runDir, LogDir: e.logDir,
		Interval: 50 * time.Millisecond, HangInterval: 50 * time.Millisecond, SuspendInterval: 50 * time.Millisecond,
		RescanInterval: 200 * time.Millisecond, AllowFast: true,
		Perf: e.perf, Proc: procfs.Default(),
	}
	if e.configure != nil {
		e.configure(&cfg)
	}
	m, err := monitor.New(cfg, monitor.Deps{
		IHK: c, Journals: reader, Lock: lock, Slurm: s,
		Proxies: monitor.ProcProxies{Proc: procfs.Default(), CgroupRoot: "/sys/fs/cgroup"},
		Spool:   e.spool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(e.t, err)
	return m
}

// run runs m until the test ends.
func run(t *testing.T, m *monitor.Monitor) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// waitFor polls cond every 10 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func instanceOf(m *monitor.Monitor, job uint32) (monitor.InstanceSnapshot, bool) {
	for _, in := range m.Snapshot().Instances {
		if in.Job == job {
			return in, true
		}
	}
	return monitor.InstanceSnapshot{}, false
}

func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

var _ = fmt.Sprintf

func fixtureRoot(t *testing.T) string { return fixture.Root(t, "paper-e5520-fake12") }
