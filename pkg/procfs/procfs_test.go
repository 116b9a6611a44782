package procfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A real /proc/<pid>/stat line whose comm holds spaces and parentheses.
const statLine = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 120 0 0 0 250 30 7 3 20 0 3 0 123456 10485760 640 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 2 0 0 0 0 0\n"

const statusText = "Name:\tmcexec\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t17\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n"

func fixture(t *testing.T) FS {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(statLine), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "status"), []byte(statusText), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(root, "sys"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "uptime"), []byte("1.0 1.0\n"), 0o644))
	p, err := NewFS(root)
	require.NoError(t, err)
	return p
}

func TestFixture(t *testing.T) {
	p := fixture(t)
	pids, err := p.PIDs()
	require.NoError(t, err)
	require.Equal(t, []int{4242}, pids, "only numeric entries")

	st, err := p.Stat(4242)
	require.NoError(t, err)
	require.Equal(t, Stat{Comm: "a (b) c", State: 'S', Flags: 4194560, PPID: 17, UserTicks: 250 + 7, SystemTicks: 30 + 3, Threads: 3, StartTicks: 123456, RSSPages: 640}, st)

	uid, err := p.RealUID(4242)
	require.NoError(t, err)
	require.Equal(t, 1000, uid)

	_, err = p.Stat(1)
	require.ErrorIs(t, err, fs.ErrNotExist, "a process that is gone")
	_, err = p.RealUID(1)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestParseStatErrors(t *testing.T) {
	for _, s := range []string{"", "1 (x S 1", "1 (x) S 1 2 3"} {
		_, err := parseStat(s)
		require.Error(t, err, "%q", s)
	}
}

func TestNewFSValidatesRoot(t *testing.T) {
	for _, root := range []string{"", "proc", "/proc/../proc/"} {
		_, err := NewFS(root)
		require.Error(t, err, "%q", root)
	}
}

func TestLiveSelf(t *testing.T) {
	p, err := NewFS(DefaultMountPoint)
	require.NoError(t, err)
	st, err := p.Stat(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getppid(), st.PPID)
	uid, err := p.RealUID(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getuid(), uid)
}
