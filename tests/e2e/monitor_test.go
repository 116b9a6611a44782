//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
)

// Scenarios of issue 11 (lwk-monitor). scripts/slurm-local runs lwk-monitor
// on 127.0.0.1:9417, sampling every second, and the EpilogSlurmctld that
// stores each LWK job's usage record in SystemComment.

const monitorURL = "http://127.0.0.1:9417"

// spinScript burns about a second of user CPU on the LWK (through the
// mcexec stand-in; a shell loop without forks), then waits for "go".
const spinScript = `#!/bin/bash
srun -n1 /bin/sh -c 'i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done'
echo "rc=$?"
touch spun
while [ ! -e go ]; do sleep 0.2; done
`

// longStepScript runs one long step on the LWK and says when it started.
const longStepScript = `#!/bin/bash
touch started
srun -n1 /bin/sh -c 'i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done'
echo "rc=$?"
`

func (h *harness) needMonitor() {
	h.t.Helper()
	h.needBinary("lwk-monitor")
	resp, err := http.Get(monitorURL + "/v1/status")
	require.NoError(h.t, err, "lwk-monitor is not serving on %s; run scripts/slurm-local up with bin/lwk-monitor built", monitorURL)
	resp.Body.Close()
}

// promtoolCheck scrapes the monitor and runs `promtool check metrics`.
func (h *harness) promtoolCheck() string {
	h.t.Helper()
	resp, err := http.Get(monitorURL + "/metrics")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	promtool, err := exec.LookPath("promtool")
	require.NoError(h.t, err, "promtool (Debian package prometheus) is needed; scripts/slurm-local deps installs it")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.CombinedOutput()
	require.NoError(h.t, err, "promtool check metrics: %s", out)
	require.Empty(h.t, strings.TrimSpace(string(out)), "promtool check metrics")
	return string(body)
}

// TestMonitorAccountsLWKUsage: while an LWK job runs the metrics endpoint
// passes promtool and shows the instance; after it, sacct's SystemComment
// holds the record and lwkctl stats decodes it with LWK CPU time.
func TestMonitorAccountsLWKUsage(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.needMonitor()
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	script := h.writeScript(dir, "spin.sh", spinScript)
	id := h.sbatch(dir, "spin", "--lwk-mode=mck", "-n1", "--time=5", script)
	h.waitFile(filepath.Join(dir, "spun"), "", jobTimeout)
	inst := checkBooted(h, id)

	// Let the monitor take a sample after the spinning step.
	time.Sleep(1500 * time.Millisecond)
	metrics := h.promtoolCheck()
	require.Contains(t, metrics, `lwk_instance_status{os="`+strconv.Itoa(inst.Index)+`",status="RUNNING"} 1`)
	require.Contains(t, metrics, `lwk_instance_job_id{os="`+strconv.Itoa(inst.Index)+`"} `+strconv.Itoa(id))
	require.Contains(t, metrics, "lwk_cpu_seconds_total{")

	h.touch(filepath.Join(dir, "go"))
	f := h.waitJob(id, jobTimeout)
	require.Equal(t, "COMPLETED", f["JobState"], "err: %s", readFile(filepath.Join(dir, "spin.err")))

	var field string
	deadline := time.Now().Add(45 * time.Second)
	for {
		field = strings.TrimSpace(h.must("sacct", "-n", "-X", "-j", strconv.Itoa(id), "-o", "SystemComment%2000"))
		if strings.HasPrefix(field, accounting.Prefix) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.True(t, strings.HasPrefix(field, accounting.Prefix), "sacct SystemComment of job %d: %q", id, field)
	t.Logf("job %d SystemComment: %d bytes", id, len(field))

	r := h.runIn(context.Background(), false, "", nil, filepath.Join(h.binDir, "lwkctl"), "stats", strconv.Itoa(id), "--json")
	require.NoError(t, r.err, "%s", r)
	var rec accounting.JobRecord
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rec), r.stdout)
	require.Equal(t, uint32(id), rec.JobID)
	require.Equal(t, 1, rec.Nodes)
	require.Equal(t, 1, rec.Reported)
	require.Zero(t, rec.Partial, "the epilog's final reading was used")
	require.Greater(t, rec.UserSeconds, 0.2, "a CPU-bound step ran on the LWK")
	require.Positive(t, rec.Samples)
	r = h.runIn(context.Background(), false, "", nil, filepath.Join(h.binDir, "lwkctl"), "stats", strconv.Itoa(id))
	require.NoError(t, r.err, "%s", r)
	t.Logf("lwkctl stats %d:\n%s", id, r.stdout)
	h.assertPristine(settleTimeout)
}

// lwkStatusOf returns the status lwkctl reports for the job's instance.
func (h *harness) lwkStatusOf(id int) string {
	s := h.status()
	j, ok := s.job(id)
	if !ok {
		return ""
	}
	for _, o := range s.OSInstances {
		if o.Index == j.OS {
			return o.Status
		}
	}
	return ""
}

func (h *harness) waitLWKStatus(id int, want string) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := h.lwkStatusOf(id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d: LWK status %q, want %q", id, got, want)
		}
		time.Sleep(pollInterval)
	}
}

// TestMonitorSuspendFreezesLWK: scontrol suspend stops the job's proxies;
// the monitor freezes the LWK; scontrol resume thaws it.
func TestMonitorSuspendFreezesLWK(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.needMonitor()
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	script := h.writeScript(dir, "long.sh", longStepScript)
	id := h.sbatch(dir, "long", "--lwk-mode=mck", "-n1", "--time=5", script)
	h.waitFile(filepath.Join(dir, "started"), "", jobTimeout)
	h.waitJobFor(id, jobTimeout, "a running step", func(map[string]string) bool {
		out := h.must("squeue", "-h", "-s", "-j", strconv.Itoa(id), "-o", "%i")
		return strings.Contains(out, strconv.Itoa(id)+".0")
	})
	time.Sleep(time.Second) // the step's mcexec stand-in holds the device
	h.waitLWKStatus(id, "RUNNING")

	h.must("scontrol", "suspend", strconv.Itoa(id))
	h.waitLWKStatus(id, "FROZEN")
	h.must("scontrol", "resume", strconv.Itoa(id))
	h.waitLWKStatus(id, "RUNNING")

	h.must("scancel", strconv.Itoa(id))
	h.waitJob(id, jobTimeout)
	h.assertPristine(settleTimeout)
}

// TestMonitorPanicFailsJobAndDrainsNode: a (simulated) LWK panic mid-job
// ends the job with the reason, which its user sees in scontrol, sacct and
// the step's stderr (appended to the job's AdminComment, keeping what a
// site put there), and drains the node with a reason starting "lwk:".
func TestMonitorPanicFailsJobAndDrainsNode(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	h.needMonitor()
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	script := h.writeScript(dir, "panic.sh", longStepScript)
	id := h.sbatch(dir, "panic", "--lwk-mode=mck", "-n1", "--time=5", script)
	h.waitFile(filepath.Join(dir, "started"), "", jobTimeout)
	time.Sleep(time.Second) // the step runs
	inst := checkBooted(h, id)

	cfg, err := config.Load(h.confPath)
	require.NoError(t, err)
	node, err := lwknode.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	require.NoError(t, err)
	inj, ok := node.IHK.(interface {
		InjectPanic(ctx context.Context, os int) error
	})
	require.True(t, ok, "the simulated backend injects panics")
	t.Cleanup(func() {
		if strings.Contains(h.nodeFields()["State"], "DRAIN") {
			h.resumeNode()
		}
	})
	// A site's note in the job's AdminComment (lwk.conf
	// FailureReasonField's default) stays: the reason is appended.
	h.must("scontrol", "update", "JobId="+strconv.Itoa(id), "AdminComment=site-note")
	require.NoError(t, inj.InjectPanic(context.Background(), inst.Index))

	f := h.waitJob(id, jobTimeout)
	require.Equal(t, "CANCELLED", f["JobState"])
	require.True(t, strings.HasPrefix(f["AdminComment"], "site-note; lwk: LWK kernel panic"), "scontrol show job %d: AdminComment=%s", id, f["AdminComment"])
	n := h.nodeFields()
	require.Contains(t, n["State"], "DRAIN")
	require.True(t, strings.HasPrefix(n["Reason"], "lwk: LWK kernel panic"), "drain reason %q", n["Reason"])
	require.Contains(t, readFile(filepath.Join(dir, "panic.err")), "lwk: LWK kernel panic", "the step's stderr")
	deadline := time.Now().Add(30 * time.Second)
	var comment string
	for time.Now().Before(deadline) {
		comment = h.must("sacct", "-n", "-X", "-j", strconv.Itoa(id), "-o", "AdminComment%400")
		if strings.Contains(comment, "lwk:") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.Contains(t, comment, "site-note; lwk: LWK kernel panic", "sacct AdminComment")

	h.resumeNode()
	h.assertPristine(settleTimeout)
}
