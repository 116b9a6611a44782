package devholders

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/internal/testholder"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("needs root: mknod of a character device, mount namespaces, other processes' fds (CI runs as root; LWK_FORCE_ROOT_TESTS=1 forces)")
	}
}

// charNode makes a character device node in a fresh directory with
// /dev/full's numbers (1:7): a device every kernel has, that any user may
// open, and that hardly anything keeps open.
func charNode(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 7))); err != nil {
		if errors.Is(err, unix.EPERM) && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
			t.Skipf("mknod %s: %v (no CAP_MKNOD, or a nodev filesystem)", path, err)
		}
		require.NoError(t, err)
	}
	return path
}

// waitHolder polls until pid holds path or 5 s pass.
func waitHolder(t *testing.T, path string, pid int) []Holder {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		hs, err := Scan("/proc", path)
		require.NoError(t, err)
		if slices.ContainsFunc(hs, func(h Holder) bool { return h.PID == pid }) || time.Now().After(deadline) {
			return hs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holderOf(hs []Holder, pid int) (Holder, bool) {
	i := slices.IndexFunc(hs, func(h Holder) bool { return h.PID == pid })
	if i < 0 {
		return Holder{}, false
	}
	return hs[i], true
}

// TestUnsharedFileTableRoot: a thread that called unshare(CLONE_FILES) keeps
// its descriptor in a table of its own, visible only under
// /proc/PID/task/TID/fd. Matching /proc/PID/fd alone misses it.
func TestUnsharedFileTableRoot(t *testing.T) {
	needRoot(t)
	node := charNode(t, "mcos0")
	cmd := exec.Command(testholder.Build(t), "-u", node)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	_, err = io.ReadFull(out, make([]byte, 8))
	require.NoError(t, err, "the holder did not start")
	pid := cmd.Process.Pid

	// The process's own table does not have it: a path match on
	// /proc/PID/fd finds nothing.
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	require.NoError(t, err)
	for _, fd := range fds {
		target, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
		require.NotEqual(t, node, target, "the descriptor must live only in the thread's table")
	}

	hs, err := Scan("/proc", node)
	require.NoError(t, err)
	h, ok := holderOf(hs, pid)
	require.True(t, ok, "holders %+v miss the holder", hs)
	require.Len(t, h.TIDs, 1)
	require.NotEqual(t, pid, h.TIDs[0], "only the unsharing thread holds it")
}

// TestBindMountInPrivateNamespaceRoot: a process in a private mount
// namespace opens the device through a bind mount; its fd's path names the
// mount point, which does not exist in our namespace.
func TestBindMountInPrivateNamespaceRoot(t *testing.T) {
	needRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) (util-linux) is not installed")
	}
	node := charNode(t, "mcos0")
	mnt := filepath.Join(t.TempDir(), "x")
	require.NoError(t, os.WriteFile(mnt, nil, 0o600))
	// The helper is a test fixture, not production code: argv only, the
	// paths come in as positional parameters.
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
		`mount --bind "$1" "$2" && exec sleep 30 3<>"$2"`, "sh", node, mnt)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	hs := waitHolder(t, node, cmd.Process.Pid)
	h, ok := holderOf(hs, cmd.Process.Pid)
	require.True(t, ok, "holders %+v miss the process in the private namespace", hs)
	require.Equal(t, []int{cmd.Process.Pid}, h.TIDs)
	link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "fd", "3"))
	require.NoError(t, err)
	require.NotEqual(t, node, link, "the kernel shows the bind mount's path, not the device's")
}

// TestSameNumberOtherNodeRoot: a second node with the device's numbers (as
// a container runtime creates in its own /dev) reaches the same driver
// object; an open descriptor and a mapping through it both count.
func TestSameNumberOtherNodeRoot(t *testing.T) {
	needRoot(t)
	node := charNode(t, "mcos0")
	other := charNode(t, "elsewhere")
	f, err := os.OpenFile(other, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	pids, err := Find("/proc", node)
	require.NoError(t, err)
	require.Contains(t, pids, os.Getpid())
	require.NoError(t, f.Close())
	pids, err = Find("/proc", node)
	require.NoError(t, err)
	require.NotContains(t, pids, os.Getpid())
}

// TestPinRoot: a pinned holder is signalled through its pidfd; a process
// that does not hold the device is refused with ErrGone.
func TestPinRoot(t *testing.T) {
	needRoot(t)
	node := charNode(t, "mcos0")
	holder := exec.Command("/bin/sh", "-c", `exec sleep 30 3<>"$1"`, "sh", node)
	require.NoError(t, holder.Start())
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	bystander := exec.Command("sleep", "30")
	require.NoError(t, bystander.Start())
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })

	waitHolder(t, node, holder.Process.Pid)
	target, err := TargetOf(node)
	require.NoError(t, err)

	_, err = Pin("/proc", target, bystander.Process.Pid)
	require.ErrorIs(t, err, ErrGone)

	p, err := Pin("/proc", target, holder.Process.Pid)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Signal(unix.SIGKILL))
	err = holder.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal())
	// Reaped: the pidfd still refers to the dead process, never to a
	// newcomer with its PID.
	require.NoError(t, p.Signal(unix.SIGKILL))
}
