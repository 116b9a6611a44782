package sysconfine_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/sysconfine"
)

func tree(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		if f[len(f)-1] == '/' {
			require.NoError(t, os.MkdirAll(p, 0o755))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, nil, 0o644))
	}
	return root
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  sysconfine.Mode
	}{
		{"systemd wins", []string{"run/systemd/system/", "sys/fs/cgroup/cgroup.controllers"}, sysconfine.ModeSystemd},
		{"cgroup v2", []string{"sys/fs/cgroup/cgroup.controllers"}, sysconfine.ModeCgroup2},
		{"cgroup v1 cpuset", []string{"sys/fs/cgroup/cpuset/cpuset.cpus"}, sysconfine.ModeCgroup1},
		{"nothing", nil, sysconfine.ModeNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, sysconfine.Detect(tree(t, tc.files...)))
		})
	}
}

func TestSystemdUnits(t *testing.T) {
	// Hybrid hierarchy: systemd's tree under unified/.
	root := tree(t, "sys/fs/cgroup/unified/system.slice/cron.service/", "sys/fs/cgroup/unified/system.slice/slurmd.service/",
		"sys/fs/cgroup/unified/system.slice/slurmstepd.scope/", "sys/fs/cgroup/unified/system.slice/cgroup.procs",
		"sys/fs/cgroup/unified/user.slice/", "sys/fs/cgroup/unified/system.slice/munge.service/")
	require.Equal(t, []string{"cron.service", "munge.service", "user.slice"}, sysconfine.SystemdUnits(root))
	require.Empty(t, sysconfine.SystemdUnits(t.TempDir()))
}

func TestDropIn(t *testing.T) {
	for _, bad := range []string{"", "..", "a/b", "x\x00"} {
		_, err := sysconfine.DropInPath("/", bad)
		require.Error(t, err, bad)
	}
	require.Equal(t, "# Written by lwkctl node apply; removed by lwkctl node apply --undo.\n[Slice]\nAllowedCPUs=0-1\nAllowedMemoryNodes=0\n",
		sysconfine.DropIn("user.slice", cpuset.New(0, 1), cpuset.New(0)))
	root := t.TempDir()
	before, existed, err := sysconfine.WriteDropIn(root, "cron.service", "x")
	require.NoError(t, err)
	require.False(t, existed)
	require.Empty(t, before)
	before, existed, err = sysconfine.WriteDropIn(root, "cron.service", "y")
	require.NoError(t, err)
	require.True(t, existed)
	require.Equal(t, "x", before)
	require.NoError(t, sysconfine.RemoveDropIn(root, "cron.service"))
	require.NoError(t, sysconfine.RemoveDropIn(root, "cron.service"), "absent is fine")
	_, err = os.Stat(filepath.Join(root, "etc/systemd/system/cron.service.d"))
	require.True(t, os.IsNotExist(err))
}

func TestGroupV1(t *testing.T) {
	root := tree(t, "sys/fs/cgroup/cpuset/cpuset.cpus")
	require.NoError(t, os.WriteFile(filepath.Join(root, "sys/fs/cgroup/cpuset/cgroup.procs"), []byte("1\n7\n9\n10\n"), 0o644))
	// 1 a daemon, 7 a kernel thread, 9 a running job's slurmstepd and 10
	// its task: the job keeps the CPUs Slurm gave it.
	for pid, st := range map[string]string{"1": "(p) S 0 0 0 0 -1 4194560", "7": "(p) S 0 0 0 0 -1 2129984",
		"9": "(slurmstepd) S 1 0 0 0 -1 4194560", "10": "(a.out) S 9 0 0 0 -1 4194560"} {
		d := filepath.Join(root, "proc", pid)
		require.NoError(t, os.MkdirAll(d, 0o755))
		// ... flags, then minflt..cmajflt, utime..cstime, priority, nice,
		// threads, itrealvalue, starttime, vsize, rss.
		require.NoError(t, os.WriteFile(filepath.Join(d, "stat"), []byte(pid+" "+st+" 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(d, "status"), []byte("Cpus_allowed_list:\t0-3\n"), 0o644))
	}
	g, err := sysconfine.NewGroup(root, sysconfine.ModeCgroup1)
	require.NoError(t, err)
	created, enabled, err := g.Create(cpuset.New(0), cpuset.New(0))
	require.NoError(t, err)
	require.True(t, created)
	require.False(t, enabled, "v1 has no subtree_control")
	moved, err := g.MoveSystemProcesses(root)
	require.NoError(t, err)
	require.Equal(t, []int{1}, moved, "kernel thread 7 and the job (9, 10) stay")
	require.NoError(t, g.Remove())
	require.NoError(t, g.Remove(), "absent is fine")
	_, err = sysconfine.NewGroup(root, sysconfine.ModeSystemd)
	require.Error(t, err)
}
