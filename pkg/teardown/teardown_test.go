package teardown_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/devperm"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// holderEnv makes the test binary a device holder instead of running tests.
const holderEnv = "LWK_TEARDOWN_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holderEnv); path != "" {
		hold(path)
		return
	}
	os.Exit(m.Run())
}

// hold opens the device like mcexec (rw, shared flock), makes itself
// non-dumpable (so /proc/<pid> shows root as owner) and waits to be killed.
func hold(path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Exit(3)
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_SH) != nil {
		os.Exit(4)
	}
	if unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) != nil {
		os.Exit(5)
	}
	os.Stdout.WriteString("holding\n")
	time.Sleep(time.Minute)
	os.Exit(6)
}

type env struct {
	t    *testing.T
	ihk  *sim.Backend
	deps teardown.Deps
	dir  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	topo, err := topology.ReadLayout(fixture.Root(t, "paper-e5520-fake12"))
	require.NoError(t, err)
	b, err := sim.Open(sim.Options{StateDir: filepath.Join(dir, "sim"), Topology: topo})
	require.NoError(t, err)
	store, err := journal.Open(filepath.Join(dir, "journal"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "img"), []byte("image"), 0o644))
	return &env{t: t, ihk: b, dir: dir, deps: teardown.Deps{
		IHK: b, Journal: store,
		DevDir: b.DevDir(), RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log"), Proc: procfs.Default(),
		DestroyTimeout: 3 * time.Second, KillGrace: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
}

var ctx = context.Background()

// reserved reserves CPUs and a chunk for a job and journals both as done,
// with the next step begun: a prolog killed right after reserving.
func (e *env) reserved(job uint32, cpus []int, chunk ihk.MemChunk) *journal.Record {
	e.t.Helper()
	require.NoError(e.t, e.ihk.ReserveMemory(ctx, []ihk.MemChunk{chunk}))
	require.NoError(e.t, e.ihk.ReserveCPUs(ctx, cpus))
	rec := &journal.Record{JobID: job}
	require.NoError(e.t, rec.Begin(steps.ReserveMemory, steps.Memory{Requested: []ihk.MemChunk{chunk}}))
	require.NoError(e.t, rec.Done(steps.ReserveMemory, steps.Memory{Requested: []ihk.MemChunk{chunk}, Reserved: []ihk.MemChunk{chunk}}))
	require.NoError(e.t, rec.Begin(steps.ReserveCPUs, steps.CPUs{CPUs: cpus}))
	require.NoError(e.t, rec.Done(steps.ReserveCPUs, nil))
	require.NoError(e.t, rec.Begin(steps.CreateOS, nil))
	require.NoError(e.t, e.deps.Journal.Write(rec))
	return rec
}

// booted boots an OS for a job and journals it and its run marker as a
// finished prolog would.
func (e *env) booted(job uint32, cpus []int, chunk ihk.MemChunk) int {
	e.t.Helper()
	rec := e.reserved(job, cpus, chunk)
	idx, err := e.ihk.CreateOS(ctx)
	require.NoError(e.t, err)
	require.NoError(e.t, rec.Done(steps.CreateOS, steps.OS{OS: idx}))
	require.NoError(e.t, e.ihk.AssignCPUs(ctx, idx, cpus))
	require.NoError(e.t, e.ihk.AssignMemory(ctx, idx, []ihk.MemChunk{chunk}))
	require.NoError(e.t, e.ihk.LoadImage(ctx, idx, filepath.Join(e.dir, "img")))
	require.NoError(e.t, e.ihk.SetKernelArgs(ctx, idx, "hidos"))
	require.NoError(e.t, e.ihk.Boot(ctx, idx))
	for _, s := range []string{steps.AssignCPUs, steps.AssignMemory} {
		require.NoError(e.t, rec.Begin(s, steps.OS{OS: idx}))
		require.NoError(e.t, rec.Done(s, nil))
	}
	require.NoError(e.t, e.deps.Journal.Write(rec))
	_, err = jobmarker.Write(e.deps.RunDir, job, idx)
	require.NoError(e.t, err)
	return idx
}

func (e *env) reservedCPUs() cpuset.CPUSet {
	c, err := e.ihk.ReservedCPUs(ctx)
	require.NoError(e.t, err)
	return cpuset.New(c...)
}

func (e *env) reservedMemory() []ihk.MemChunk {
	m, err := e.ihk.ReservedMemory(ctx)
	require.NoError(e.t, err)
	return m
}

func TestPendingReservationsOfAnotherJobSurvive(t *testing.T) {
	e := newEnv(t)
	e.reserved(1, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	e.reserved(2, []int{6, 7}, ihk.MemChunk{NUMANode: 3, Bytes: 64 << 20})

	res, err := teardown.Run(ctx, e.deps, 2)
	require.NoError(t, err)
	require.True(t, cpuset.New(6, 7).Equals(res.ReleasedCPUs), res.ReleasedCPUs.String())
	require.Equal(t, []ihk.MemChunk{{NUMANode: 3, Bytes: 64 << 20}}, res.ReleasedMemory)
	require.True(t, cpuset.New(4, 5).Equals(e.reservedCPUs()), "job 1's cpus are still reserved")
	require.Equal(t, []ihk.MemChunk{{NUMANode: 2, Bytes: 64 << 20}}, e.reservedMemory())

	_, err = teardown.Run(ctx, e.deps, 1)
	require.NoError(t, err)
	require.True(t, e.reservedCPUs().IsEmpty())
	require.Empty(t, e.reservedMemory())
}

func TestRunningJobSurvivesAnEpilogWithoutJournal(t *testing.T) {
	e := newEnv(t)
	idx := e.booted(1, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})

	res, err := teardown.Run(ctx, e.deps, 99)
	require.NoError(t, err)
	require.Empty(t, res.OS)
	ids, err := e.ihk.ListOS(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{idx}, ids)
	st, err := e.ihk.Status(ctx, idx)
	require.NoError(t, err)
	require.NotEqual(t, ihk.StatusNotBooted, st)
}

// IHK reuses OS indices: a stale journal of job 1 naming OS 0 must not
// destroy job 2's OS 0.
func TestReusedIndexIsLeftToItsNewOwner(t *testing.T) {
	e := newEnv(t)
	stale := &journal.Record{JobID: 1}
	require.NoError(t, stale.Begin(steps.CreateOS, nil))
	require.NoError(t, stale.Done(steps.CreateOS, steps.OS{OS: 0}))
	require.NoError(t, e.deps.Journal.Write(stale))
	idx := e.booted(2, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	require.Equal(t, 0, idx)

	res, err := teardown.Run(ctx, e.deps, 1)
	require.NoError(t, err)
	require.Empty(t, res.OS, "job 2's instance was destroyed by job 1's stale journal")
	ids, err := e.ihk.ListOS(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{0}, ids)
}

// A holder that made itself non-dumpable shows a root-owned /proc/<pid>;
// it is still the job's and must be stopped, or DESTROY_OS stays busy.
func TestNonDumpableHolderIsStopped(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("needs root to run a holder as another user (CI runs as root)")
	}
	e := newEnv(t)
	for d := e.dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	idx := e.booted(1, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	dev := e.ihk.DevicePath(idx)
	require.NoError(t, devperm.Grant(dev, 65534))

	// The test binary's build directory is 0700: copy it where the holder's
	// user can run it.
	self, err := os.Executable()
	require.NoError(t, err)
	bin, err := os.ReadFile(self)
	require.NoError(t, err)
	holder := filepath.Join(e.dir, "holder")
	require.NoError(t, os.WriteFile(holder, bin, 0o755))
	cmd := exec.Command(holder)
	cmd.Env = []string{holderEnv + "=" + dev}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	buf := make([]byte, 8)
	_, err = io.ReadFull(out, buf)
	require.NoError(t, err, "the holder did not start")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	res, err := teardown.Run(ctx, e.deps, 1)
	require.NoError(t, err)
	require.Equal(t, []int{idx}, res.OS)
	require.Contains(t, res.Killed, cmd.Process.Pid)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("holder still running")
	}
}
