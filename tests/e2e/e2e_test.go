//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"
)

// The tests run in this order (go test runs a file's tests in source order):
// the plain-Slurm check first, so a broken cluster is reported as such, then
// the scenarios of issue 5 from fast to slow. Each ends by asserting that the
// node is back to pristine, so a later test never inherits a dirty node.

// osCores are the demo node's OS cores (lwk.conf OSCores): never an LWK CPU.
var osCores = cpuset.New(0, 1)

// TestSlurmRunsJobsAsNobody checks the harness and the local cluster without
// slurm-lwk: a Linux batch job of user nobody runs, its output comes back and
// accounting records it.
func TestSlurmRunsJobsAsNobody(t *testing.T) {
	h := newHarness(t)
	h.waitNodeIdle(settleTimeout)
	dir := h.workdir()
	script := h.writeScript(dir, "plain.sh", "#!/bin/bash\nid -un\nsrun -n2 /bin/sh -c 'echo task $SLURM_PROCID'\necho rc=$?\n")
	id := h.sbatch(dir, "plain", "-n2", "--time=2", script)
	f := h.waitJob(id, jobTimeout)
	require.Equal(t, "COMPLETED", f["JobState"], "job %d: %v\nerr: %s", id, f, readFile(filepath.Join(dir, "plain.err")))
	out := readFile(filepath.Join(dir, "plain.out"))
	require.Contains(t, out, "nobody\n")
	require.Contains(t, out, "task 0\n")
	require.Contains(t, out, "task 1\n")
	require.Contains(t, out, "rc=0\n")
	rows := h.sacct(id)
	require.Equal(t, sacctRow{State: "COMPLETED", ExitCode: "0:0"}, rows[strconv.Itoa(id)])
	require.Equal(t, "COMPLETED", rows[strconv.Itoa(id)+".0"].State)
	h.waitNodeIdle(settleTimeout)
}

// lwkJobScript runs three srun steps through mcexec: the probe on two tasks
// (exit 0), then, once the test has looked at the node and created "go",
// a task exiting 3 and a task killed by SIGSEGV, both printing their parent's
// argv. The batch step prints each srun's exit status.
const lwkJobScript = "#!/bin/bash\n" + probeScript + `TAG=s0: srun -n2 /bin/sh -c "$probe"
echo "rc0=$?"
touch step0.done
while [ ! -e go ]; do sleep 0.2; done
srun -n1 /bin/sh -c 'printf "s1:parent=%s\n" "$(tr "\000" "|" </proc/$PPID/cmdline)"; printf "s1:numa=%s\n" "$LWK_NUMA_MAP"; exit 3'
echo "rc1=$?"
srun -n1 /bin/sh -c 'printf "s2:parent=%s\n" "$(tr "\000" "|" </proc/$PPID/cmdline)"; kill -SEGV $$'
echo "rc2=$?"
`

// checkBooted asserts that the job has a booted OS instance on LWK CPUs and
// a marker file naming it, and returns the instance.
func checkBooted(h *harness, id int) osInstance {
	h.t.Helper()
	s := h.status()
	j, ok := s.job(id)
	require.True(h.t, ok, "lwkctl status has no journal for job %d: %+v", id, s)
	var inst *osInstance
	for i := range s.OSInstances {
		if s.OSInstances[i].Index == j.OS {
			inst = &s.OSInstances[i]
		}
	}
	require.NotNil(h.t, inst, "job %d: os %d not in os_instances %+v", id, j.OS, s.OSInstances)
	require.Equal(h.t, "RUNNING", inst.Status)
	cpus, err := cpuset.Parse(inst.CPUs)
	require.NoError(h.t, err, "os %d cpus %q", inst.Index, inst.CPUs)
	require.False(h.t, cpus.IsEmpty(), "os %d has no CPUs", inst.Index)
	require.True(h.t, cpus.Intersection(osCores).IsEmpty(), "os %d CPUs %s include OS cores %s", inst.Index, cpus, osCores)
	require.NotEmpty(h.t, inst.Memory, "os %d has no memory", inst.Index)
	marker, err := os.ReadFile(filepath.Join(h.runDir, "job-"+strconv.Itoa(id)))
	require.NoError(h.t, err, "marker file of job %d", id)
	// The first attempt of the job, the LWK's CPU count, no oversubscription.
	// Then the LWK's NUMA numbering, for LWK_NUMA_MAP.
	require.Regexp(h.t, fmt.Sprintf(`^os=%d\nattempt=0\ncpus=%d\noversubscribe=0\nlwk_numa=[0-9]+:[0-9]+(,[0-9]+:[0-9]+)*\n$`, inst.Index, cpus.Size()), string(marker))
	return *inst
}

// Scenario 1: an LWK batch job with srun steps; every task runs through the
// mcexec stand-in on the LWK's CPUs; output and exit codes (0, 3, a signal)
// come back to the user.
func TestLWKBatchJobRunsStepsThroughMcexec(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	logStart := h.lwkLogSize()
	dir := h.workdir()
	script := h.writeScript(dir, "lwk.sh", lwkJobScript)
	id := h.sbatch(dir, "lwk", "--lwk-mode=mck", "-n2", "--time=5", script)

	h.waitFile(filepath.Join(dir, "step0.done"), "", jobTimeout)
	inst := checkBooted(h, id)
	t.Logf("job %d: os %d cpus %s memory %+v", id, inst.Index, inst.CPUs, inst.Memory)
	h.touch(filepath.Join(dir, "go"))

	f := h.waitJob(id, jobTimeout)
	out := readFile(filepath.Join(dir, "lwk.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "job %d\nout: %s\nerr: %s", id, out, readFile(filepath.Join(dir, "lwk.err")))
	t.Logf("job %d output:\n%s", id, out)
	h.checkRouted(f, true)
	probes := parseProbe(t, out, "s0:")
	require.Len(t, probes, 2, "probe lines in:\n%s", out)
	for rank, p := range probes {
		require.True(t, p.wrapped(2), "rank %d did not run through lwk-sim-mcexec -n 2: parent %q", rank, p.Parent)
	}
	// The plugin gives every LWK task the LWK's NUMA numbering.
	require.Regexp(t, `^[0-9]+:[0-9]+(,[0-9]+:[0-9]+)*$`, lineValue(t, out, "s1:numa="))
	for _, tag := range []string{"s1:", "s2:"} {
		parent := lineValue(t, out, tag+"parent=")
		p := probeLine{Parent: strings.Split(strings.TrimSuffix(parent, "|"), "|")}
		require.True(t, p.wrapped(1), "step %s did not run through lwk-sim-mcexec -n 1: parent %q", tag, p.Parent)
	}
	require.Contains(t, out, "rc0=0\n")
	require.Contains(t, out, "rc1=3\n")
	require.Contains(t, out, "rc2=139\n", "a task killed by SIGSEGV must show as 128+11")

	rows := h.sacct(id)
	require.Equal(t, "0:0", rows[strconv.Itoa(id)+".0"].ExitCode)
	require.Equal(t, "3:0", rows[strconv.Itoa(id)+".1"].ExitCode)
	h.assertPristine(settleTimeout)
	// scripts/slurm-local runs lwk-monitor with the plugin's lwk.conf: the
	// plugin had it run the job's prolog and epilog, starting no program.
	sock, err := os.Lstat(filepath.Join(h.runDir, "hook.sock"))
	require.NoError(t, err, "lwk-monitor's hook socket")
	require.Equal(t, os.ModeSocket, sock.Mode().Type())
	h.checkHooksRanIn(id, logStart, true)
}

// lineValue returns the rest of the only output line starting with prefix.
func lineValue(t *testing.T, out, prefix string) string {
	t.Helper()
	var found []string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			found = append(found, v)
		}
	}
	require.Len(t, found, 1, "lines starting with %q in:\n%s", prefix, out)
	return found[0]
}

// holdScript is an LWK job that runs the probe, says "ready" and waits for
// "go" (so another job can run beside it).
const holdScript = "#!/bin/bash\n" + probeScript + `TAG=hold: srun -n2 /bin/sh -c "$probe"
touch ready
while [ ! -e go ]; do sleep 0.2; done
`

// linuxScript is a plain Linux job with one probe step.
const linuxScript = "#!/bin/bash\n" + probeScript + `TAG=lx: srun -n2 /bin/sh -c "$probe"
echo "rc=$?"
srun -n1 /bin/sh -c 'echo "lx:cgroup=$(cut -d: -f3 /proc/self/cgroup | tr "\n" " ")"; echo "lx:cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2)"'
`

// Scenario 2: a Linux job beside an LWK job: not wrapped, no journal, no
// marker, no state file, and it completes while the LWK job holds its OS.
func TestLinuxJobBesideLWKJob(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	lwkID := h.sbatch(dir, "hold", "--lwk-mode=mck", "-n2", "--time=5", h.writeScript(dir, "hold.sh", holdScript))
	h.waitFile(filepath.Join(dir, "ready"), "", jobTimeout)
	checkBooted(h, lwkID)
	before := h.status()

	start := time.Now()
	linID := h.sbatch(dir, "linux", "-n2", "--time=5", h.writeScript(dir, "linux.sh", linuxScript))
	f := h.waitJob(linID, jobTimeout)
	t.Logf("linux job %d: submit to end %v", linID, time.Since(start))
	out := readFile(filepath.Join(dir, "linux.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "linux.err")))
	require.Contains(t, out, "rc=0\n")
	h.checkRouted(f, false)
	probes := parseProbe(t, out, "lx:")
	require.Len(t, probes, 2, "probe lines in:\n%s", out)
	for rank, p := range probes {
		require.False(t, p.wrapped(2), "Linux rank %d ran through mcexec: %q", rank, p.Parent)
		require.Contains(t, p.Parent[0], "slurmstepd", "Linux rank %d parent %q", rank, p.Parent)
	}
	// The Linux job keeps its own CPUs (all this host has: task/affinity
	// with CpuBind=none) and is in no cgroup of the LWK job's.
	require.NotContains(t, lineValue(t, out, "lx:cgroup="), "/"+h.cgroupPrefix+"/")
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	require.NoError(t, err)
	require.Equal(t, strings.TrimSpace(string(online)), lineValue(t, out, "lx:cpus="))

	// The LWK job still runs, untouched; the Linux job left no trace.
	require.Equal(t, "RUNNING", h.jobFields(lwkID)["JobState"])
	after := h.status()
	require.Equal(t, before, after, "lwkctl status changed while the Linux job ran")
	_, ok := after.job(linID)
	require.False(t, ok, "Linux job %d has a journal", linID)
	require.NoFileExists(t, filepath.Join(h.runDir, "job-"+strconv.Itoa(linID)))
	require.Empty(t, filesNaming(t, h.stateDir, linID), "state files naming Linux job %d", linID)

	h.touch(filepath.Join(dir, "go"))
	require.Equal(t, "COMPLETED", h.waitJob(lwkID, jobTimeout)["JobState"])
	h.assertPristine(settleTimeout)
}

// filesNaming lists the files under root whose name contains the job ID as
// a whole number (journal-12.json, job-12, 12.lock, ...).
func filesNaming(t *testing.T, root string, id int) []string {
	t.Helper()
	re := regexp.MustCompile(`(^|[^0-9])` + strconv.Itoa(id) + `([^0-9]|$)`)
	var found []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable or vanished: not ours to judge
		}
		if re.MatchString(d.Name()) {
			found = append(found, path)
		}
		return nil
	})
	require.NoError(t, err)
	return found
}

// Scenario 3: bad specs are refused by sbatch (and srun, salloc) with a
// readable message, and nothing is queued.
func TestBadSpecsRejectedAtSubmit(t *testing.T) {
	h := newLWKHarness(t)
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	long := "mck:kargs=" + strings.Repeat("k", 300)
	tests := []struct {
		name string
		argv []string
		// want are substrings of stderr (besides "lwk").
		want []string
	}{
		{name: "unknown profile", argv: []string{"sbatch", "--lwk-mode=nosuchprofile", "--wrap=true"}, want: []string{"nosuchprofile"}},
		{name: "bad key", argv: []string{"sbatch", "--lwk-mode=mck:foo=1", "--wrap=true"}, want: []string{"foo", "unknown key"}},
		{name: "bad size", argv: []string{"sbatch", "--lwk-mode=mck:mem=8X", "--wrap=true"}, want: []string{"mem", "8X"}},
		{name: "karg outside allow list", argv: []string{"sbatch", "--lwk-mode=mck:kargs=not_allowed_karg", "--wrap=true"}, want: []string{"not_allowed_karg"}},
		{name: "over-long value", argv: []string{"sbatch", "--lwk-mode=" + long, "--wrap=true"}, want: []string{"too long"}},
		{name: "shell metacharacter", argv: []string{"sbatch", "--lwk-mode=mck;reboot", "--wrap=true"}, want: []string{"forbidden character"}},
		{name: "command substitution", argv: []string{"sbatch", "--lwk-mode=mck:kargs=$(id)", "--wrap=true"}, want: []string{"forbidden character"}},
		{name: "srun bad key", argv: []string{"srun", "--lwk-mode=mck:foo=1", "true"}, want: []string{"foo"}},
		{name: "salloc bad size", argv: []string{"salloc", "--lwk-mode=mck:mem=0G", "true"}, want: []string{"mem"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := h.runIn(context.Background(), true, dir, nil, tc.argv...)
			if r.err == nil {
				// Accepted: cancel it before its prolog fails and
				// drains the node for the tests after this one.
				if m := submitted.FindStringSubmatch(r.stdout); m != nil {
					h.must("scancel", m[1])
				}
				t.Fatalf("accepted a bad spec:\n%s", r)
			}
			require.NotEqual(t, -1, r.code, "%s", r)
			require.Contains(t, strings.ToLower(r.stderr), "lwk", "%s", r)
			for _, w := range tc.want {
				require.Contains(t, r.stderr, w, "%s", r)
			}
			require.Less(t, time.Since(start), 10*time.Second, "rejection must not wait for resources")
			empty, q := h.squeueEmpty()
			require.True(t, empty, "queued after a rejected submit: %s", q)
		})
	}
	h.assertPristine(settleTimeout)
}

var submitted = regexp.MustCompile(`Submitted batch job ([0-9]+)`)

// offScript runs one step through mcexec and one with --lwk-mode=off.
const offScript = "#!/bin/bash\n" + probeScript + `TAG=lwk: srun -n1 /bin/sh -c "$probe"
TAG=off: srun --lwk-mode=off -n1 /bin/sh -c "$probe"
echo "rc=$?"
`

// Scenario 4: `srun --lwk-mode=off` inside an LWK job runs on Linux.
func TestStepWithLWKModeOffRunsOnLinux(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "off", "--lwk-mode=mck", "-n1", "--time=5", h.writeScript(dir, "off.sh", offScript))
	f := h.waitJob(id, jobTimeout)
	out := readFile(filepath.Join(dir, "off.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "off.err")))
	lwk := parseProbe(t, out, "lwk:")
	off := parseProbe(t, out, "off:")
	require.Len(t, lwk, 1, "out:\n%s", out)
	require.Len(t, off, 1, "out:\n%s", out)
	require.True(t, lwk[0].wrapped(1), "default step not wrapped: %q", lwk[0].Parent)
	require.False(t, off[0].wrapped(1), "--lwk-mode=off step wrapped: %q", off[0].Parent)
	require.Contains(t, off[0].Parent[0], "slurmstepd")
	require.Contains(t, out, "rc=0\n")
	h.assertPristine(settleTimeout)
}

// sleepScript starts a long step through mcexec and says so.
const sleepScript = `#!/bin/bash
srun -n2 /bin/sh -c 'echo started; exec sleep 600'
`

// Scenario 5: scancel in the middle of a step, and a job that hits its time
// limit: the epilog cleans up, the node returns to idle (not drained), and
// no process, reservation, marker or device is left.
func TestCancelAndTimeLimitCleanUp(t *testing.T) {
	tests := []struct {
		name string
		// timeLimit is sbatch --time (minutes).
		timeLimit string
		cancel    bool
		wantState string
		wait      time.Duration
	}{
		{name: "scancel mid-step", timeLimit: "5", cancel: true, wantState: "CANCELLED", wait: jobTimeout},
		// Slurm checks limits about every 30 s: a 1-minute job ends
		// within 60-100 s.
		{name: "time limit", timeLimit: "1", wantState: "TIMEOUT", wait: 150 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newLWKHarness(t)
			h.needBinary("lwk-sim-mcexec")
			h.assertPristine(settleTimeout)
			dir := h.workdir()
			id := h.sbatch(dir, "sleep", "--lwk-mode=mck", "-n2", "--time="+tc.timeLimit, h.writeScript(dir, "sleep.sh", sleepScript))
			// Both tasks: the second mcexec may start a moment after
			// the first task has printed.
			h.waitFile(filepath.Join(dir, "sleep.out"), "started\nstarted\n", jobTimeout)
			checkBooted(h, id)
			h.checkConfined(id, 2)
			if tc.cancel {
				r := h.runIn(context.Background(), true, dir, nil, "scancel", strconv.Itoa(id))
				require.NoError(t, r.err, "%s", r)
			}
			f := h.waitJob(id, tc.wait)
			require.Equal(t, tc.wantState, f["JobState"])
			h.assertPristine(settleTimeout)
			st, _ := h.squeueEmpty()
			require.True(t, st)
		})
	}
}

// confinedScript shows, from inside, where the batch step and a task run
// through mcexec are: each prints its cgroups as its first action.
const confinedScript = `#!/bin/bash
echo "batch:cgroup=$(cut -d: -f2- /proc/self/cgroup | tr "\n" " ")"
srun -n2 /bin/sh -c 'echo "task$SLURM_PROCID:cgroup=$(cut -d: -f2- /proc/self/cgroup | tr "\n" " ")"; echo started; exec sleep 600'
`

// Scenario 5b: the Linux side of an LWK job is confined from the first
// instruction: the program inside mcexec starts in the job's proxy cgroups,
// every mcexec is there with only the proxies' CPUs, the batch step is in
// the job's batch cgroup, and Slurm still tracks them all (scancel ends
// them, and no cgroup is left).
func TestProxiesConfinedFromFirstInstruction(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "confined", "--lwk-mode=mck", "-n2", "--time=5", h.writeScript(dir, "confined.sh", confinedScript))
	h.waitFile(filepath.Join(dir, "confined.out"), "started", jobTimeout)
	var out string
	for deadline := time.Now().Add(jobTimeout); strings.Count(out, "started") < 2; time.Sleep(pollInterval) {
		require.True(t, time.Now().Before(deadline), "both tasks did not start: %q", out)
		out = readFile(filepath.Join(dir, "confined.out"))
	}
	checkBooted(h, id)
	h.checkConfined(id, 2)
	job := "/" + h.cgroupPrefix + "/job-" + strconv.Itoa(id)
	for _, tag := range []string{"task0:cgroup=", "task1:cgroup="} {
		cg := lineValue(t, out, tag)
		for _, c := range []string{"cpuset", "memory", "cpu"} {
			require.Contains(t, " "+cg, " "+c+":"+job+"/proxies ", "%s %s", tag, c)
		}
	}
	batch := lineValue(t, out, "batch:cgroup=")
	require.Contains(t, " "+batch, " cpuset:"+job+"/batch ", "the batch step's cpuset")
	rec, err := os.Stat(filepath.Join(h.runDir, "job-"+strconv.Itoa(id)+".cgroup"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), rec.Mode().Perm(), "the record is root-only")

	r := h.runIn(context.Background(), true, dir, nil, "scancel", strconv.Itoa(id))
	require.NoError(t, r.err, "%s", r)
	f := h.waitJob(id, jobTimeout)
	require.Equal(t, "CANCELLED", f["JobState"])
	h.assertPristine(settleTimeout)
}

// oomScript runs a step whose program (run through the mcexec stand-in, so
// inside the proxies' cgroup) holds far more than ProxyMemory (128M).
const oomScript = `#!/bin/bash
srun -n1 /bin/sh -c 'x=$(head -c 400000000 /dev/zero | tr "\\000" a); echo "survived ${#x}"'
echo "rc=$?"
`

// Scenario 5c: a proxy over ProxyMemory is OOM-killed, and this is what the
// user sees. The kernel SIGKILLs the biggest process in the proxies' cgroup:
// here the program under the mcexec stand-in, which reports a killed program
// as 128+signal, as a shell does: "task 0: Exited with exit code 137" from
// srun; sacct shows the step as 9:0 up to 24.11, as 137:0 on 26.05
// (slurmSeries.exitCode137). (A real mcexec killed
// itself ends its task with SIGKILL: "task 0: Killed".) The job goes on;
// the node is clean.
func TestProxyOverMemoryLimitIsKilled(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "oom", "--lwk-mode=mck", "-n1", "--time=5", h.writeScript(dir, "oom.sh", oomScript))
	f := h.waitJob(id, jobTimeout)
	out, errOut := readFile(filepath.Join(dir, "oom.out")), readFile(filepath.Join(dir, "oom.err"))
	t.Logf("job %d stdout:\n%sstderr:\n%s", id, out, errOut)
	require.Equal(t, "COMPLETED", f["JobState"], "the batch script goes on after the step")
	require.NotContains(t, out, "survived")
	require.Contains(t, out, "rc=137\n")
	require.Contains(t, errOut, "task 0: Exited with exit code 137")
	require.Equal(t, h.series().exitCode137(), h.sacct(id)[strconv.Itoa(id)+".0"].ExitCode,
		"sacct's record of a step that exited with status 137")
	h.assertPristine(settleTimeout)
}

// usr1Script runs a step whose program waits for SIGUSR1 and exits 0 on it.
const usr1Script = `#!/bin/bash
srun -n1 /bin/sh -c 'trap "echo got-USR1; exit 0" USR1; echo ready; while :; do sleep 0.2; done'
echo "rc=$?"
`

// Scenario 6: `scancel --signal=USR1` reaches the program inside the mcexec
// stand-in (and the stand-in survives it).
func TestSignalReachesProgramInsideMcexec(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "usr1", "--lwk-mode=mck", "-n1", "--time=5", h.writeScript(dir, "usr1.sh", usr1Script))
	h.waitFile(filepath.Join(dir, "usr1.out"), "ready", jobTimeout)
	checkBooted(h, id)
	h.checkConfined(id, 1)
	r := h.runIn(context.Background(), true, dir, nil, "scancel", "--signal=USR1", strconv.Itoa(id))
	require.NoError(t, r.err, "%s", r)
	f := h.waitJob(id, jobTimeout)
	out := readFile(filepath.Join(dir, "usr1.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "usr1.err")))
	require.Contains(t, out, "got-USR1\n")
	require.Contains(t, out, "rc=0\n")
	h.assertPristine(settleTimeout)
}

// Scenario 7: an injected boot failure in the prolog: the job is requeued
// and held, the node drained with a reason starting with "lwk:" that names
// the step, the node holds nothing; after resume a new job runs normally.
func TestPrologFailureDrainsNodeAndHoldsJob(t *testing.T) {
	h := newLWKHarness(t)
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	logStart := h.lwkLogSize()
	h.setFaults("fault boot")
	// Whatever happens below, leave the node usable for the next test.
	t.Cleanup(func() {
		if st := h.nodeFields()["State"]; strings.Contains(st, "DRAIN") {
			h.run(context.Background(), false, "scontrol", "update", "nodename="+h.node, "state=resume")
		}
	})
	id := h.sbatch(dir, "fail", "--lwk-mode=mck", "-n1", "--time=5", h.writeScript(dir, "fail.sh", "#!/bin/bash\necho ran\n"))
	f := h.waitJobFor(id, jobTimeout, "requeued and held", func(f map[string]string) bool {
		return f["JobState"] == "PENDING" && strings.Contains(f["Reason"], "held")
	})
	require.Equal(t, "launch_failed_requeued_held", f["Reason"])
	require.NotEqual(t, "0", f["Restarts"])
	require.NotContains(t, readFile(filepath.Join(dir, "fail.out")), "ran", "the batch script ran despite the failed prolog")

	n := h.nodeFields()
	require.Contains(t, n["State"], "DRAIN", "node %v", n)
	require.Regexp(t, `^lwk: `, n["Reason"])
	require.Contains(t, n["Reason"], "boot", "the reason must name the failed step")
	// The node service declines while faults are armed (they act on a
	// process of their own): the plugin ran the programs.
	failed := h.hookDone("prolog done", id, logStart)
	require.NotEmpty(t, failed, "no \"prolog done\" line for job %d", id)
	for _, l := range failed {
		require.NotEqual(t, true, l["resident"], "the failing prolog ran in the node service: %v", l)
	}

	// The failed prolog rolled back: nothing reserved, booted or journaled.
	h.clearFaults()
	s := h.status()
	require.True(t, s.pristine(), "after a failed prolog: %+v", s)
	require.Empty(t, h.leftovers())

	h.must("scancel", strconv.Itoa(id))
	h.waitJob(id, jobTimeout)
	h.resumeNode()
	h.waitNodeIdle(settleTimeout)

	h.needBinary("lwk-sim-mcexec")
	id2 := h.sbatch(dir, "after", "--lwk-mode=mck", "-n1", "--time=5", h.writeScript(dir, "after.sh", offScript))
	f = h.waitJob(id2, jobTimeout)
	out := readFile(filepath.Join(dir, "after.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "after.err")))
	p := parseProbe(t, out, "lwk:")
	require.Len(t, p, 1, "out:\n%s", out)
	require.True(t, p[0].wrapped(1), "parent %q", p[0].Parent)
	h.assertPristine(settleTimeout)
}

// quickScript is a short LWK job: one probe step.
const quickScript = "#!/bin/bash\n" + probeScript + `TAG=q: srun -n1 /bin/sh -c "$probe"
echo "rc=$?"
`

// Scenario 8: ten LWK jobs back to back (each takes the whole node, so they
// run one after the other): all complete through mcexec and lwkctl status
// does not drift.
func TestTenLWKJobsBackToBackNoDrift(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	before := h.status()
	dir := h.workdir()
	script := h.writeScript(dir, "quick.sh", quickScript)
	const n = 10
	ids := make([]int, n)
	for i := range ids {
		ids[i] = h.sbatch(dir, "quick"+strconv.Itoa(i), "--lwk-mode=mck", "--exclusive", "--time=5", script)
	}
	deadline := time.Now().Add(6 * time.Minute)
	for i, id := range ids {
		f := h.waitJob(id, time.Until(deadline))
		out := readFile(filepath.Join(dir, "quick"+strconv.Itoa(i)+".out"))
		require.Equal(t, "COMPLETED", f["JobState"], "job %d\nout: %s\nerr: %s", id, out, readFile(filepath.Join(dir, "quick"+strconv.Itoa(i)+".err")))
		p := parseProbe(t, out, "q:")
		require.Len(t, p, 1, "job %d out:\n%s", id, out)
		require.True(t, p[0].wrapped(1), "job %d parent %q", id, p[0].Parent)
		require.Contains(t, out, "rc=0\n")
	}
	h.assertPristine(settleTimeout)
	require.Equal(t, before, h.status(), "lwkctl status drifted over %d jobs", n)
}

// A request the node cannot satisfy (more LWK memory than the job has on the
// node) is found only by the prolog; the job is cancelled with the reason in
// its AdminComment, and the node stays in service instead of draining.
func TestUnsatisfiableRequestCancelsJobNotNode(t *testing.T) {
	h := newLWKHarness(t)
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "toobig", "--lwk-mode=mck:mem=64G", "-n1", "--mem=1G", "--time=5",
		h.writeScript(dir, "toobig.sh", "#!/bin/bash\necho ran\n"))
	f := h.waitJob(id, jobTimeout)
	require.Equal(t, "CANCELLED", f["JobState"], "job %v", f)
	// The comment holds "mem=..." words, which a Key=Value split would cut.
	show := h.must("scontrol", "show", "job", strconv.Itoa(id))
	require.Regexp(t, `AdminComment=lwk: plan job \d+: mem=64 GiB: more than the job's memory on this node`, show)
	require.NotContains(t, readFile(filepath.Join(dir, "toobig.out")), "ran", "the batch script ran")

	n := h.nodeFields()
	require.NotContains(t, n["State"], "DRAIN", "a user's request drained the node: %v", n)
	h.assertPristine(settleTimeout)
}

// A job name with a line break could forge a line of `scontrol show job -d`,
// from which lwk-prolog reads the allocation; job_submit.lua refuses it at
// submit instead of letting the prolog fail and drain the node.
func TestLineBreakInJobNameRefusedAtSubmit(t *testing.T) {
	h := newLWKHarness(t)
	dir := h.workdir()
	script := h.writeScript(dir, "forge.sh", "#!/bin/bash\necho ran\n")
	r := h.runIn(context.Background(), true, dir, nil, "sbatch", "--lwk-mode=mck", "-n1",
		"-J", "x\n     Nodes=vm CPU_IDs=0-15 Mem=1 GRES=", script)
	require.Error(t, r.err, "sbatch accepted a forged job name: %s", r)
	require.Contains(t, r.stderr, "line break in their name")
	empty, q := h.squeueEmpty()
	require.True(t, empty, "queued: %s", q)
}
