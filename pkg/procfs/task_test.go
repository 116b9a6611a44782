package procfs

import (
	"io/fs"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/filetree"
)

// writeProc writes a fixture /proc tree: path below the root → content.
func writeProc(t *testing.T, files map[string]string) FS {
	t.Helper()
	return FS{Root: filetree.New(t, files)}
}

// Lines as a 6.1 kernel writes them: an mcexec stopped by SIGSTOP, a kernel
// thread (PF_KTHREAD 0x200000 in flags 2129984), a zombie.
const (
	statStopped = "300 (mcexec) T 299 300 299 0 -1 4194560 210 0 0 0 12 4 0 0 20 0 2 0 5000 8388608 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	statKthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0\n"
	statZombie  = "301 (mcexec) Z 299 300 299 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 5001 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
)

func TestStatStateAndFlags(t *testing.T) {
	p := writeProc(t, map[string]string{"300/stat": statStopped, "2/stat": statKthread, "301/stat": statZombie})
	tests := []struct {
		name      string
		pid       int
		wantComm  string
		wantState byte
		wantFlags uint64
	}{
		{name: "stopped by SIGSTOP", pid: 300, wantComm: "mcexec", wantState: 'T', wantFlags: 4194560},
		{name: "kernel thread", pid: 2, wantComm: "kthreadd", wantState: 'S', wantFlags: 2129984},
		{name: "zombie", pid: 301, wantComm: "mcexec", wantState: 'Z', wantFlags: 4227084},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := p.Stat(tc.pid)
			require.NoError(t, err)
			require.Equal(t, tc.wantComm, st.Comm)
			require.Equal(t, string(tc.wantState), string(st.State))
			require.Equal(t, tc.wantFlags, st.Flags)
		})
	}
}

func TestCgroupLines(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []CgroupLine
		wantErr string
	}{
		{name: "cgroup v1 with a named hierarchy", content: "11:freezer:/slurm/uid_1000/job_7/step_0\n4:cpu,cpuacct:/slurm/uid_1000/job_7\n1:name=systemd:/system.slice/slurmd.service\n",
			want: []CgroupLine{
				{Hierarchy: "11", Controllers: []string{"freezer"}, Path: "/slurm/uid_1000/job_7/step_0"},
				{Hierarchy: "4", Controllers: []string{"cpu", "cpuacct"}, Path: "/slurm/uid_1000/job_7"},
				{Hierarchy: "1", Controllers: []string{"name=systemd"}, Path: "/system.slice/slurmd.service"},
			}},
		{name: "cgroup v2", content: "0::/system.slice/slurmstepd.scope/job_7/step_0/user/task_0\n",
			want: []CgroupLine{{Hierarchy: "0", Path: "/system.slice/slurmstepd.scope/job_7/step_0/user/task_0"}}},
		{name: "hybrid", content: "3:memory:/slurm\n0::/init.scope\n",
			want: []CgroupLine{{Hierarchy: "3", Controllers: []string{"memory"}, Path: "/slurm"}, {Hierarchy: "0", Path: "/init.scope"}}},
		{name: "malformed", content: "garbage\n", wantErr: `line "garbage"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeProc(t, map[string]string{"42/cgroup": tc.content})
			got, err := p.CgroupLines(42)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			for _, l := range got {
				require.Equal(t, l.Hierarchy == "0", l.V2(), "%+v", l)
			}
		})
	}
	_, err := writeProc(t, nil).CgroupLines(42)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestPlacement(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    Placement
		wantErr string
	}{
		{name: "kernel thread on every CPU", files: map[string]string{"5/stat": statKthread,
			"5/status": "Name:\tkthreadd\nCpus_allowed:\tff\nCpus_allowed_list:\t0-7\nMems_allowed_list:\t0-1\n"},
			want: Placement{Comm: "kthreadd", Flags: 2129984, CPUs: cpuset.New(0, 1, 2, 3, 4, 5, 6, 7), Mems: cpuset.New(0, 1)}},
		{name: "short fixture line, no Mems_allowed_list", files: map[string]string{"5/stat": "5 (a (b) c) R 1 77 77 0 -1 4194304 0 0 0 0\n",
			"5/status": "Cpus_allowed_list:\t0-1\n"},
			want: Placement{Comm: "a (b) c", Flags: 4194304, CPUs: cpuset.New(0, 1), Mems: cpuset.New()}},
		{name: "no comm", files: map[string]string{"5/stat": "5 init S", "5/status": "Cpus_allowed_list:\t0\n"}, wantErr: "5/stat: no (comm)"},
		{name: "too few fields", files: map[string]string{"5/stat": "5 (x) S 1 2", "5/status": "Cpus_allowed_list:\t0\n"}, wantErr: "5/stat: 3 fields"},
		{name: "bad flags", files: map[string]string{"5/stat": "5 (x) S 1 2 3 4 5 z 0", "5/status": "Cpus_allowed_list:\t0\n"}, wantErr: "5/stat flags"},
		{name: "no cpus", files: map[string]string{"5/stat": "5 (x) S 1 2 3 4 5 0 0", "5/status": "Name:\tx\n"}, wantErr: "5/status: no Cpus_allowed_list"},
		{name: "bad cpu list", files: map[string]string{"5/stat": "5 (x) S 1 2 3 4 5 0 0", "5/status": "Cpus_allowed_list:\t0-\n"}, wantErr: "5/status Cpus_allowed_list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := writeProc(t, tc.files).Placement(5)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.Comm, got.Comm)
			require.Equal(t, tc.want.Flags, got.Flags)
			require.True(t, tc.want.CPUs.Equals(got.CPUs), "cpus %s", got.CPUs)
			require.True(t, tc.want.Mems.Equals(got.Mems), "mems %s", got.Mems)
		})
	}
}

func TestRunTime(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  time.Duration
	}{
		{name: "two threads", files: map[string]string{
			"9/task/9/schedstat":  "1500000000 200000 31\n",
			"9/task/10/schedstat": "250000000 0 4\n",
		}, want: 1750 * time.Millisecond},
		{name: "a thread with a garbled line counts nothing", files: map[string]string{
			"9/task/9/schedstat":  "1000 0 1\n",
			"9/task/10/schedstat": "x\n",
		}, want: 1000},
		{name: "gone", files: map[string]string{"8/stat": statZombie}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, writeProc(t, tc.files).RunTime(9))
		})
	}
}
