package vmihk

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/spool"
)

// The test driver's test-only requests on /dev/mcosN (TESTDRV_INJECT_* in
// tests/ihk-testdrv/ihk_testdrv.c).
const (
	injectPanic = 0x122a80
	injectHang  = 0x122a81
	injectOOM   = 0x122a82
)

// waitLimit bounds every wait for the monitor; generous, since the VM runs
// under TCG on a loaded host. Nothing is asserted about how fast.
const waitLimit = 2 * time.Minute

// slurmRecorder stands in for scontrol and scancel behind the monitor.
type slurmRecorder struct {
	mu      sync.Mutex
	failed  map[uint32]string
	drained []string
}

func (s *slurmRecorder) FailJob(_ context.Context, jobID uint32, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = map[uint32]string{}
	}
	s.failed[jobID] = reason
	return nil
}

func (s *slurmRecorder) DrainNode(_ context.Context, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drained = append(s.drained, reason)
	return nil
}

func (s *slurmRecorder) failure(jobID uint32) (string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed[jobID], append([]string(nil), s.drained...)
}

// startMonitor runs lwk-monitor's monitor, wired as cmd/lwk-monitor wires
// it, on the real IHK backend the test's lwk.conf names, sampling every
// interval (and detecting hangs every hang, 0 disables). The returned
// function stops it.
func (v *vm) startMonitor(interval, hang time.Duration, s monitor.Slurm) (*monitor.Monitor, func()) {
	v.t.Helper()
	cfg, err := config.Load(v.conf)
	require.NoError(v.t, err)
	log := slog.New(slog.NewTextHandler(testWriter{v.t}, nil))
	node, err := lwknode.Open(cfg, log, false)
	require.NoError(v.t, err)
	journals, err := journal.OpenReader(lwknode.JournalDir(cfg))
	require.NoError(v.t, err)
	sp, err := spool.Open(filepath.Join(v.dir, "spool"), spool.DefaultMaxTotalBytes, spool.DefaultMaxJobBytes)
	require.NoError(v.t, err)
	m, err := monitor.New(monitor.Config{
		Node: "vm", DevDir: cfg.DevDir, RunDir: cfg.RunDir, LogDir: cfg.LogDir,
		Interval: interval, HangInterval: hang, RescanInterval: 500 * time.Millisecond, AllowFast: true,
		SysfsRoot: cfg.SysfsRoot, Proc: procfs.Default(),
	}, monitor.Deps{
		IHK: node.IHK, Journals: journals, Lock: monitor.NodeLock{Dir: cfg.StateDir}, Slurm: s,
		Proxies: monitor.ProcProxies{Proc: procfs.Default(), CgroupRoot: "/sys/fs/cgroup"}, Spool: sp, Log: log,
	})
	require.NoError(v.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(v.t, <-done)
		})
	}
	v.t.Cleanup(stop)
	return m, stop
}

// testWriter sends the monitor's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// instance waits until the monitor tracks job's instance and has taken at
// least samples samples of it.
func instance(t *testing.T, m *monitor.Monitor, job uint32, samples int) monitor.InstanceSnapshot {
	t.Helper()
	var got monitor.InstanceSnapshot
	require.Eventually(t, func() bool {
		for _, in := range m.Snapshot().Instances {
			if in.Job == job && in.Samples >= samples && in.Rusage != nil {
				got = in
				return true
			}
		}
		return false
	}, waitLimit, 50*time.Millisecond, "the monitor takes %d samples of job %d", samples, job)
	return got
}

// inject makes the test driver's instance os panic, hang or run out of
// memory.
func inject(t *testing.T, os int, req uint) {
	t.Helper()
	fd, err := unix.Open(fmt.Sprintf("/dev/mcos%d", os), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0)
	require.Zero(t, errno, "inject %#x into os %d: %v", req, os, errno)
}

func (v *vm) boot(job int) string {
	v.t.Helper()
	spec := fmt.Sprintf("mck:mem=%dM", lwkBytes>>20)
	out, err := v.run("lwk-prolog", job, spec)
	require.NoError(v.t, err, out)
	return spec
}

// TestMonitorSamplesAndDestroy: the monitor samples rusage through the
// real backend while the job's LWK runs (the driver's counters grow with
// the time RUNNING), and the epilog's DESTROY succeeds beside it.
func TestMonitorSamplesAndDestroy(t *testing.T) {
	v := newVM(t)
	settle(t)
	before := readKernel(t)
	spec := v.boot(170)
	m, stop := v.startMonitor(200*time.Millisecond, 0, &slurmRecorder{})
	first := instance(t, m, 170, 1)
	require.Equal(t, ihk.StatusRunning, first.Status)
	require.Len(t, first.Rusage.PerCPUUserNanoseconds, 2, "one entry per LWK CPU")
	later := instance(t, m, 170, first.Samples+2)
	require.Greater(t, later.Rusage.UserNanoseconds, first.Rusage.UserNanoseconds, "user time grows while RUNNING")

	out, err := v.run("lwk-epilog", 170, spec)
	require.NoError(t, err, out)
	stop()
	v.requireRestored("epilog beside the monitor", before)
}

// TestMonitorEvents: a panic, a hang and an OOM raised through the test
// driver reach the monitor (eventfds; DETECT_HUNGUP for the hang) and take
// the job-failure path: the job failed and the node drained, saying why.
func TestMonitorEvents(t *testing.T) {
	tests := []struct {
		name string
		req  uint
		want string
	}{
		{name: "panic", req: injectPanic, want: "LWK kernel panic"},
		{name: "hang", req: injectHang, want: "LWK hang detected"},
		{name: "oom", req: injectOOM, want: "LWK out of memory"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVM(t)
			settle(t)
			before := readKernel(t)
			job := uint32(180 + i)
			spec := v.boot(int(job))
			rec := &slurmRecorder{}
			m, stop := v.startMonitor(time.Second, 300*time.Millisecond, rec)
			inst := instance(t, m, job, 1)
			inject(t, inst.OS, tc.req)
			require.Eventually(t, func() bool { r, _ := rec.failure(job); return r != "" }, waitLimit, 50*time.Millisecond,
				"the monitor fails job %d after the injected %s", job, tc.name)
			reason, drained := rec.failure(job)
			require.Contains(t, reason, tc.want)
			require.Contains(t, reason, fmt.Sprintf("job %d", job))
			require.Equal(t, []string{reason}, drained, "the node drained with the same reason")

			out, err := v.run("lwk-epilog", int(job), spec)
			require.NoError(t, err, out)
			stop()
			v.requireRestored("epilog after "+tc.name, before)
		})
	}
}

// TestFastSamplingNeverBlocksDestroy: a monitor sampling every 50 ms opens
// /dev/mcosN all the time, but only under the node lock, so the epilog's
// DESTROY never meets it. DestroyTimeout=1ns leaves no room for a retry: a
// single EBUSY would fail the epilog. Three jobs in a row.
func TestFastSamplingNeverBlocksDestroy(t *testing.T) {
	v := newVM(t)
	v.setKey("DestroyTimeout", "1ns")
	settle(t)
	before := readKernel(t)
	m, stop := v.startMonitor(50*time.Millisecond, 0, &slurmRecorder{})
	for job := 190; job < 193; job++ {
		spec := v.boot(job)
		instance(t, m, uint32(job), 5)
		out, err := v.run("lwk-epilog", job, spec)
		require.NoError(t, err, out)
	}
	stop()
	v.requireRestored("three jobs under 50 ms sampling", before)
}
