//go:build vmnode

package vmnode

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
)

var osSet = cpuset.New(0, 1)

// checkConfined checks what lwkctl confine-task left on Slurm's tree for a
// proxy pid in task: the pid stays in its task leaf (Slurm still finds and
// signals it there), the step's user/ cgroup carries the limits, the job's
// and the step's cpusets were widened by the OS cores, and the proxy runs
// on the OS cores only.
func checkConfined(t *testing.T, j *slurmJob, task string, pid int) {
	t.Helper()
	require.Equal(t, rel(t, task), cgroupOf(t, pid), "the proxy stays in Slurm's task leaf")
	require.Contains(t, strings.Fields(readTrim(t, filepath.Join(task, "cgroup.procs"))), strconv.Itoa(pid),
		"Slurm finds the proxy in the cgroup.procs of its task leaf")
	require.Equal(t, osSet, readSet(t, filepath.Join(j.user, "cpuset.cpus")), "user/ cpuset.cpus: the OS cores")
	eventually(t, "user/ effective CPUs become the OS cores", func() bool {
		return readSet(t, filepath.Join(j.user, "cpuset.cpus.effective")).Equals(osSet)
	})
	for _, d := range []string{j.job, j.step} {
		require.True(t, osSet.IsSubsetOf(readSet(t, filepath.Join(d, "cpuset.cpus"))), "%s widened by the OS cores", d)
	}
	require.Equal(t, "0", readTrim(t, filepath.Join(j.user, "cpuset.mems")), "the proxies allocate from the system NUMA node")
	require.Equal(t, strconv.Itoa(proxyMemory), readTrim(t, filepath.Join(j.user, "memory.max")))
	require.Equal(t, "50000 100000", readTrim(t, filepath.Join(j.user, "cpu.max")))
	eventually(t, "the proxy's affinity narrows to the OS cores", func() bool {
		return cpusAllowed(t, pid).Equals(osSet)
	})
	for _, f := range []string{"cpuset.cpus", "cpuset.mems", "memory.max", "cpu.max", "cgroup.procs", "cgroup.subtree_control"} {
		rootOwnedNotWritable(t, filepath.Join(j.user, f))
	}
	rootOwnedNotWritable(t, filepath.Join(j.job, "cgroup.procs"))
	rootOwnedNotWritable(t, filepath.Join(j.job, "cpuset.cpus"))
}

// TestJobIDTreeAfterProlog: a job holding CPUs 2-3, all of them taken by
// the LWK, with Slurm's job_<id> tree made after the prolog (a step
// started once the job runs). The CPUs really go offline and come back;
// the proxies are confined in place; cpu.max throttles a busy proxy to
// half a CPU and memory.max OOM-kills one that allocates beyond it; the OS
// cores stay online and run work; nothing is left behind.
func TestJobIDTreeAfterProlog(t *testing.T) {
	g := newGuest(t)
	const jobID = 21
	before := cgroupDirs(t)

	g.prolog(jobID, "2-3")
	require.Equal(t, osCores, readTrim(t, "/sys/devices/system/cpu/online"), "the LWK's CPUs are offline while the job runs")
	require.Equal(t, "2-3", readTrim(t, "/sys/devices/system/cpu/offline"))
	st := g.status()
	require.Len(t, st.OSInstances, 1, "lwkctl status: %+v", st)
	require.Equal(t, "RUNNING", st.OSInstances[0].Status)
	require.Equal(t, "2-3", st.OSInstances[0].CPUs, "the LWK holds the job's CPUs")

	rec := g.record(jobID)
	require.Equal(t, proxycgroup.V2, rec.Mode, "the guest mounts only cgroup2")
	require.Equal(t, osCores, rec.Limits.CPUs)
	require.Equal(t, uint64(proxyMemory), rec.Limits.MemoryBytes)
	require.Equal(t, int64(cpuQuotaUS), rec.Limits.CPUQuotaUS)
	require.Equal(t, int64(cpuPeriodUS), rec.Limits.CPUPeriodUS)
	require.Equal(t, before, cgroupDirs(t), "on cgroup v2 the prolog creates no cgroup of its own")

	// The OS cores stay online and usable: work pinned to each runs there.
	for _, c := range osSet.List() {
		h := startHelper(t, nil, "oncpu", strconv.Itoa(c))
		h.proceed()
		require.Equal(t, "ran-on "+strconv.Itoa(c), h.line(), "work pinned to OS core %d runs there", c)
		require.NoError(t, h.wait())
	}

	// Slurm's tree, made now: the job's cpuset holds only offline CPUs, so
	// its effective set is the parent's, not the job's.
	j := makeSlurmJob(t, "system.slice/slurmstepd.scope", "job_"+strconv.Itoa(jobID), 0, 2, "2-3")
	require.True(t, readSet(t, filepath.Join(j.job, "cpuset.cpus")).Intersection(readSet(t, "/sys/devices/system/cpu/online")).IsEmpty(),
		"the job's cpuset consists of offlined CPUs only")
	eventually(t, "job's effective CPUs fall back to the parent's", func() bool {
		return readSet(t, filepath.Join(j.job, "cpuset.cpus.effective")).Equals(readSet(t, filepath.Join(j.scope, "cpuset.cpus.effective")))
	})

	// A busy proxy (two threads) in task_0, confined by the task wrapper.
	spin := startHelper(t, nil, "spin", "2")
	place(t, j.tasks[0], spin.pid())
	g.confineTask(jobID, spin.pid())
	checkConfined(t, j, j.tasks[0], spin.pid())

	// cpu.max: over the periods the proxies were runnable, they got about
	// quota/period of a CPU. Measured from cpu.stat (CPU time per CFS
	// period), so a slow host lowers the share but cannot raise it.
	s0 := cpuStat(t, j.user)
	spin.proceed()
	require.Equal(t, "spinning", spin.line())
	time.Sleep(3 * time.Second)
	s1 := cpuStat(t, j.user)
	periods := s1["nr_periods"] - s0["nr_periods"]
	throttled := s1["nr_throttled"] - s0["nr_throttled"]
	usage := s1["usage_usec"] - s0["usage_usec"]
	require.Positive(t, periods, "cpu.stat counts CFS periods under cpu.max")
	share := float64(usage) / float64(periods*cpuPeriodUS)
	t.Logf("cpu.max %d/%d: %d µs over %d periods (%d throttled): %.2f CPU", cpuQuotaUS, cpuPeriodUS, usage, periods, throttled, share)
	require.Positive(t, throttled, "two busy threads under half a CPU are throttled")
	require.LessOrEqual(t, share, 0.6, "the quota caps the proxies at about half a CPU")
	require.GreaterOrEqual(t, share, 0.2, "the proxies still get CPU time")
	spin.stop()

	// memory.max: a proxy allocating twice the limit is OOM-killed.
	ooms := memoryEvents(t, j.user, "oom_kill")
	alloc := startHelper(t, nil, "alloc", strconv.Itoa(2*proxyMemory>>20))
	place(t, j.tasks[1], alloc.pid())
	g.confineTask(jobID, alloc.pid())
	require.Equal(t, rel(t, j.tasks[1]), cgroupOf(t, alloc.pid()))
	alloc.proceed()
	err := alloc.wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the allocation beyond memory.max ends the proxy")
	ws := exit.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by the OOM killer (SIGKILL), got %v", ws)
	require.Greater(t, memoryEvents(t, j.user, "oom_kill"), ooms, "user/ memory.events counts the OOM kill")

	// The batch step (the job script, srun) is placed, not limited: the
	// OS cores when the LWK takes every job CPU, no proxy memory or CPU cap.
	require.Equal(t, osCores, rec.Limits.BatchCPUs)
	batchUser, batchTask := j.addStep(t, "batch")
	batch := startHelper(t, nil, "spin", "1")
	place(t, batchTask, batch.pid())
	out, err := g.run("lwkctl", jobID, "confine-task", "--config", g.conf,
		"--job", strconv.Itoa(jobID), "--pid", strconv.Itoa(batch.pid()), "--role", "batch")
	require.NoError(t, err, "lwkctl confine-task --role batch: %s", out)
	require.Equal(t, rel(t, batchTask), cgroupOf(t, batch.pid()), "the batch step stays in its task leaf")
	require.Equal(t, osSet, readSet(t, filepath.Join(batchUser, "cpuset.cpus")))
	eventually(t, "the batch step runs on the OS cores", func() bool { return cpusAllowed(t, batch.pid()).Equals(osSet) })
	require.Equal(t, "max", readTrim(t, filepath.Join(batchUser, "memory.max")), "no proxy memory cap on the batch step")
	require.Equal(t, "max 100000", readTrim(t, filepath.Join(batchUser, "cpu.max")), "no proxy quota on the batch step")
	batch.stop()

	// The step ends (Slurm removes its tree, which fails if anything of
	// ours were left inside), then the epilog.
	j.remove(t)
	g.epilog(jobID)
	eventually(t, "CPUs back online after the epilog", func() bool {
		return readTrim(t, "/sys/devices/system/cpu/online") == guestCPUsAll
	})
	_, err = proxycgroup.ReadRecord(filepath.Join(g.dir, "run"), jobID)
	require.ErrorIs(t, err, syscall.ENOENT, "the epilog removes the confinement record")
	require.Equal(t, before, cgroupDirs(t), "no cgroup left behind")
	st = g.status()
	require.Empty(t, st.ReservedCPUs)
	require.Empty(t, st.OSInstances)
	require.Empty(t, st.Jobs)
	require.Empty(t, st.Cgroups)
}

// TestSLUIDTreeBeforeProlog: Slurm 25.05+/26.05 names the job's cgroup by
// its SLUID and makes it before the prolog runs (PrologFlags=Contain). The
// job holds CPU 3 only; CPU 2 stays online and belongs to another job.
// When the prolog takes CPU 3 offline, the job's cpuset has no online CPU
// and the kernel falls back to the parent's: a proxy would then run on the
// other job's CPU. The confinement narrows it to the OS cores, in its task
// leaf, and the job's user (nobody) can neither move out nor widen it.
func TestSLUIDTreeBeforeProlog(t *testing.T) {
	g := newGuest(t)
	const jobID = 22
	const sluid = "sEKNKTV3WPV501"
	before := cgroupDirs(t)

	j := makeSlurmJob(t, "system.slice/vm_slurmstepd.scope", sluid, 0, 1, "3")
	proxy := startHelper(t, &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID}, "escape", j.job, j.user, "2")
	place(t, j.tasks[0], proxy.pid())
	eventually(t, "the task runs on the job's CPU", func() bool {
		return cpusAllowed(t, proxy.pid()).Equals(cpuset.New(3))
	})

	g.prolog(jobID, "3")
	require.Equal(t, "0-2", readTrim(t, "/sys/devices/system/cpu/online"), "the job's CPU is offline, the other job's is not")
	require.Equal(t, "3", readTrim(t, filepath.Join(j.job, "cpuset.cpus")), "the kernel keeps the configured CPUs")
	eventually(t, "the job's effective CPUs fall back to the parent's, the other job's CPU 2 included", func() bool {
		return readSet(t, filepath.Join(j.job, "cpuset.cpus.effective")).Equals(cpuset.New(0, 1, 2))
	})
	eventually(t, "unconfined, the task may run on the other job's CPU", func() bool {
		return cpusAllowed(t, proxy.pid()).Contains(2)
	})

	g.confineTask(jobID, proxy.pid())
	checkConfined(t, j, j.tasks[0], proxy.pid())
	require.False(t, readSet(t, filepath.Join(j.job, "cpuset.cpus.effective")).IsEmpty())

	// The job's user tries every way out; the kernel refuses each.
	proxy.proceed()
	var res map[string]string
	line := proxy.line()
	require.NoError(t, json.Unmarshal([]byte(line), &res), line)
	t.Logf("unprivileged attempts: %s", line)
	want := map[string]string{
		"move-to-root": "EACCES", "move-to-job": "EACCES",
		"widen-user-cpus": "EACCES", "widen-job-cpus": "EACCES",
		"lift-memory-max": "EACCES", "lift-cpu-max": "EACCES",
		"enable-controllers": "EACCES", "mkdir-own-cgroup": "EACCES",
		// sched_setaffinity is bounded by the cpuset: no allowed CPU left.
		"setaffinity-outside": "EINVAL",
	}
	require.Equal(t, want, res)
	checkConfined(t, j, j.tasks[0], proxy.pid())
	proxy.stop()

	j.remove(t)
	g.epilog(jobID)
	eventually(t, "CPU 3 back online after the epilog", func() bool {
		return readTrim(t, "/sys/devices/system/cpu/online") == guestCPUsAll
	})
	_, err := proxycgroup.ReadRecord(filepath.Join(g.dir, "run"), jobID)
	require.True(t, errors.Is(err, syscall.ENOENT), "the epilog removes the confinement record: %v", err)
	require.Equal(t, before, cgroupDirs(t), "no cgroup left behind")
}
