package procfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOwnerFixture(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\tmcexec\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "comm"), []byte("mcexec\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte(
		"12:pids:/slurm/uid_1000/job_7/step_0/task_0\n1:name=systemd:/system.slice\n0::/\n"), 0o644))
	fs := FS{Root: root}
	r, e, err := fs.UIDs(42)
	require.NoError(t, err)
	require.Equal(t, [2]int{1000, 0}, [2]int{r, e}, "a setuid-root program: real and effective differ")
	comm, err := fs.Comm(42)
	require.NoError(t, err)
	require.Equal(t, "mcexec", comm)
	cg, err := fs.Cgroups(42)
	require.NoError(t, err)
	require.Equal(t, []string{"/slurm/uid_1000/job_7/step_0/task_0", "/system.slice", "/"}, cg)
	_, _, err = fs.UIDs(43)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLocks(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "locks"), []byte(
		"1: FLOCK  ADVISORY  READ  1234 fe:00:5615264 0 EOF\n"+
			"1: -> FLOCK  ADVISORY  WRITE 77 fe:00:5615264 0 EOF\n"+
			"2: OFDLCK ADVISORY  READ  -1 00:05:99 0 EOF\n"), 0o644))
	got, err := FS{Root: root}.Locks()
	require.NoError(t, err)
	require.Equal(t, []Lock{
		{Class: "FLOCK", PID: 1234, Major: 0xfe, Minor: 0, Inode: 5615264},
		{Class: "FLOCK", PID: 77, Major: 0xfe, Minor: 0, Inode: 5615264},
		{Class: "OFDLCK", PID: -1, Major: 0, Minor: 5, Inode: 99},
	}, got)
}
