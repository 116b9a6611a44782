package devholders

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// fakeProc builds a procfs fixture: for each pid, its tasks' fd entries
// (symlinks, as the kernel's magic links are), and optional maps lines.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc { return &fakeProc{t: t, root: t.TempDir()} }

// fds gives task tid of process pid the descriptors fd → target.
func (p *fakeProc) fds(pid, tid string, links map[string]string) {
	dir := filepath.Join(p.root, pid, "task", tid, "fd")
	require.NoError(p.t, os.MkdirAll(dir, 0o755))
	for fd, target := range links {
		require.NoError(p.t, os.Symlink(target, filepath.Join(dir, fd)))
	}
}

// maps writes task tid's maps file.
func (p *fakeProc) maps(pid, tid, content string) {
	dir := filepath.Join(p.root, pid, "task", tid)
	require.NoError(p.t, os.MkdirAll(dir, 0o755))
	require.NoError(p.t, os.WriteFile(filepath.Join(dir, "maps"), []byte(content), 0o644))
}

// mapsLine formats a maps line for a mapping of path, with its real
// "major:minor inode" pair, shown as shown.
func mapsLine(t *testing.T, path, shown string) string {
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	return fmt.Sprintf("7f0000000000-7f0000001000 rw-s 00000000 %02x:%02x %d                       %s\n",
		unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino, shown)
}

// TestScanFixture covers how holders hide: a descriptor only in a thread
// that unshared its file table, a path that does not match (a bind mount in
// another namespace), a mapping without a descriptor.
func TestScanFixture(t *testing.T) {
	dev := t.TempDir()
	mcos0 := filepath.Join(dev, "mcos0")
	mcos1 := filepath.Join(dev, "mcos1")
	for _, path := range []string{mcos0, mcos1} {
		require.NoError(t, os.WriteFile(path, nil, 0o600))
	}
	// A second name for mcos0's inode, as a bind mount shows it: the fd's
	// path string differs from mcos0, the inode does not.
	bind := filepath.Join(t.TempDir(), "x")
	require.NoError(t, os.Link(mcos0, bind))
	alias := filepath.Join(t.TempDir(), "devlink")
	require.NoError(t, os.Symlink(dev, alias))

	p := newFakeProc(t)
	p.fds("1", "1", map[string]string{"0": "/dev/null", "3": mcos1})
	p.fds("42", "42", map[string]string{"0": "/dev/null", "5": mcos0})
	p.fds("42", "43", map[string]string{"0": "/dev/null", "5": mcos0}) // shares the table
	p.fds("77", "77", map[string]string{"0": "/dev/null"})
	p.fds("77", "80", map[string]string{"4": mcos0}) // unshare(CLONE_FILES) thread
	p.fds("90", "90", map[string]string{"4": bind})  // opened through a bind mount
	p.fds("100", "100", map[string]string{"4": mcos0 + " (deleted)"})
	p.fds("self", "1", map[string]string{"4": mcos0})
	// Exited mid-scan: no task directory.
	require.NoError(t, os.MkdirAll(filepath.Join(p.root, "300"), 0o755))
	// Mapped mcos1 and closed the descriptor; the maps line names a path
	// from another namespace.
	p.fds("500", "500", nil)
	p.maps("500", "500", mapsLine(t, mcos1, "/mnt/elsewhere")+
		"7f0000002000-7f0000003000 r--p 00000000 08:01 99                         /usr/lib/libc.so.6\n")
	// Leader exited (empty maps), another thread still maps mcos0.
	p.fds("600", "600", nil)
	p.maps("600", "600", "")
	p.fds("600", "601", nil)
	p.maps("600", "601", mapsLine(t, mcos0, mcos0))

	tests := []struct {
		name string
		path string
		want []Holder
	}{
		{name: "every way of holding mcos0", path: mcos0, want: []Holder{
			{PID: 42, TIDs: []int{42, 43}},
			{PID: 77, TIDs: []int{80}},
			{PID: 90, TIDs: []int{90}},
			{PID: 600, Mapped: true},
		}},
		{name: "one holder, one mapper", path: mcos1, want: []Holder{
			{PID: 1, TIDs: []int{1}},
			{PID: 500, Mapped: true},
		}},
		{name: "through a symlinked directory", path: filepath.Join(alias, "mcos1"), want: []Holder{
			{PID: 1, TIDs: []int{1}},
			{PID: 500, Mapped: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Scan(p.root, tc.path)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	pids, err := Find(p.root, mcos0)
	require.NoError(t, err)
	require.Equal(t, []int{42, 77, 90, 600}, pids)
}

func TestScanErrors(t *testing.T) {
	_, err := Find(t.TempDir(), "relative/mcos0")
	require.ErrorContains(t, err, "not absolute")
	_, err = Find(t.TempDir(), filepath.Join(t.TempDir(), "mcos9"))
	require.ErrorIs(t, err, os.ErrNotExist, "a missing device has no identity")
	path := filepath.Join(t.TempDir(), "mcos0")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err = Find(filepath.Join(t.TempDir(), "missing"), path)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseMapKey(t *testing.T) {
	k, ok := parseMapKey("fd:01", "123456")
	require.True(t, ok)
	require.Equal(t, mapKey{major: 0xfd, minor: 1, ino: 123456}, k)
	for _, bad := range [][2]string{{"fd01", "1"}, {"zz:01", "1"}, {"fd:01", "x"}} {
		_, ok := parseMapKey(bad[0], bad[1])
		require.False(t, ok, bad)
	}
}

// TestFindLive opens a file in this process and finds it in the real /proc.
func TestFindLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcos0")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	got, err := Find("/proc", path)
	require.NoError(t, err)
	require.NotContains(t, got, os.Getpid())

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	got, err = Find("/proc", path)
	require.NoError(t, err)
	require.Equal(t, []int{os.Getpid()}, got)
}
