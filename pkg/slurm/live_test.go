package slurm

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLiveSlurm runs ShowJob and SetAdminComment through ExecRunner against
// a real Slurm (the lab of scripts/slurm-local). It submits a short job, so
// it is opt-in: LWK_TEST_SLURM=1, with LWK_TEST_SLURM_NODE naming the node
// (default "vm"). DrainNode is not run live: it would take the shared node
// away from everyone else's tests.
func TestLiveSlurm(t *testing.T) {
	if os.Getenv("LWK_TEST_SLURM") != "1" {
		t.Skip("submits a job to the local Slurm; set LWK_TEST_SLURM=1 to run")
	}
	const bin = "/usr/bin/"
	node := os.Getenv("LWK_TEST_SLURM_NODE")
	if node == "" {
		node = "vm"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := ExecRunner{Env: append([]string{"SLURM_CONF=/etc/slurm/slurm.conf"}, DefaultEnv...)}

	_, err := r.Run(ctx, []string{bin + "scontrol", "ping"})
	require.NoError(t, err, "slurmctld must be up")

	out, err := r.Run(ctx, []string{bin + "sbatch", "--parsable", "-n2", "--mem=256", "--chdir=/tmp",
		"-o", "/dev/null", "-J", "lwk-slurm-live-test", "--wrap", "sleep 120"})
	require.NoError(t, err)
	idStr, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	id64, err := strconv.ParseUint(idStr, 10, 32)
	require.NoError(t, err, "sbatch said %q", out)
	jobID := uint32(id64)
	t.Cleanup(func() {
		_, _ = ExecRunner{}.Run(context.Background(), []string{bin + "scancel", idStr})
	})

	var alloc JobAllocation
	require.Eventually(t, func() bool {
		alloc, err = ShowJob(ctx, r, bin+"scontrol", jobID, node)
		return err == nil
	}, 30*time.Second, 250*time.Millisecond, "job %d never got an allocation: %v", jobID, err)
	require.Equal(t, jobID, alloc.JobID)
	require.Equal(t, node, alloc.Node)
	require.Equal(t, 2, alloc.CPUIDs.Size(), "-n2 with one CPU per task: %s", alloc.CPUIDs)
	require.EqualValues(t, 256, alloc.MemoryMB)

	comment := `lwk1:{"os":0,"cpus":"` + alloc.CPUIDs.String() + `"}`
	require.NoError(t, SetAdminComment(ctx, r, bin+"scontrol", jobID, comment))
	out, err = r.Run(ctx, []string{bin + "scontrol", "show", "job", idStr})
	require.NoError(t, err)
	require.Contains(t, string(out), "AdminComment="+comment)

	_, err = ShowJob(ctx, r, bin+"scontrol", 4294967294, node)
	var ce *CommandError
	require.ErrorAs(t, err, &ce)
	require.Contains(t, ce.Stderr, "Invalid job id specified")
}
