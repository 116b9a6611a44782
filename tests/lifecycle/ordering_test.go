package lifecycle

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
)

// startPrologHeld starts the prolog of a job and returns once it waits in
// its Slurm calls, before the node lock; release lets it go on.
func (n *node) startPrologHeld(jobID int, extra ...string) (wait func() (string, error), release func()) {
	n.t.Helper()
	gate := filepath.Join(n.dir, "hold-show-job")
	require.NoError(n.t, os.WriteFile(gate, nil, 0o644))
	cmd := exec.Command(filepath.Join(binDir, "lwk-prolog"))
	cmd.Env = n.jobEnv(jobID, extra...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(n.t, cmd.Start())
	n.t.Cleanup(func() { _ = os.Remove(gate); _ = cmd.Process.Kill() })
	want := fmt.Sprintf("show job -d %d", jobID)
	require.Eventually(n.t, func() bool {
		return slices.ContainsFunc(n.slurmCalls("scontrol"), func(c string) bool { return strings.Contains(c, want) })
	}, 10*time.Second, 10*time.Millisecond, "the prolog never asked for the job")
	return func() (string, error) {
			err := cmd.Wait()
			return stderr.String(), err
		}, func() {
			require.NoError(n.t, os.Remove(gate))
		}
}

// The epilog of a job runs while its prolog has not yet taken the node
// lock (slurmd does not wait for the prolog, e.g. when the job is cancelled
// meanwhile). The prolog must then boot nothing: no epilog would ever tear
// its LWK down.
func TestEpilogBeforePrologTakesTheLock(t *testing.T) {
	n := newNode(t)
	wait, release := n.startPrologHeld(51)
	_, stderr, err := n.run("lwk-epilog", 51, nil)
	require.NoError(t, err, stderr)
	release()
	stderr, err = wait()
	require.NoError(t, err, "a prolog after its job's epilog is not a node fault: %s", stderr)
	require.Contains(t, stderr, "epilog already ran")
	n.requirePristine("after a prolog that came after its epilog")
	require.Empty(t, n.slurmCalls("scancel"), "the job is over; nothing to cancel")
}

// The record is per attempt: a requeued job's next attempt boots.
func TestRequeuedAttemptBootsAfterEarlierEpilog(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-epilog", 52, []string{"SLURM_JOB_RESTART_COUNT=0"})
	require.NoError(t, err, stderr)
	_, stderr, err = n.run("lwk-prolog", 52, []string{"SLURM_JOB_RESTART_COUNT=1"})
	require.NoError(t, err, stderr)
	st := n.status()
	require.Len(t, st.OSInstances, 1, "the second attempt's LWK")
	require.Equal(t, "RUNNING", st.OSInstances[0].Status)
	_, stderr, err = n.run("lwk-epilog", 52, []string{"SLURM_JOB_RESTART_COUNT=1"})
	require.NoError(t, err, stderr)
	n.requirePristine("after the second attempt's epilog")
}

// An LWK whose job's epilog already ran (booted by a version without the
// check) is collected by the next epilog of any job, and by lwkctl cleanup
// --ended.
func TestLeftoverOfEndedJobIsCollected(t *testing.T) {
	for _, how := range []string{"next epilog", "lwkctl cleanup --ended"} {
		t.Run(how, func(t *testing.T) {
			n := newNode(t)
			_, stderr, err := n.run("lwk-prolog", 61, nil)
			require.NoError(t, err, stderr)
			require.Len(t, n.status().OSInstances, 1)
			// What job 61's epilog leaves when it runs before the prolog.
			require.NoError(t, jobend.Open(jobend.Dir(filepath.Join(n.dir, "state"))).Record(jobend.Key{JobID: 61}))

			if how == "next epilog" {
				_, stderr, err = n.run("lwk-epilog", 62, nil)
				require.NoError(t, err, stderr)
				require.Contains(t, stderr, "collected the leftovers of jobs [61]")
			} else {
				out, stderr, err := n.run("lwkctl", 0, nil, "cleanup", "--ended")
				require.NoError(t, err, stderr)
				require.Contains(t, out, "jobs [61] cleaned up")
				out, stderr, err = n.run("lwkctl", 0, nil, "cleanup", "--ended")
				require.NoError(t, err, stderr)
				require.Contains(t, out, "no job whose epilog already ran")
			}
			n.requirePristine("after collecting job 61")
		})
	}
}

// A driver whose build id is not mcexec's fails the prolog before BOOT,
// with a drain reason naming both ids, and leaves nothing behind.
func TestBuildIDMismatchFailsTheProlog(t *testing.T) {
	n := newNode(t)
	conf, err := os.ReadFile(n.conf)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(n.conf, append(conf, "McexecBuildID=3114d9e7\n"...), 0o644))
	_, stderr, err := n.run("lwk-prolog", 71, nil)
	require.Error(t, err, "the node is misconfigured: the prolog fails")
	require.Contains(t, stderr, `ihk build id "slurm-lwk-sim"`)
	require.Contains(t, stderr, `differs from mcexec's "3114d9e7"`)
	drains := slices.ContainsFunc(n.slurmCalls("scontrol"), func(c string) bool {
		return strings.Contains(c, "State=DRAIN") && strings.Contains(c, "3114d9e7")
	})
	require.True(t, drains, "the drain reason names the ids: %v", n.slurmCalls("scontrol"))
	n.requirePristine("after a build id mismatch")
}
