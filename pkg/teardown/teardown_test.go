package teardown_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/internal/testholder"
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
	return &env{t: t, ihk: b, dir: dir, deps: teardown.Deps{IHK: b, Node: teardown.Node{
		Journal: store,
		DevDir:  b.DevDir(), RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log"), Proc: procfs.Default(),
		DestroyTimeout: 3 * time.Second, KillGrace: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}}
}

var ctx = context.Background()

// jobUser is the user the test jobs run as.
const jobUser = 65534

// reserved reserves CPUs and a chunk for a job and journals both as done,
// with the next step begun: a prolog killed right after reserving.
func (e *env) reserved(job uint32, cpus []int, chunk ihk.MemChunk) *journal.Record {
	e.t.Helper()
	require.NoError(e.t, e.ihk.ReserveMemory(ctx, []ihk.MemChunk{chunk}))
	require.NoError(e.t, e.ihk.ReserveCPUs(ctx, cpus))
	rec := &journal.Record{JobID: job, UID: jobUser, GID: jobUser}
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

// needRoot skips unless root (holders run as other users).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("needs root to run a holder as another user (CI runs as root; LWK_FORCE_ROOT_TESTS=1 forces)")
	}
}

// startHolder runs the C device holder as uid with the given flags (-u:
// open in a thread with its own file table, -n: non-dumpable) and returns
// once it holds dev, with a channel that reports its exit.
func (e *env) startHolder(dev string, uid uint32, flags ...string) (*exec.Cmd, <-chan error) {
	t := e.t
	t.Helper()
	for d := e.dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	cmd := exec.Command(testholder.Build(t), append(flags, dev)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	_, err = io.ReadFull(out, make([]byte, 8))
	require.NoError(t, err, "the holder did not start")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, done
}

func requireExits(t *testing.T, cmd *exec.Cmd, done <-chan error) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("holder still running")
	}
}

// A holder that made itself non-dumpable shows a root-owned /proc/<pid>;
// it is still the job's and must be stopped, or DESTROY_OS stays busy.
func TestNonDumpableHolderIsStopped(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	idx := e.booted(1, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	dev := e.ihk.DevicePath(idx)
	require.NoError(t, devperm.Grant(dev, jobUser))
	cmd, done := e.startHolder(dev, jobUser, "-n")

	res, err := teardown.Run(ctx, e.deps, 1)
	require.NoError(t, err)
	require.Equal(t, []int{idx}, res.OS)
	require.Contains(t, res.Killed, cmd.Process.Pid)
	requireExits(t, cmd, done)
}

// A thread that unshared its file table holds the device only under
// /proc/PID/task/TID/fd.
func TestHolderInUnsharedThreadIsStopped(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	idx := e.booted(1, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	dev := e.ihk.DevicePath(idx)
	require.NoError(t, devperm.Grant(dev, jobUser))
	cmd, done := e.startHolder(dev, jobUser, "-u")

	res, err := teardown.Run(ctx, e.deps, 1)
	require.NoError(t, err)
	require.Equal(t, []int{idx}, res.OS)
	require.Contains(t, res.Killed, cmd.Process.Pid)
	requireExits(t, cmd, done)
}

// A holder in a private mount namespace opened the device through a bind
// mount: its descriptor's path names the mount point, not the device.
func TestBindMountedHolderIsStopped(t *testing.T) {
	needRoot(t)
	unshare, err1 := exec.LookPath("unshare")
	setpriv, err2 := exec.LookPath("setpriv")
	if err1 != nil || err2 != nil {
		t.Skip("needs unshare(1) and setpriv(1) from util-linux")
	}
	e := newEnv(t)
	idx := e.booted(1, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	dev := e.ihk.DevicePath(idx)
	require.NoError(t, devperm.Grant(dev, jobUser))
	mnt := filepath.Join(t.TempDir(), "x")
	require.NoError(t, os.WriteFile(mnt, nil, 0o600))
	uid := strconv.Itoa(jobUser)
	// Test fixture only: argv, paths as positional parameters.
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
		`mount --bind "$1" "$2" && exec "$3" --reuid "$4" --regid "$4" --clear-groups sleep 60 3<>"$2"`,
		"sh", dev, mnt, setpriv, uid)
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// Wait for sleep itself: while setpriv is between its setresuid and
	// exec, the holder is neither root's nor settled.
	require.Eventually(t, func() bool {
		link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "fd", "3"))
		comm, cerr := procfs.Default().Comm(cmd.Process.Pid)
		return err == nil && link != dev && cerr == nil && comm == "sleep"
	}, 5*time.Second, 20*time.Millisecond, "the holder did not open the bind mount")

	res, err := teardown.Run(ctx, e.deps, 1)
	require.NoError(t, err)
	require.Equal(t, []int{idx}, res.OS)
	require.Contains(t, res.Killed, cmd.Process.Pid)
	requireExits(t, cmd, done)
}

// A process of another user that holds the device (the job passed it a
// descriptor) is not killed: teardown fails naming it, and succeeds once
// it is gone.
func TestForeignHolderIsNamedNotKilled(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	e.deps.DestroyTimeout = time.Second
	idx := e.booted(1, []int{4, 5}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	dev := e.ihk.DevicePath(idx)
	require.NoError(t, os.Chmod(dev, 0o666))
	cmd, done := e.startHolder(dev, jobUser-1)

	_, err := teardown.Run(ctx, e.deps, 1)
	require.ErrorIs(t, err, teardown.ErrNodeUnusable)
	require.ErrorContains(t, err, "pid "+strconv.Itoa(cmd.Process.Pid))
	require.ErrorContains(t, err, "another user's process outside the job")
	select {
	case err := <-done:
		t.Fatalf("another user's process was killed: %v", err)
	default:
	}
	require.NoError(t, cmd.Process.Kill())
	<-done
	res, err := teardown.Run(ctx, e.deps, 1)
	require.NoError(t, err)
	require.Equal(t, []int{idx}, res.OS)
}
