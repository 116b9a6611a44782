//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/slurmtest"
)

// These scenarios come after e2e_test.go's (go test runs files in name
// order): guards against an LWK job running where it must not, or a user's
// job draining the node (issue 9 items 3, 11, 12, 13).

// One LWK job per node: two LWK jobs that would both fit the node's CPUs
// run one after the other (the lwk GRES job_submit.lua adds), never at once,
// and the node is never drained.
func TestTwoLWKJobsRunOneAfterTheOther(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	first := h.sbatch(dir, "hold", "--lwk-mode=mck", "-n2", "--time=5", h.writeScript(dir, "hold.sh", holdScript))
	h.waitFile(filepath.Join(dir, "ready"), "", jobTimeout)
	second := h.sbatch(dir, "quick", "--lwk-mode=mck", "-n2", "--time=5", h.writeScript(dir, "quick.sh", quickScript))

	// The second waits for the node's one lwk GRES; slurmctld's scheduler
	// runs every second or so: give it a few passes.
	h.waitJobFor(second, jobTimeout, "pending on resources", func(f map[string]string) bool {
		return f["JobState"] == "PENDING" && f["Reason"] == "Resources"
	})
	time.Sleep(3 * time.Second)
	f := h.jobFields(second)
	require.Equal(t, "PENDING", f["JobState"], "second LWK job started beside the first: %v", f)
	require.Contains(t, f["TresPerNode"], h.series().gres("lwk", 1))
	require.NotContains(t, h.nodeFields()["State"], "DRAIN")

	h.touch(filepath.Join(dir, "go"))
	require.Equal(t, "COMPLETED", h.waitJob(first, jobTimeout)["JobState"])
	f = h.waitJob(second, jobTimeout)
	out := readFile(filepath.Join(dir, "quick.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "quick.err")))
	p := parseProbe(t, out, "q:")
	require.Len(t, p, 1, "out:\n%s", out)
	require.True(t, p[0].wrapped(1), "parent %q", p[0].Parent)
	require.NotContains(t, h.nodeFields()["State"], "DRAIN")
	h.assertPristine(settleTimeout)
}

// A line break put into an LWK job's comment after submit (scontrol update,
// which job_submit.lua's slurm_job_modify now filters) is refused, and the
// job runs normally.
func TestLineBreakInCommentRefusedAfterSubmit(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "held", "--lwk-mode=mck", "-n1", "--time=5", "--hold", h.writeScript(dir, "held.sh", quickScript))
	for _, field := range []string{"Comment", "JobName"} {
		r := h.runIn(context.Background(), true, dir, nil, "scontrol", "update", "JobId="+strconv.Itoa(id),
			field+"=x\n     Nodes="+h.node+" CPU_IDs=0-15 Mem=1 GRES=")
		require.Error(t, r.err, "%s with a line break accepted: %s", field, r)
	}
	h.must("scontrol", "release", strconv.Itoa(id))
	f := h.waitJob(id, jobTimeout)
	out := readFile(filepath.Join(dir, "held.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "held.err")))
	p := parseProbe(t, out, "q:")
	require.Len(t, p, 1, "out:\n%s", out)
	require.True(t, p[0].wrapped(1), "parent %q", p[0].Parent)
	require.NotContains(t, h.nodeFields()["State"], "DRAIN")
	h.assertPristine(settleTimeout)
}

// sbatch -n4 --lwk-mode=mck:cores=1: one core's two CPUs cannot run four
// `mcexec -n 4` tasks. The prolog cancels the job with the reason instead of
// letting every task fail and the job report COMPLETED.
func TestMoreTasksThanLWKCPUsCancelled(t *testing.T) {
	h := newLWKHarness(t)
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "many", "--lwk-mode=mck:cores=1,mem=1G", "-n4", "--time=5",
		h.writeScript(dir, "many.sh", "#!/bin/bash\necho ran\nsrun true\n"))
	f := h.waitJob(id, jobTimeout)
	require.Equal(t, "CANCELLED", f["JobState"], "job %v", f)
	show := h.must("scontrol", "show", "job", strconv.Itoa(id))
	require.Contains(t, show, "AdminComment=lwk: plan job "+strconv.Itoa(id)+": 4 tasks on this node (4 tasks on 1 nodes) but the LWK has 2 CPUs")
	require.NotContains(t, h.nodeFields()["State"], "DRAIN")
	h.assertPristine(settleTimeout)
}

// `srun --lwk-mode=mck` inside a job submitted without it has no LWK to run
// on: the step fails saying why, instead of running on Linux.
func TestLWKStepInLinuxJobFails(t *testing.T) {
	h := newLWKHarness(t)
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "lxstep", "-n1", "--time=5", h.writeScript(dir, "lxstep.sh",
		"#!/bin/bash\nsrun --lwk-mode=mck -n1 /bin/echo ran-on-linux\necho rc=$?\n"))
	f := h.waitJob(id, jobTimeout)
	out := readFile(filepath.Join(dir, "lxstep.out"))
	errText := readFile(filepath.Join(dir, "lxstep.err"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, errText)
	require.NotContains(t, out, "ran-on-linux")
	require.NotContains(t, out, "rc=0\n")
	require.Contains(t, out+errText, "lwk: job "+strconv.Itoa(id)+" asked for an LWK (--lwk-mode=mck), but none was booted for it on this node")
	require.NotContains(t, h.nodeFields()["State"], "DRAIN")
	h.assertPristine(settleTimeout)
}

// restartScript tags each start of the job: a probe step, then it waits.
const restartScript = "#!/bin/bash\n" + probeScript + `A=${SLURM_RESTART_COUNT:-0}
echo "start=$A"
TAG=a$A: srun -n1 /bin/sh -c "$probe"
echo "rc$A=$?"
exec sleep 300
`

// Issue 9 item 13, the quick-restart recipe on Slurm 22.05: a requeued LWK
// job restarted at once (`scontrol requeue`, then `scontrol update
// StartTime=now`) sometimes starts its batch step with no prolog run for the
// new attempt (slurmd's credential cache still holds the job). Whatever
// happens, no attempt's step may run on Linux: either the prolog ran and the
// step goes through mcexec, or the batch script fails saying why, or slurmd
// refuses to launch the attempt (the requeue revoked the job's credential and
// slurmd still remembers it; seen on 24.11) and the job fails before any of
// it runs.
func TestQuickRestartNeverRunsOnLinux(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	logStart := h.logSize("SlurmctldLogFile")
	id := h.sbatch(dir, "restart", "--lwk-mode=mck", "-n1", "--time=5", "--open-mode=append",
		h.writeScript(dir, "restart.sh", restartScript))
	ids := strconv.Itoa(id)
	const tries = 4
	caught := 0
	for attempt := 0; attempt <= tries; attempt++ {
		// Wait for this attempt's step to have run, or the job to fail.
		deadline := time.Now().Add(jobTimeout)
		var out string
		for {
			out = readFile(filepath.Join(dir, "restart.out"))
			st := h.jobFields(id)["JobState"]
			if strings.Contains(out, fmt.Sprintf("rc%d=", attempt)) || slurmtest.Terminal(st) {
				break
			}
			require.False(t, time.Now().After(deadline), "attempt %d: no step after %v; state %s\nout: %s", attempt, jobTimeout, st, out)
			time.Sleep(pollInterval)
		}
		errText := readFile(filepath.Join(dir, "restart.err"))
		for a := 0; a <= attempt; a++ {
			for rank, p := range parseProbe(t, out, fmt.Sprintf("a%d:", a)) {
				require.True(t, p.wrapped(1), "attempt %d rank %d ran on Linux: parent %q\nout: %s\nerr: %s", a, rank, p.Parent, out, errText)
			}
		}
		if slurmtest.Terminal(h.jobFields(id)["JobState"]) {
			require.NotContains(t, out, fmt.Sprintf("start=%d", attempt), "attempt %d's batch script ran\nout: %s\nerr: %s", attempt, out, errText)
			if strings.Contains(errText, "lwk: job "+ids) {
				// The plugin refused the batch script: no LWK for this attempt.
				caught++
				t.Logf("attempt %d started without its prolog and was refused: %s", attempt, strings.TrimSpace(errText))
				break
			}
			// Or slurmd refused the launch itself ("already killed, do not
			// launch batch job"): the job fails, none of the attempt runs.
			ctld := h.logLines("SlurmctldLogFile", id, logStart)
			require.Contains(t, ctld, "Killing non-startable batch JobId="+ids,
				"the job ended without saying why\nout: %s\nerr: %s\n%s", out, errText, h.jobLog(id))
			t.Logf("attempt %d was not launched by Slurm: %s", attempt, lastLine(ctld, "non-startable"))
			break
		}
		if attempt == tries {
			break
		}
		h.must("scontrol", "requeue", ids)
		// slurmctld sets the requeued job's begin time (now + 120 s) when
		// the job has finished completing, which may be after an update:
		// repeat StartTime=now until the job is no longer waiting for it.
		h.waitJobFor(id, jobTimeout, "pending after the requeue", func(f map[string]string) bool {
			return f["JobState"] == "PENDING"
		})
		deadline = time.Now().Add(30 * time.Second)
		for {
			h.run(context.Background(), false, "scontrol", "update", "JobId="+ids, "StartTime=now")
			f := h.jobFields(id)
			if f["JobState"] != "PENDING" || (f["Reason"] != "BeginTime" && f["Reason"] != "None") {
				break
			}
			require.False(t, time.Now().After(deadline), "requeued job %d still waits for its begin time: %v", id, f)
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d of up to %d quick restarts started without a prolog", caught, tries)
	if st := h.jobFields(id)["JobState"]; !slurmtest.Terminal(st) {
		h.must("scancel", ids)
		h.waitJob(id, jobTimeout)
	}
	require.NotContains(t, h.nodeFields()["State"], "DRAIN")
	h.assertPristine(settleTimeout)
}

// lastLine returns the last line of text that contains substr.
func lastLine(text, substr string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return lines[i]
		}
	}
	return ""
}
