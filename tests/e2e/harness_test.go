//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/procscan"
	"github.com/slurm-lwk/slurm-lwk/internal/slurmtest"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// Users the jobs run as. nobody/nogroup exist on every Debian system and own
// nothing, so anything left behind by a job is easy to see.
const (
	nobodyUID = 65534
	nobodyGID = 65534
)

// Bounds. The whole suite must stay under 10 minutes (go test -timeout 10m).
const (
	// cmdTimeout bounds one Slurm command or lwkctl run.
	cmdTimeout = 30 * time.Second
	// pollInterval is how often state is polled.
	pollInterval = 200 * time.Millisecond
	// jobTimeout bounds a short LWK job from submit to end (simulated
	// boot of 1-2 s, prolog, steps, epilog).
	jobTimeout = 60 * time.Second
	// settleTimeout bounds the wait for the node to come back to idle and
	// pristine after a job (epilog, COMPLETING).
	settleTimeout = 45 * time.Second
)

// harness is the per-test view of the local Slurm and the slurm-lwk node.
type harness struct {
	t        *testing.T
	repo     string
	binDir   string
	confPath string
	node     string
	// From lwk.conf (or the documented defaults).
	runDir      string
	stateDir    string
	simStateDir string
	devDir      string
	logDir      string
	// procsBefore are the processes of user nobody that existed when the
	// test started (PID -> start time), so that only new ones count as
	// leftovers.
	procsBefore map[int]uint64
	// cgroupPrefix is lwk.conf's CgroupPrefix: the proxies' cgroups are
	// <v1 hierarchy>/<prefix>/job-<id>.
	cgroupPrefix string
}

// newHarness checks the preconditions every scenario shares and returns the
// harness. It fails (not skips) when Slurm or slurm-lwk is not set up: with
// the e2e tag the caller asked for these tests.
func newHarness(t *testing.T) *harness {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("LWK_E2E_FORCE") == "" {
		t.Skip("e2e tests need root (jobs as nobody, node resume, simulator fault file); set LWK_E2E_FORCE=1 to run anyway")
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	h := &harness{
		t:        t,
		repo:     repo,
		binDir:   envOr("LWK_E2E_BINDIR", filepath.Join(repo, "bin")),
		confPath: envOr("LWK_E2E_CONF", "/etc/slurm/lwk.conf"),
	}
	h.node = os.Getenv("LWK_E2E_NODE")
	if h.node == "" {
		host, err := os.Hostname()
		require.NoError(t, err)
		h.node, _, _ = strings.Cut(host, ".")
	}
	r := h.run(context.Background(), false, "scontrol", "ping")
	require.NoError(t, r.err, "slurmctld is not reachable; run `scripts/slurm-local up` first\n%s", r)
	h.procsBefore = procscan.OfUser(procfs.Default(), nobodyUID)
	return h
}

// newLWKHarness is newHarness plus the slurm-lwk pieces: the plugin in
// plugstack.conf, lwkctl and a simulated backend. Scenarios that run LWK
// tasks also call needBinary("lwk-sim-mcexec").
func newLWKHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	plugstack := h.slurmConfig("PlugStackConfig")
	data, err := os.ReadFile(plugstack)
	require.NoError(t, err, "read plugstack.conf")
	require.Regexp(t, regexp.MustCompile(`(?m)^\s*(required|optional)\s+\S*spank_lwk\.so\b`), string(data),
		"%s does not load spank_lwk.so; run `SLURM_LWK_PLUGIN=... scripts/slurm-local up`", plugstack)
	h.needBinary("lwkctl")
	conf := readConfKeys(t, h.confPath)
	require.Equal(t, "sim", conf["IHKBackend"], "%s: the e2e tests inject faults and need IHKBackend=sim", h.confPath)
	h.runDir = mapOr(conf, "RunDir", "/run/slurm-lwk")
	h.stateDir = mapOr(conf, "StateDir", "/var/lib/slurm-lwk")
	h.simStateDir = mapOr(conf, "SimStateDir", "/var/lib/slurm-lwk/sim")
	h.devDir = mapOr(conf, "DevDir", filepath.Join(h.simStateDir, "dev"))
	h.cgroupPrefix = mapOr(conf, "CgroupPrefix", "slurm-lwk")
	h.logDir = mapOr(conf, "LogDir", "/var/log/slurm-lwk")
	return h
}

// lwkLogSize is the size of LogDir/slurm-lwk.log now (0 if absent), for
// hookDone: the log outlives clusters, whose job IDs start again at 1.
func (h *harness) lwkLogSize() int {
	fi, err := os.Stat(filepath.Join(h.logDir, "slurm-lwk.log"))
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

// hookDone returns the "prolog done" or "epilog done" log lines (msg) of a
// job from LogDir/slurm-lwk.log past byte since, decoded.
func (h *harness) hookDone(msg string, id, since int) []map[string]any {
	h.t.Helper()
	data, err := os.ReadFile(filepath.Join(h.logDir, "slurm-lwk.log"))
	require.NoError(h.t, err)
	if since > len(data) {
		since = len(data)
	}
	var out []map[string]any
	for _, line := range strings.Split(string(data[since:]), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg && m["job"] == float64(id) {
			out = append(out, m)
		}
	}
	return out
}

// checkHooksRanIn checks that the job's prolog and epilog (logged past
// byte since) ran in the node service (lwk-monitor, on RunDir/hook.sock)
// when resident, else as programs (the plugin's fallback).
func (h *harness) checkHooksRanIn(id, since int, resident bool) {
	h.t.Helper()
	for _, msg := range []string{"prolog done", "epilog done"} {
		var lines []map[string]any
		require.Eventually(h.t, func() bool {
			lines = h.hookDone(msg, id, since)
			return len(lines) > 0
		}, settleTimeout, pollInterval, "no %q line for job %d in %s/slurm-lwk.log", msg, id, h.logDir)
		for _, l := range lines {
			require.Equal(h.t, resident, l["resident"] == true, "job %d: %v", id, l)
		}
	}
}

// needBinary fails the test when BINDIR/name is not an executable file.
func (h *harness) needBinary(name string) {
	h.t.Helper()
	st, err := os.Stat(filepath.Join(h.binDir, name))
	require.NoError(h.t, err, "%s missing: build the binaries (make) or set LWK_E2E_BINDIR", name)
	require.NotZero(h.t, st.Mode()&0o111, "%s is not executable", name)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func mapOr(m map[string]string, key, def string) string {
	if v := m[key]; v != "" {
		return v
	}
	return def
}

// readConfKeys returns the single-valued Key=Value settings of lwk.conf
// (first word of each line). It is not a parser of the format; it only finds
// the paths and the backend the tests look at.
func readConfKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err, "open lwk.conf")
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.Fields(line)[0], "=")
		if ok {
			keys[k] = v
		}
	}
	require.NoError(t, sc.Err())
	return keys
}

// result is one finished command.
type result struct {
	argv   []string
	stdout string
	stderr string
	code   int
	err    error
}

func (r result) String() string {
	return fmt.Sprintf("$ %s\nexit %d (err %v)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.argv, " "), r.code, r.err, r.stdout, r.stderr)
}

// run runs argv (never through a shell) as root or as nobody, bounded by
// cmdTimeout. A non-zero exit is reported in result.err, not as a failure.
func (h *harness) run(ctx context.Context, asNobody bool, argv ...string) result {
	return h.runIn(ctx, asNobody, "", nil, argv...)
}

func (h *harness) runIn(ctx context.Context, asNobody bool, dir string, extraEnv []string, argv ...string) result {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	// An explicit, small environment: sbatch exports the submitter's
	// environment into the job.
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C.UTF-8"}, extraEnv...)
	if asNobody {
		cmd.Env = append(cmd.Env, "HOME="+cmd.Dir, "USER=nobody", "LOGNAME=nobody")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{}}}
	} else {
		cmd.Env = append(cmd.Env, "HOME=/root", "USER=root")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{argv: argv, stdout: stdout.String(), stderr: stderr.String(), err: err}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		r.code = -1
	}
	return r
}

// must runs argv as root and fails the test on a non-zero exit.
func (h *harness) must(argv ...string) string {
	h.t.Helper()
	r := h.run(context.Background(), false, argv...)
	require.NoError(h.t, r.err, "%s", r)
	return r.stdout
}

// slurmConfig returns one value of `scontrol show config`.
func (h *harness) slurmConfig(key string) string {
	h.t.Helper()
	out := h.must("scontrol", "show", "config")
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	h.t.Fatalf("scontrol show config: no %s", key)
	return ""
}

// jobLog returns what Slurm knows of a job, for a failure message:
// `scontrol show job -d` and the slurmctld and slurmd log lines naming it.
func (h *harness) jobLog(id int) string {
	h.t.Helper()
	var b strings.Builder
	r := h.run(context.Background(), false, "scontrol", "show", "job", "-d", strconv.Itoa(id))
	b.WriteString(r.stdout)
	for _, key := range []string{"SlurmctldLogFile", "SlurmdLogFile"} {
		fmt.Fprintf(&b, "--- %s (lines naming job %d)\n%s", key, id, h.logLines(key, id, 0))
	}
	return b.String()
}

// logSize returns the current size of a Slurm daemon's log (a `scontrol
// show config` key such as SlurmctldLogFile), for logLines.
func (h *harness) logSize(key string) int {
	h.t.Helper()
	return len(readFile(h.slurmConfig(key)))
}

// logLines returns the lines of a Slurm daemon's log written after its
// first since bytes that name the job: a job ID an earlier run used does
// not match.
func (h *harness) logLines(key string, id, since int) string {
	h.t.Helper()
	word := regexp.MustCompile(`\b` + strconv.Itoa(id) + `\b`)
	var b strings.Builder
	text := readFile(h.slurmConfig(key))
	if since > len(text) {
		since = 0 // rotated
	}
	for _, line := range strings.Split(text[since:], "\n") {
		if word.MatchString(line) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// workdir returns a fresh directory owned by nobody, removed at the end of
// the test. Jobs run there and write their output there.
func (h *harness) workdir() string {
	h.t.Helper()
	dir, err := os.MkdirTemp("", "lwk-e2e-")
	require.NoError(h.t, err)
	h.t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(h.t, os.Chmod(dir, 0o755))
	require.NoError(h.t, os.Chown(dir, nobodyUID, nobodyGID))
	return dir
}

// writeScript writes a job script (fixed text from the test) into dir.
func (h *harness) writeScript(dir, name, body string) string {
	h.t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(h.t, os.WriteFile(path, []byte(body), 0o755))
	require.NoError(h.t, os.Chown(path, nobodyUID, nobodyGID))
	return path
}

// sbatch submits a batch job as nobody from dir, output to dir/<name>.out
// and dir/<name>.err, and returns the job ID. The job is cancelled at the
// end of the test if it is still around.
func (h *harness) sbatch(dir, name string, args ...string) int {
	h.t.Helper()
	argv := append([]string{"sbatch", "--parsable", "-J", name, "-D", dir,
		"-o", filepath.Join(dir, name+".out"), "-e", filepath.Join(dir, name+".err")}, args...)
	r := h.runIn(context.Background(), true, dir, nil, argv...)
	require.NoError(h.t, r.err, "%s", r)
	idText, _, _ := strings.Cut(strings.TrimSpace(r.stdout), ";")
	id, err := strconv.Atoi(idText)
	require.NoError(h.t, err, "sbatch --parsable printed %q", r.stdout)
	h.t.Logf("submitted job %d (%s)", id, name)
	h.t.Cleanup(func() {
		if st := h.jobFields(id)["JobState"]; st != "" && !slurmtest.Terminal(st) {
			h.t.Logf("cleanup: cancelling job %d (%s)", id, st)
			h.run(context.Background(), false, "scancel", strconv.Itoa(id))
		}
	})
	return id
}

// jobFields returns `scontrol show job -o ID` as a map; empty when the job
// is unknown.
func (h *harness) jobFields(id int) map[string]string {
	r := h.run(context.Background(), false, "scontrol", "show", "job", "-o", strconv.Itoa(id))
	if r.err != nil {
		return map[string]string{}
	}
	return slurmtest.ParseFields(r.stdout)
}

// nodeFields returns `scontrol show node -o NODE` as a map.
func (h *harness) nodeFields() map[string]string {
	h.t.Helper()
	return slurmtest.ParseFields(h.must("scontrol", "show", "node", "-o", h.node))
}

// waitJob waits until the job reaches a final state and returns its fields.
func (h *harness) waitJob(id int, timeout time.Duration) map[string]string {
	h.t.Helper()
	start := time.Now()
	f := h.waitJobFor(id, timeout, "a final state", func(f map[string]string) bool { return slurmtest.Terminal(f["JobState"]) })
	h.t.Logf("job %d: %s (exit %s) after %v", id, f["JobState"], f["ExitCode"], time.Since(start).Round(time.Millisecond))
	return f
}

// waitJobFor polls the job until cond holds.
func (h *harness) waitJobFor(id int, timeout time.Duration, what string, cond func(map[string]string) bool) map[string]string {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var f map[string]string
	for {
		f = h.jobFields(id)
		if len(f) > 0 && cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d: not in %s after %v; last: JobState=%s Reason=%s", id, what, timeout, f["JobState"], f["Reason"])
		}
		time.Sleep(pollInterval)
	}
}

// sacctRow is one line of sacct for a job or step.
type sacctRow struct {
	State    string
	ExitCode string
}

// sacct returns the job's accounting rows by JobID ("12", "12.batch", "12.0"),
// waiting until the job itself is recorded in a final state.
func (h *harness) sacct(id int) map[string]sacctRow {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := h.must("sacct", "-n", "-P", "-j", strconv.Itoa(id), "-o", "JobID,State,ExitCode")
		rows := map[string]sacctRow{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Split(line, "|")
			if len(f) != 3 {
				continue
			}
			// "CANCELLED by 0" -> "CANCELLED"
			st, _, _ := strings.Cut(f[1], " ")
			rows[f[0]] = sacctRow{State: st, ExitCode: f[2]}
		}
		if row, ok := rows[strconv.Itoa(id)]; ok && slurmtest.Terminal(row.State) {
			return rows
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("sacct: job %d not recorded in a final state after 30s:\n%s", id, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// squeueEmpty reports whether user nobody has no job queued or running.
func (h *harness) squeueEmpty() (bool, string) {
	out := h.must("squeue", "-h", "-u", "nobody", "-o", "%i %T %r")
	return strings.TrimSpace(out) == "", out
}

// waitFile waits until the file exists and contains substr, and returns it.
func (h *harness) waitFile(path, substr string, timeout time.Duration) string {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), substr) {
			return string(data)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: no %q after %v (read: %q, err %v)", path, substr, timeout, data, err)
		}
		time.Sleep(pollInterval)
	}
}

// readFile returns a job output file ("" when missing).
func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// touch creates a flag file the job script waits for.
func (h *harness) touch(path string) {
	h.t.Helper()
	require.NoError(h.t, os.WriteFile(path, nil, 0o644))
}

// lwkPartition is the partition job_submit.lua.example routes LWK jobs to.
const lwkPartition = "lwk"

// checkRouted asserts, when slurmctld runs job_submit/lua (the local
// cluster installs job_submit.lua.example), that LWK jobs landed in the LWK
// partition and Linux jobs did not.
func (h *harness) checkRouted(job map[string]string, lwk bool) {
	h.t.Helper()
	if !strings.Contains(h.slurmConfig("JobSubmitPlugins"), "lua") {
		return
	}
	if lwk {
		require.Equal(h.t, lwkPartition, job["Partition"], "LWK job not routed by job_submit.lua")
	} else {
		require.NotEqual(h.t, lwkPartition, job["Partition"], "Linux job in the LWK partition")
	}
}

// --- node state ---------------------------------------------------------

// waitNodeIdle waits until the node is exactly IDLE: not drained, not
// completing, no job.
func (h *harness) waitNodeIdle(timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := h.nodeFields()
		if f["State"] == "IDLE" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("node %s: State=%s Reason=%q after %v, want IDLE", h.node, f["State"], f["Reason"], timeout)
		}
		time.Sleep(pollInterval)
	}
}

// resumeNode undrains the node.
func (h *harness) resumeNode() {
	h.t.Helper()
	h.must("scontrol", "update", "nodename="+h.node, "state=resume")
}

// memChunk is one reserved_memory or OS memory entry of lwkctl status.
type memChunk struct {
	NUMANode int    `json:"numa_node"`
	Bytes    uint64 `json:"bytes"`
}

// osInstance is one os_instances entry of lwkctl status.
type osInstance struct {
	Index  int        `json:"index"`
	Status string     `json:"status"`
	CPUs   string     `json:"cpus"`
	Memory []memChunk `json:"memory"`
}

// jobEntry is one jobs entry of lwkctl status.
type jobEntry struct {
	JobID int    `json:"job_id"`
	Step  string `json:"step"`
	State string `json:"state"`
	OS    int    `json:"os"`
}

// lwkStatus is `lwkctl status --json` (contract in notes/common.md).
type lwkStatus struct {
	Backend        string       `json:"backend"`
	ReservedCPUs   string       `json:"reserved_cpus"`
	ReservedMemory []memChunk   `json:"reserved_memory"`
	OSInstances    []osInstance `json:"os_instances"`
	Jobs           []jobEntry   `json:"jobs"`
	Cgroups        []struct {
		JobID   int    `json:"job_id"`
		Problem string `json:"problem"`
	} `json:"cgroups"`
}

// pristine reports whether nothing is reserved, booted, journaled or
// confined.
func (s lwkStatus) pristine() bool {
	return s.ReservedCPUs == "" && len(s.ReservedMemory) == 0 && len(s.OSInstances) == 0 && len(s.Jobs) == 0 &&
		len(s.Cgroups) == 0
}

// job returns the journal entry of a job.
func (s lwkStatus) job(id int) (jobEntry, bool) {
	for _, j := range s.Jobs {
		if j.JobID == id {
			return j, true
		}
	}
	return jobEntry{}, false
}

// status runs `lwkctl status --json` as root.
func (h *harness) status() lwkStatus {
	h.t.Helper()
	r := h.runIn(context.Background(), false, "", []string{"LWK_CONF=" + h.confPath},
		filepath.Join(h.binDir, "lwkctl"), "status", "--json")
	require.NoError(h.t, r.err, "%s", r)
	var s lwkStatus
	require.NoError(h.t, json.Unmarshal([]byte(r.stdout), &s), "lwkctl status --json: %s", r.stdout)
	require.Equal(h.t, "sim", s.Backend)
	return s
}

// leftovers lists what a finished job must not leave behind: stand-in
// mcexec processes, new processes of nobody, job marker files and
// simulated OS device files.
func (h *harness) leftovers() []string {
	var out []string
	mcexec, _ := filepath.EvalSymlinks(filepath.Join(h.binDir, "lwk-sim-mcexec"))
	for pid, exe := range procscan.Exes(procfs.Default()) {
		if exe == mcexec {
			out = append(out, fmt.Sprintf("process %d runs %s", pid, exe))
		}
	}
	for pid, st := range procscan.OfUser(procfs.Default(), nobodyUID) {
		if h.procsBefore[pid] != st {
			out = append(out, fmt.Sprintf("process %d of nobody: %s", pid, procscan.Cmdline(procfs.Default(), pid)))
		}
	}
	for _, c := range []string{"cpuset", "memory", "cpu"} {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", c, h.cgroupPrefix, "job-*"))
		for _, d := range dirs {
			out = append(out, "cgroup "+d)
		}
	}
	markers, _ := filepath.Glob(filepath.Join(h.runDir, "job-*"))
	for _, m := range markers {
		out = append(out, "marker "+m)
	}
	devs, _ := filepath.Glob(filepath.Join(h.devDir, "mcos*"))
	for _, d := range devs {
		out = append(out, "device "+d)
	}
	// The IHK control device stays root's alone between jobs.
	mcd := filepath.Join(h.devDir, "mcd0")
	if st, err := os.Stat(mcd); err == nil {
		sys, ok := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm()&0o077 != 0 || (ok && sys.Uid != 0) {
			out = append(out, fmt.Sprintf("device %s mode %v uid %d", mcd, st.Mode().Perm(), sys.Uid))
		}
	}
	return out
}

// assertPristine waits until the node is idle and not drained, lwkctl
// reports nothing reserved, booted or journaled, and nothing is left over.
func (h *harness) assertPristine(timeout time.Duration) {
	h.t.Helper()
	h.waitNodeIdle(timeout)
	deadline := time.Now().Add(timeout)
	for {
		s := h.status()
		left := h.leftovers()
		if s.pristine() && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("node not pristine after %v:\nlwkctl status: %+v\nleft over: %s", timeout, s, strings.Join(left, "\n  "))
		}
		time.Sleep(pollInterval)
	}
}

// setFaults writes the simulator's fault file (root-only) for processes
// started by slurmd, and removes it at the end of the test.
func (h *harness) setFaults(lines ...string) {
	h.t.Helper()
	path := filepath.Join(h.simStateDir, "faults")
	require.NoError(h.t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	h.t.Cleanup(func() { os.Remove(path) })
}

// clearFaults removes the fault file.
func (h *harness) clearFaults() {
	h.t.Helper()
	err := os.Remove(filepath.Join(h.simStateDir, "faults"))
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(h.t, err)
	}
}

// --- /proc --------------------------------------------------------------

// procCgroups maps a process's cgroup v1 controllers (and "" for v2) to its
// cgroup path, from /proc/PID/cgroup.
func procCgroups(t *testing.T, pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	require.NoError(t, err)
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 {
			for _, c := range strings.Split(f[1], ",") {
				m[c] = f[2]
			}
		}
	}
	return m
}

// procStatus returns one field of /proc/PID/status.
func procStatus(t *testing.T, pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// checkConfined asserts that the job has at least min mcexec stand-ins and
// that every one of them (and every thread, since a cgroup v1 move takes
// the whole thread group) is in the job's proxy cgroups, still in Slurm's
// freezer cgroup (tracking), and allowed only the proxies' CPUs.
func (h *harness) checkConfined(id, min int) {
	h.t.Helper()
	mcexec, _ := filepath.EvalSymlinks(filepath.Join(h.binDir, "lwk-sim-mcexec"))
	want := "/" + h.cgroupPrefix + "/job-" + strconv.Itoa(id) + "/proxies"
	cpusFile, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuset", want, "cpuset.cpus"))
	require.NoError(h.t, err, "job %d: proxy cpuset", id)
	proxyCPUs := strings.TrimSpace(string(cpusFile))
	n := 0
	for pid, exe := range procscan.Exes(procfs.Default()) {
		if exe != mcexec {
			continue
		}
		n++
		cg := procCgroups(h.t, pid)
		for _, c := range []string{"cpuset", "memory", "cpu"} {
			require.Equal(h.t, want, cg[c], "mcexec %d of job %d: %s cgroup", pid, id, c)
		}
		if f, ok := cg["freezer"]; ok {
			require.Contains(h.t, f, "/job_"+strconv.Itoa(id)+"/step_", "mcexec %d: Slurm's freezer cgroup (tracking) kept", pid)
		}
		require.Equal(h.t, proxyCPUs, procStatus(h.t, pid, "Cpus_allowed_list"), "mcexec %d of job %d", pid, id)
		h.t.Logf("mcexec %d of job %d: cpuset %s memory %s cpu %s freezer %s, Cpus_allowed_list %s",
			pid, id, cg["cpuset"], cg["memory"], cg["cpu"], cg["freezer"], proxyCPUs)
	}
	require.GreaterOrEqual(h.t, n, min, "job %d: mcexec stand-ins running", id)
}

// --- task probe ---------------------------------------------------------

// probeLine is what the probe (see probeScript) prints for one task.
type probeLine struct {
	Rank int
	// CPUs is the task's Cpus_allowed_list.
	CPUs string
	// Parent is the argv of the task's parent process: the mcexec
	// stand-in for a wrapped task, slurmstepd for a Linux task.
	Parent []string
}

// wrapped reports whether the task ran through the mcexec stand-in with
// `-n <tasks>`.
func (p probeLine) wrapped(tasks int) bool {
	return len(p.Parent) >= 4 && filepath.Base(p.Parent[0]) == "lwk-sim-mcexec" &&
		p.Parent[1] == "-n" && p.Parent[2] == strconv.Itoa(tasks)
}

// probeScript defines $probe in a job script: a task that prints its rank,
// its CPUs and its parent's argv (NUL bytes shown as "|") on one line
// starting with "$TAG" and "task " (TAG set in the step's environment tells
// the steps apart).
const probeScript = `probe='printf "%stask rank=%s cpus=%s parent=%s\n" "${TAG:-}" "$SLURM_PROCID" "$(sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" /proc/self/status)" "$(tr "\000" "|" </proc/$PPID/cmdline)"'
`

// parseProbe returns the probe lines of a job output whose line starts with
// prefix + "task ", by rank.
func parseProbe(t *testing.T, out, prefix string) map[int]probeLine {
	t.Helper()
	lines := map[int]probeLine{}
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, prefix+"task rank=")
		if !ok {
			continue
		}
		rank, rest, _ := strings.Cut(rest, " cpus=")
		cpus, parent, _ := strings.Cut(rest, " parent=")
		r, err := strconv.Atoi(rank)
		require.NoError(t, err, "probe line %q", line)
		lines[r] = probeLine{Rank: r, CPUs: cpus, Parent: strings.Split(strings.TrimSuffix(parent, "|"), "|")}
	}
	return lines
}
