package proxycgroup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStepUserCgroup(t *testing.T) {
	tests := []struct {
		name, cg, want, wantErr string
	}{
		{name: "task leaf, 22.05 naming", cg: "/system.slice/slurmstepd.scope/job_12/step_0/user/task_0", want: "/system.slice/slurmstepd.scope/job_12/step_0/user"},
		{name: "task leaf, 26.05 SLUID naming", cg: "/system.slice/node1_slurmstepd.scope/sEKNKTV3WPV500/step_3/user/task_17", want: "/system.slice/node1_slurmstepd.scope/sEKNKTV3WPV500/step_3/user"},
		{name: "forked child still in the stepd's cgroup", cg: "/system.slice/slurmstepd.scope/sEKNKTV3WPV500/step_batch/slurm", want: "/system.slice/slurmstepd.scope/sEKNKTV3WPV500/step_batch/user"},
		{name: "task_special", cg: "/x/job_1/step_0/user/task_special", want: "/x/job_1/step_0/user"},
		{name: "not a Slurm step", cg: "/user.slice/user-1000.slice/session-1.scope", wantErr: "not a Slurm step"},
		{name: "task leaf outside a step", cg: "/x/user/task_0", wantErr: "not inside a step_* cgroup"},
		{name: "task_ without a number", cg: "/x/job_1/step_0/user/task_", wantErr: "not a Slurm step"},
		{name: "task leaf with a non-digit", cg: "/x/job_1/step_0/user/task_1a", wantErr: "not a Slurm step"},
		{name: "task_special with a suffix", cg: "/x/job_1/step_0/user/task_specials", wantErr: "not a Slurm step"},
		{name: "task leaf not under user/", cg: "/x/job_1/step_0/other/task_3", wantErr: "not a Slurm step"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StepUserCgroup(tc.cg)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestJoinV2(t *testing.T) {
	const step = "system.slice/slurmstepd.scope/sEKNKTV3WPV500/step_0"
	for _, tc := range []struct {
		name        string
		procCg      string
		role        Role
		wantCPU     string
		wantJobCPUs string
	}{
		{name: "proxy still in step/slurm", procCg: "0::/" + step + "/slurm\n", role: Proxy, wantCPU: "0-1", wantJobCPUs: "0-15"},
		{name: "proxy already in its task leaf", procCg: "0::/" + step + "/user/task_0\n", role: Proxy, wantCPU: "0-1", wantJobCPUs: "0-15"},
		{name: "batch step", procCg: "0::/" + step + "/user/task_0\n", role: Batch, wantCPU: "14-15", wantJobCPUs: "2-15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, layout := newFakeV2(t)
			for _, d := range []string{"system.slice", "system.slice/slurmstepd.scope", "system.slice/slurmstepd.scope/sEKNKTV3WPV500", step, step + "/slurm", step + "/user", step + "/user/task_0"} {
				require.NoError(t, f.Mkdir(filepath.Join(layout.Unified, d)))
			}
			// Slurm's ConstrainCores: the job and the step hold the job's
			// CPUs, not the OS cores.
			job := filepath.Join(layout.Unified, "system.slice/slurmstepd.scope/sEKNKTV3WPV500")
			for _, d := range []string{"", "system.slice", "system.slice/slurmstepd.scope", "system.slice/slurmstepd.scope/sEKNKTV3WPV500"} {
				require.NoError(t, f.Write(filepath.Join(layout.Unified, d), "cgroup.subtree_control", "+cpuset"))
			}
			require.NoError(t, f.Write(job, "cpuset.cpus", "2-15"))
			require.NoError(t, f.Write(filepath.Join(layout.Unified, step), "cpuset.cpus", "2-15"))
			m := Manager{Layout: layout, FS: f}
			lim := paperLimits(t)
			lim.BatchCPUs = mustParse(t, "14-15")
			lim.Mems = mustParse(t, "0-1")
			rec, err := m.Create(12, lim)
			require.NoError(t, err)
			require.Empty(t, rec.Proxies, "nothing of ours exists under v2")
			f.writeProc("4242/cgroup", tc.procCg)
			before, err := os.ReadFile(filepath.Join(f.procRoot, "4242/cgroup"))
			require.NoError(t, err)

			require.NoError(t, m.Join(rec, 4242, tc.role))
			user := filepath.Join(layout.Unified, step, "user")
			require.Equal(t, tc.wantCPU, f.get(user, "cpuset.cpus"))
			require.Equal(t, tc.wantJobCPUs, f.get(job, "cpuset.cpus"), "the job's cpuset widened to the proxies' CPUs")
			require.Equal(t, tc.wantJobCPUs, f.get(filepath.Join(layout.Unified, step), "cpuset.cpus"))
			require.Equal(t, "0-1", f.get(user, "cpuset.mems"))
			if tc.role == Proxy {
				require.Equal(t, "134217728", f.get(user, "memory.max"))
				require.Equal(t, "0", f.get(user, "memory.swap.max"))
				require.Equal(t, "100000 100000", f.get(user, "cpu.max"))
			} else {
				require.Equal(t, "max", f.get(user, "memory.max"), "the batch step keeps Slurm's memory limit")
				require.Equal(t, "max 100000", f.get(user, "cpu.max"))
			}
			require.ElementsMatch(t, []string{"memory", "pids", "cpuset", "cpu"}, splitFields(f.get(layout.Unified, "cgroup.subtree_control")))
			after, err := os.ReadFile(filepath.Join(f.procRoot, "4242/cgroup"))
			require.NoError(t, err)
			require.Equal(t, string(before), string(after), "the task stays where Slurm tracks it")
			pids, err := m.Members(12)
			require.NoError(t, err)
			require.Empty(t, pids)
			require.NoError(t, m.Remove(12), "nothing to remove: Slurm removes its cgroups")
		})
	}
	t.Run("a task outside Slurm's steps is refused", func(t *testing.T) {
		f, layout := newFakeV2(t)
		m := Manager{Layout: layout, FS: f}
		rec, err := m.Create(12, paperLimits(t))
		require.NoError(t, err)
		f.writeProc("4242/cgroup", "0::/user.slice/user-1000.slice\n")
		require.ErrorContains(t, m.Join(rec, 4242, Proxy), "not a Slurm step")
	})
}
