package proxycgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

func mustParse(t *testing.T, s string) cpuset.CPUSet {
	t.Helper()
	set, err := cpuset.Parse(s)
	require.NoError(t, err)
	return set
}

// paperLimits are the paper's evaluation node: OS cores 0-1, 128 MiB, half
// of the two OS cores, batch step on the OS cores (all job cores to the LWK).
func paperLimits(t *testing.T) Limits {
	return Limits{CPUs: mustParse(t, "0-1"), MemoryBytes: 128 << 20, CPUQuotaUS: 100000, CPUPeriodUS: 100000,
		BatchCPUs: mustParse(t, "0-1")}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name   string
		mounts string
		v2ctl  string
		want   Mode
		// wantCPUMount is the cpu hierarchy's mount, under the root.
		wantCPUMount string
		wantErr      string
	}{
		{name: "hybrid, CI machine", mounts: "cgroup %[1]s/cpu cgroup rw,cpu 0 0\ncgroup %[1]s/cpuset cgroup rw,cpuset 0 0\ncgroup %[1]s/memory cgroup rw,memory 0 0\ncgroup %[1]s/freezer cgroup rw,freezer 0 0\ncgroup2 %[1]s/unified cgroup2 rw 0 0\n", v2ctl: "hugetlb", want: V1, wantCPUMount: "cpu"},
		{name: "v1 with cpu,cpuacct co-mounted", mounts: "cgroup %[1]s/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\ncgroup %[1]s/cpuset cgroup rw,cpuset 0 0\ncgroup %[1]s/memory cgroup rw,memory 0 0\n", want: V1, wantCPUMount: "cpu,cpuacct"},
		{name: "pure v2", mounts: "cgroup2 %[1]s/unified cgroup2 rw,nsdelegate 0 0\n", v2ctl: "cpuset cpu io memory pids", want: V2},
		{name: "v2 without cpuset", mounts: "cgroup2 %[1]s/unified cgroup2 rw 0 0\n", v2ctl: "cpu io memory pids", wantErr: "cgroup2 at"},
		{name: "nothing", mounts: "proc /proc proc rw 0 0\n", wantErr: "cgroup v1 lacks cpuset,memory,cpu"},
		{name: "memory missing from v1, empty v2", mounts: "cgroup %[1]s/cpu cgroup rw,cpu 0 0\ncgroup %[1]s/cpuset cgroup rw,cpuset 0 0\ncgroup2 %[1]s/unified cgroup2 rw 0 0\n", v2ctl: "", wantErr: "cgroup v1 lacks memory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(root, "proc/self"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(root, "proc/self/mounts"), fmt.Appendf(nil, tc.mounts, root), 0o644))
			require.NoError(t, os.MkdirAll(filepath.Join(root, "unified"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(root, "unified/cgroup.controllers"), []byte(tc.v2ctl+"\n"), 0o644))
			l, err := Detect(procfs.FS{Root: filepath.Join(root, "proc")})
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrNoCgroups)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, l.Mode)
			if l.Mode == V1 {
				require.Equal(t, filepath.Join(root, "cpuset"), l.V1["cpuset"])
				require.Equal(t, filepath.Join(root, tc.wantCPUMount), l.V1["cpu"])
			} else {
				require.Equal(t, filepath.Join(root, "unified"), l.Unified)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	require.Equal(t, "/sys/fs/cgroup/a b", unescapeMount(`/sys/fs/cgroup/a\040b`))
	require.Equal(t, `/x\y`, unescapeMount(`/x\y`))
}

func TestCreateV1(t *testing.T) {
	tests := []struct {
		name       string
		rootCPUs   string
		rootMems   string
		limits     func(Limits) Limits
		wantBatch  string
		wantMems   string
		wantJobCPU string
		wantErr    string
	}{
		{name: "all job cores to the LWK: batch on the OS cores", rootCPUs: "0-15", rootMems: "0-11",
			limits: func(l Limits) Limits { return l }, wantBatch: "0-1", wantMems: "0-11", wantJobCPU: "0-1"},
		{name: "cores=N: batch on the job's Linux CPUs, proxies on the OS cores", rootCPUs: "0-15", rootMems: "0-11",
			limits: func(l Limits) Limits {
				l.BatchCPUs = cpuset.New(14, 15)
				l.Mems = cpuset.New(0, 1)
				return l
			}, wantBatch: "14-15", wantMems: "0-1", wantJobCPU: "0-1,14-15"},
		{name: "simulated topology: batch CPUs absent here fall back to the OS cores", rootCPUs: "0-1", rootMems: "0",
			limits: func(l Limits) Limits {
				l.BatchCPUs = cpuset.New(8, 9)
				l.Mems = cpuset.New(0, 1)
				return l
			}, wantBatch: "0-1", wantMems: "0", wantJobCPU: "0-1"},
		{name: "an OS core offline is refused", rootCPUs: "1-15", rootMems: "0",
			limits: func(l Limits) Limits { return l }, wantErr: "proxy cpus 0-1 are not all online"},
		{name: "quota below 1ms is refused", rootCPUs: "0-1", rootMems: "0",
			limits: func(l Limits) Limits { l.CPUQuotaUS = 999; return l }, wantErr: "below the kernel's 1ms minimum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, layout := newFakeV1(t, tc.rootCPUs, tc.rootMems)
			m := Manager{Layout: layout, FS: f}
			rec, err := m.Create(12, tc.limits(paperLimits(t)))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "confine job 12")
				return
			}
			require.NoError(t, err)
			job := func(c string) string { return filepath.Join(layout.V1[c], "slurm-lwk", "job-12") }
			require.Equal(t, map[string]string{"cpuset": job("cpuset") + "/proxies", "memory": job("memory") + "/proxies", "cpu": job("cpu") + "/proxies"}, rec.Proxies)
			require.Equal(t, map[string]string{"cpuset": job("cpuset") + "/batch"}, rec.Batch)
			// The shared parent got the root's CPUs before any child.
			require.Equal(t, tc.rootCPUs, f.get(filepath.Join(layout.V1["cpuset"], "slurm-lwk"), "cpuset.cpus"))
			require.Equal(t, tc.wantJobCPU, f.get(job("cpuset"), "cpuset.cpus"))
			require.Equal(t, "0-1", f.get(job("cpuset")+"/proxies", "cpuset.cpus"))
			require.Equal(t, tc.wantMems, f.get(job("cpuset")+"/proxies", "cpuset.mems"))
			require.Equal(t, tc.wantBatch, f.get(job("cpuset")+"/batch", "cpuset.cpus"))
			require.Equal(t, "134217728", f.get(job("memory")+"/proxies", "memory.limit_in_bytes"))
			require.Equal(t, "134217728", f.get(job("memory")+"/proxies", "memory.memsw.limit_in_bytes"))
			require.Equal(t, "100000", f.get(job("cpu")+"/proxies", "cpu.cfs_period_us"))
			require.Equal(t, "100000", f.get(job("cpu")+"/proxies", "cpu.cfs_quota_us"))
			require.Equal(t, tc.wantBatch, rec.Limits.BatchCPUs)

			// Again, as a prolog repeating the step after a crash would.
			again, err := m.Create(12, tc.limits(paperLimits(t)))
			require.NoError(t, err)
			require.Equal(t, rec, again)
		})
	}
}

func TestJoinV1(t *testing.T) {
	f, layout := newFakeV1(t, "0-1", "0")
	m := Manager{Layout: layout, FS: f}
	rec, err := m.Create(12, paperLimits(t))
	require.NoError(t, err)
	// A task of slurmstepd, in Slurm's freezer cgroup (which is not ours).
	f.writeProc("4242/cgroup", "6:freezer:/slurm/uid_1000/job_12/step_0/task_0\n3:cpuset:/\n4:memory:/\n1:cpu:/\n")

	require.NoError(t, m.Join(rec, 4242, Proxy))
	cg, err := os.ReadFile(filepath.Join(f.procRoot, "4242/cgroup"))
	require.NoError(t, err)
	require.Contains(t, string(cg), "freezer:/slurm/uid_1000/job_12/step_0/task_0", "Slurm's tracking is left alone")
	for _, c := range Controllers {
		require.Equal(t, "4242", f.get(rec.Proxies[c], "cgroup.procs"), c)
	}
	pids, err := m.Members(12)
	require.NoError(t, err)
	require.Equal(t, []int{4242}, pids)

	f.writeProc("4343/cgroup", "3:cpuset:/\n4:memory:/\n1:cpu:/\n")
	require.NoError(t, m.Join(rec, 4343, Batch))
	require.Equal(t, "4343", f.get(rec.Batch["cpuset"], "cgroup.procs"))
	require.Equal(t, "", f.get(filepath.Join(layout.V1["memory"], "slurm-lwk/job-12"), "cgroup.procs"), "the batch step has no memory or cpu limit")

	t.Run("a record naming another directory is refused", func(t *testing.T) {
		bad := *rec
		bad.Proxies = map[string]string{"cpuset": layout.V1["cpuset"], "memory": rec.Proxies["memory"], "cpu": rec.Proxies["cpu"]}
		require.ErrorContains(t, m.Join(&bad, 4242, Proxy), "expected "+rec.Proxies["cpuset"])
	})
	t.Run("a record of the other mode is refused", func(t *testing.T) {
		bad := *rec
		bad.Mode = V2
		require.ErrorContains(t, m.Join(&bad, 4242, Proxy), "record of job 12 is for cgroup v2, node uses v1")
	})
	t.Run("a task moved elsewhere meanwhile is caught", func(t *testing.T) {
		mv := m
		mv.FS = movedFS{f}
		require.ErrorContains(t, mv.Join(rec, 4242, Proxy), "/proc says cpuset:/elsewhere")
	})
}

// movedFS attaches, then puts the task somewhere else, as a second placer
// (Slurm's task/cgroup) racing with the wrapper would.
type movedFS struct{ *fakeFS }

func (m movedFS) Attach(dir string, pid int) error {
	if err := m.fakeFS.Attach(dir, pid); err != nil {
		return err
	}
	m.writeProc(fmt.Sprintf("%d/cgroup", pid), "3:cpuset:/elsewhere\n4:memory:/elsewhere\n1:cpu:/elsewhere\n")
	return nil
}

func TestRemoveV1(t *testing.T) {
	f, layout := newFakeV1(t, "0-1", "0")
	m := Manager{Layout: layout, FS: f}
	rec, err := m.Create(12, paperLimits(t))
	require.NoError(t, err)
	_, err = m.Create(13, paperLimits(t))
	require.NoError(t, err)
	f.writeProc("4242/cgroup", "")
	require.NoError(t, m.Join(rec, 4242, Proxy))

	ids, err := m.Leftovers()
	require.NoError(t, err)
	require.Equal(t, []uint32{12, 13}, ids)

	err = m.Remove(12)
	require.ErrorIs(t, err, syscall.EBUSY, "a live proxy keeps its cgroup busy")
	require.ErrorContains(t, err, "remove confinement of job 12")

	f.set(rec.Proxies["cpuset"], "cgroup.procs", "")
	f.set(rec.Proxies["memory"], "cgroup.procs", "")
	f.set(rec.Proxies["cpu"], "cgroup.procs", "")
	require.NoError(t, m.Remove(12))
	require.NoError(t, m.Remove(12), "gone is success")
	ids, err = m.Leftovers()
	require.NoError(t, err)
	require.Equal(t, []uint32{13}, ids)
	_, err = os.Stat(filepath.Join(layout.V1["cpuset"], "slurm-lwk"))
	require.NoError(t, err, "the shared parent stays")
}
