package devholders

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFindFixture builds a fake procfs whose fd entries are symlinks, as in
// the real /proc/<pid>/fd.
func TestFindFixture(t *testing.T) {
	dev := t.TempDir()
	mcos0 := filepath.Join(dev, "mcos0")
	mcos1 := filepath.Join(dev, "mcos1")
	for _, p := range []string{mcos0, mcos1} {
		require.NoError(t, os.WriteFile(p, nil, 0o600))
	}
	// A symlinked view of dev: callers may pass either spelling.
	alias := filepath.Join(t.TempDir(), "devlink")
	require.NoError(t, os.Symlink(dev, alias))

	proc := t.TempDir()
	links := map[string]map[string]string{
		"1":    {"0": "/dev/null", "3": mcos1},
		"42":   {"0": "/dev/null", "5": mcos0, "6": "socket:[1234]"},
		"77":   {"4": mcos0},
		"100":  {"4": mcos0 + " (deleted)"},
		"self": {"4": mcos0},
	}
	for pid, fds := range links {
		dir := filepath.Join(proc, pid, "fd")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for fd, target := range fds {
			require.NoError(t, os.Symlink(target, filepath.Join(dir, fd)))
		}
	}
	// A process without an fd directory (exited mid-scan).
	require.NoError(t, os.MkdirAll(filepath.Join(proc, "300"), 0o755))
	// A process that mapped mcos1 and closed the descriptor.
	require.NoError(t, os.MkdirAll(filepath.Join(proc, "500", "fd"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(proc, "500", "maps"), []byte(
		"7f0000000000-7f0000001000 rw-s 00000000 00:05 1234                       "+mcos1+"\n"+
			"7f0000002000-7f0000003000 r--p 00000000 08:01 99                         /usr/lib/libc.so.6\n"), 0o644))

	tests := []struct {
		name string
		path string
		want []int
	}{
		{name: "two holders", path: mcos0, want: []int{42, 77}},
		{name: "one holder, one mapper", path: mcos1, want: []int{1, 500}},
		{name: "through a symlinked directory", path: filepath.Join(alias, "mcos0"), want: []int{42, 77}},
		{name: "nobody", path: filepath.Join(dev, "mcos2"), want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Find(proc, tc.path)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestFindErrors(t *testing.T) {
	_, err := Find(t.TempDir(), "relative/mcos0")
	require.ErrorContains(t, err, "not absolute")
	_, err = Find(filepath.Join(t.TempDir(), "missing"), "/dev/mcos0")
	require.ErrorIs(t, err, os.ErrNotExist)
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
