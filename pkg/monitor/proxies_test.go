package monitor_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// statOf is a 6.1 kernel's /proc/<pid>/stat line for an mcexec in state.
func statOf(state string) string {
	return "300 (mcexec) " + state + " 299 300 299 0 -1 4194560 210 0 0 0 12 4 0 0 20 0 2 0 5000 8388608 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
}

func TestProcProxiesStopped(t *testing.T) {
	const v1 = "11:freezer:/slurm/uid_1000/job_7/step_0\n4:cpu,cpuacct:/slurm/uid_1000/job_7\n"
	const v2 = "0::/system.slice/slurmstepd.scope/job_7/step_0/user/task_0\n"
	tests := []struct {
		name   string
		stat   string
		cgroup string
		// cgroupFiles are below the cgroup root.
		cgroupFiles map[string]string
		want        bool
	}{
		{name: "SIGSTOP (proctrack/linuxproc)", stat: statOf("T"), cgroup: v1, want: true},
		{name: "traced stop", stat: statOf("t"), cgroup: v1, want: true},
		{name: "running, v1 freezer frozen", stat: statOf("S"), cgroup: v1,
			cgroupFiles: map[string]string{"freezer/slurm/uid_1000/job_7/step_0/freezer.state": "FROZEN\n"}, want: true},
		{name: "running, v1 freezer thawed", stat: statOf("S"), cgroup: v1,
			cgroupFiles: map[string]string{"freezer/slurm/uid_1000/job_7/step_0/freezer.state": "THAWED\n"}},
		{name: "running, v2 frozen", stat: statOf("S"), cgroup: v2,
			cgroupFiles: map[string]string{"system.slice/slurmstepd.scope/job_7/step_0/user/task_0/cgroup.events": "populated 1\nfrozen 1\n"}, want: true},
		{name: "running, v2 frozen on a hybrid node's unified mount", stat: statOf("S"), cgroup: v2,
			cgroupFiles: map[string]string{"unified/system.slice/slurmstepd.scope/job_7/step_0/user/task_0/cgroup.events": "populated 1\nfrozen 1\n"}, want: true},
		{name: "running, v2 not frozen", stat: statOf("R"), cgroup: v2,
			cgroupFiles: map[string]string{"system.slice/slurmstepd.scope/job_7/step_0/user/task_0/cgroup.events": "populated 1\nfrozen 0\n"}},
		{name: "zombie in a frozen cgroup", stat: statOf("Z"), cgroup: v1,
			cgroupFiles: map[string]string{"freezer/slurm/uid_1000/job_7/step_0/freezer.state": "FROZEN\n"}},
		{name: "a path leaving the cgroup root is ignored", stat: statOf("S"), cgroup: "11:freezer:/../../etc\n",
			// Where the path would lead: a FROZEN state read there would say stopped.
			cgroupFiles: map[string]string{"../etc/freezer.state": "FROZEN\n"}},
		{name: "gone", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proc, cg := t.TempDir(), t.TempDir()
			write := func(root, rel, content string) {
				p := filepath.Join(root, rel)
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
			}
			if tc.stat != "" {
				write(proc, "300/stat", tc.stat)
				write(proc, "300/cgroup", tc.cgroup)
			}
			for rel, content := range tc.cgroupFiles {
				write(cg, rel, content)
			}
			p := monitor.ProcProxies{Proc: procfs.FS{Root: proc}, CgroupRoot: cg}
			require.Equal(t, tc.want, p.Stopped(300))
		})
	}
}
