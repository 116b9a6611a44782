//go:build cluster

package cluster

import (
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

const (
	nobodyUID = 65534
	nobodyGID = 65534

	cmdTimeout   = 30 * time.Second
	pollInterval = 200 * time.Millisecond
	// jobTimeout bounds a short three-node LWK job from submit to end.
	jobTimeout = 90 * time.Second
	// settleTimeout bounds the wait for the nodes to come back idle and
	// pristine after a job.
	settleTimeout = 60 * time.Second
)

// hosts are the cluster's node hosts (scripts/slurm-cluster).
var hosts = []string{"lwkn1", "lwkn2", "lwkn3"}

// cluster is the per-test view of the three-node Slurm.
type cluster struct {
	t      *testing.T
	repo   string
	binDir string
	script string
	// dir is the cluster's directory: etc/slurm.conf, hosts/<host>/...
	dir      string
	slurmCfg string
	// procsBefore are nobody's processes when the test started.
	procsBefore map[int]uint64
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the cluster tests need root (jobs as nobody, nsenter, node resume, fault files)")
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	c := &cluster{
		t:      t,
		repo:   repo,
		binDir: envOr("LWK_E2E_BINDIR", filepath.Join(repo, "bin")),
		script: envOr("LWK_CLUSTER_SCRIPT", filepath.Join(repo, "scripts", "slurm-cluster")),
		dir:    envOr("SLURM_CLUSTER_DIR", "/var/lib/slurm-cluster"),
	}
	c.slurmCfg = filepath.Join(c.dir, "etc", "slurm.conf")
	r := c.run(false, "", "scontrol", "ping")
	require.NoError(t, r.err, "the cluster's slurmctld is not reachable; run `make test-cluster` (or scripts/slurm-cluster up)\n%s", r)
	nodes := strings.Fields(c.must("sinfo", "-h", "-N", "-p", "lwk", "-o", "%N"))
	require.ElementsMatch(t, hosts, nodes, "the LWK partition's nodes")
	for _, b := range []string{"lwkctl", "lwk-sim-mcexec"} {
		_, err := os.Stat(filepath.Join(c.binDir, b))
		require.NoError(t, err, "%s missing: make build", b)
	}
	c.procsBefore = procscan.OfUser(procfs.Default(), nobodyUID)
	return c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type result struct {
	argv           []string
	stdout, stderr string
	code           int
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("$ %s\nexit %d (err %v)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.argv, " "), r.code, r.err, r.stdout, r.stderr)
}

// run runs argv (never through a shell) as root or nobody with the
// cluster's SLURM_CONF, bounded by cmdTimeout.
func (c *cluster) run(asNobody bool, dir string, argv ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C.UTF-8", "SLURM_CONF=" + c.slurmCfg}
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
func (c *cluster) must(argv ...string) string {
	c.t.Helper()
	r := c.run(false, "", argv...)
	require.NoError(c.t, r.err, "%s", r)
	return r.stdout
}

// inHost runs argv as root inside a host's namespaces ("lwkctld": the
// controller's).
func (c *cluster) inHost(host string, argv ...string) string {
	c.t.Helper()
	return c.must(append([]string{c.script, "exec", host}, argv...)...)
}

func (c *cluster) hostDir(host string) string { return filepath.Join(c.dir, "hosts", host) }

// workdir is a fresh directory owned by nobody, removed after the test.
func (c *cluster) workdir() string {
	c.t.Helper()
	dir, err := os.MkdirTemp("", "lwk-cluster-")
	require.NoError(c.t, err)
	c.t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(c.t, os.Chmod(dir, 0o755))
	require.NoError(c.t, os.Chown(dir, nobodyUID, nobodyGID))
	return dir
}

func (c *cluster) writeScript(dir, name, body string) string {
	c.t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(c.t, os.WriteFile(path, []byte(body), 0o755))
	require.NoError(c.t, os.Chown(path, nobodyUID, nobodyGID))
	return path
}

// sbatch submits a job as nobody from dir (output dir/<name>.out and .err)
// and returns its ID; the job is cancelled after the test if still there.
func (c *cluster) sbatch(dir, name string, args ...string) int {
	c.t.Helper()
	argv := append([]string{"sbatch", "--parsable", "-J", name, "-D", dir,
		"-o", filepath.Join(dir, name+".out"), "-e", filepath.Join(dir, name+".err")}, args...)
	r := c.run(true, dir, argv...)
	require.NoError(c.t, r.err, "%s", r)
	idText, _, _ := strings.Cut(strings.TrimSpace(r.stdout), ";")
	id, err := strconv.Atoi(idText)
	require.NoError(c.t, err, "sbatch --parsable printed %q", r.stdout)
	c.t.Logf("submitted job %d (%s)", id, name)
	c.t.Cleanup(func() {
		for _, f := range c.jobComponents(id) {
			if !slurmtest.Terminal(f["JobState"]) {
				c.t.Logf("cleanup: cancelling job %d (%s)", id, f["JobState"])
				c.run(false, "", "scancel", strconv.Itoa(id))
				return
			}
		}
	})
	return id
}

// jobComponents returns `scontrol show job -o ID`, one map per line (one
// line per component of a heterogeneous job); nil when the job is unknown.
func (c *cluster) jobComponents(id int) []map[string]string {
	r := c.run(false, "", "scontrol", "show", "job", "-o", strconv.Itoa(id))
	if r.err != nil {
		return nil
	}
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.TrimSpace(line) != "" {
			out = append(out, slurmtest.ParseFields(line))
		}
	}
	return out
}

func (c *cluster) jobFields(id int) map[string]string {
	comps := c.jobComponents(id)
	if len(comps) == 0 {
		return map[string]string{}
	}
	return comps[0]
}

func (c *cluster) nodeFields(node string) map[string]string {
	c.t.Helper()
	return slurmtest.ParseFields(c.must("scontrol", "show", "node", "-o", node))
}

// waitJobFor polls the job (all its components) until cond holds for them.
func (c *cluster) waitJobFor(id int, timeout time.Duration, what string, cond func([]map[string]string) bool) []map[string]string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		comps := c.jobComponents(id)
		if len(comps) > 0 && cond(comps) {
			return comps
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("job %d: not %s after %v; last: %v", id, what, timeout, comps)
		}
		time.Sleep(pollInterval)
	}
}

// waitJob waits until every component of the job is in a final state.
func (c *cluster) waitJob(id int, timeout time.Duration) []map[string]string {
	c.t.Helper()
	start := time.Now()
	comps := c.waitJobFor(id, timeout, "in a final state", func(comps []map[string]string) bool {
		for _, f := range comps {
			if !slurmtest.Terminal(f["JobState"]) {
				return false
			}
		}
		return true
	})
	c.t.Logf("job %d: %s (exit %s) after %v", id, comps[0]["JobState"], comps[0]["ExitCode"], time.Since(start).Round(time.Millisecond))
	return comps
}

func (c *cluster) waitFile(path, substr string, count int, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.Count(string(data), substr) >= count {
			return string(data)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not %d times %q after %v (read: %q, err %v)", path, count, substr, timeout, data, err)
		}
		time.Sleep(pollInterval)
	}
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func (c *cluster) touch(path string) {
	c.t.Helper()
	require.NoError(c.t, os.WriteFile(path, nil, 0o644))
}

// --- the hosts' slurm-lwk state ---------------------------------------

type osInstance struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	CPUs   string `json:"cpus"`
}

type jobEntry struct {
	JobID int `json:"job_id"`
	OS    int `json:"os"`
}

// lwkStatus is `lwkctl status --json` (the fields the tests read).
type lwkStatus struct {
	Backend        string            `json:"backend"`
	ReservedCPUs   string            `json:"reserved_cpus"`
	ReservedMemory []json.RawMessage `json:"reserved_memory"`
	OSInstances    []osInstance      `json:"os_instances"`
	Jobs           []jobEntry        `json:"jobs"`
	Cgroups        []json.RawMessage `json:"cgroups"`
}

func (s lwkStatus) pristine() bool {
	return s.ReservedCPUs == "" && len(s.ReservedMemory) == 0 && len(s.OSInstances) == 0 && len(s.Jobs) == 0 &&
		len(s.Cgroups) == 0
}

// status runs `lwkctl status --json` on the host, with its own lwk.conf.
func (c *cluster) status(host string) lwkStatus {
	c.t.Helper()
	out := c.inHost(host, "env", "LWK_CONF=/etc/slurm/lwk.conf", filepath.Join(c.binDir, "lwkctl"), "status", "--json")
	var s lwkStatus
	require.NoError(c.t, json.Unmarshal([]byte(out), &s), "%s: lwkctl status --json: %s", host, out)
	require.Equal(c.t, "sim", s.Backend, host)
	return s
}

// requireBooted asserts that the host runs exactly one LWK, for the job.
func (c *cluster) requireBooted(host string, id int) {
	c.t.Helper()
	s := c.status(host)
	require.Len(c.t, s.Jobs, 1, "%s: journal %+v", host, s.Jobs)
	require.Equal(c.t, id, s.Jobs[0].JobID, "%s: journal", host)
	require.Len(c.t, s.OSInstances, 1, "%s: one LWK per node", host)
	require.Equal(c.t, s.Jobs[0].OS, s.OSInstances[0].Index, host)
	require.Equal(c.t, "RUNNING", s.OSInstances[0].Status, host)
	_, err := os.Stat(filepath.Join(c.hostDir(host), "run", "slurm-lwk", "job-"+strconv.Itoa(id)))
	require.NoError(c.t, err, "%s: marker of job %d", host, id)
}

// bootedLog reports whether the host kept the kernel log of an LWK booted
// for the job (written when the LWK is torn down).
func (c *cluster) bootedLog(host string, id int) bool {
	m, _ := filepath.Glob(filepath.Join(c.hostDir(host), "log", "lwk", "job-"+strconv.Itoa(id)+"-os*.kmsg"))
	return len(m) > 0
}

// leftovers lists what a finished job must not leave on the host: job
// markers in its /run, simulated OS devices, proxy cgroups under its prefix.
func (c *cluster) leftovers(host string) []string {
	var out []string
	d := c.hostDir(host)
	markers, _ := filepath.Glob(filepath.Join(d, "run", "slurm-lwk", "job-*"))
	for _, m := range markers {
		out = append(out, host+": marker "+m)
	}
	devs, _ := filepath.Glob(filepath.Join(d, "lwk", "sim", "dev", "mcos*"))
	for _, dev := range devs {
		out = append(out, host+": device "+dev)
	}
	for _, ctl := range []string{"cpuset", "memory", "cpu"} {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctl, "slurm-lwk-"+host, "job-*"))
		for _, dir := range dirs {
			out = append(out, host+": cgroup "+dir)
		}
	}
	return out
}

// mcexecCount counts the running mcexec stand-ins (of every host).
func (c *cluster) mcexecCount() int {
	mcexec, _ := filepath.EvalSymlinks(filepath.Join(c.binDir, "lwk-sim-mcexec"))
	n := 0
	for _, exe := range procscan.Exes(procfs.Default()) {
		if exe == mcexec {
			n++
		}
	}
	return n
}

// processLeftovers lists mcexec stand-ins and new processes of nobody.
func (c *cluster) processLeftovers() []string {
	var out []string
	mcexec, _ := filepath.EvalSymlinks(filepath.Join(c.binDir, "lwk-sim-mcexec"))
	for pid, exe := range procscan.Exes(procfs.Default()) {
		if exe == mcexec {
			out = append(out, fmt.Sprintf("process %d runs %s", pid, exe))
		}
	}
	for pid, st := range procscan.OfUser(procfs.Default(), nobodyUID) {
		if c.procsBefore[pid] != st {
			out = append(out, fmt.Sprintf("process %d of nobody: %s", pid, procscan.Cmdline(procfs.Default(), pid)))
		}
	}
	return out
}

// assertPristine waits until every host is IDLE (not drained), lwkctl
// reports nothing reserved, booted or journaled, and nothing is left over.
func (c *cluster) assertPristine(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		for _, h := range hosts {
			if st := c.nodeFields(h)["State"]; st != "IDLE" {
				bad = append(bad, h+": State="+st)
				continue
			}
			if s := c.status(h); !s.pristine() {
				bad = append(bad, fmt.Sprintf("%s: lwkctl status %+v", h, s))
			}
			bad = append(bad, c.leftovers(h)...)
		}
		bad = append(bad, c.processLeftovers()...)
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not pristine after %v:\n  %s", timeout, strings.Join(bad, "\n  "))
		}
		time.Sleep(pollInterval)
	}
}

// setFaults writes the simulator's fault file of one host, removed after
// the test.
func (c *cluster) setFaults(host string, lines ...string) {
	c.t.Helper()
	path := filepath.Join(c.hostDir(host), "lwk", "sim", "faults")
	require.NoError(c.t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	c.t.Cleanup(func() { os.Remove(path) })
}

// --- /proc --------------------------------------------------------------

// --- task probe ---------------------------------------------------------

// probeScript defines $probe in a job script: a task that prints its rank,
// the host it runs on (UTS name and Slurm's node name) and its parent's argv
// (NUL bytes as "|"), on one line starting with "$TAG" and "task ".
const probeScript = `probe='printf "%stask rank=%s host=%s node=%s parent=%s\n" "${TAG:-}" "$SLURM_PROCID" "$(hostname)" "$SLURMD_NODENAME" "$(tr "\000" "|" </proc/$PPID/cmdline)"'
`

type probeLine struct {
	Rank   int
	Host   string
	Node   string
	Parent []string
}

// wrapped reports whether the task ran through the mcexec stand-in with
// `-n tasks` (the tasks of the step on this node).
func (p probeLine) wrapped(tasks int) bool {
	return len(p.Parent) >= 4 && filepath.Base(p.Parent[0]) == "lwk-sim-mcexec" &&
		p.Parent[1] == "-n" && p.Parent[2] == strconv.Itoa(tasks)
}

// parseProbe returns the probe lines starting with prefix + "task ", by rank.
func parseProbe(t *testing.T, out, prefix string) map[int]probeLine {
	t.Helper()
	lines := map[int]probeLine{}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `task rank=(\d+) host=(\S*) node=(\S*) parent=(.*)$`)
	for _, line := range strings.Split(out, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r, err := strconv.Atoi(m[1])
		require.NoError(t, err, "probe line %q", line)
		lines[r] = probeLine{Rank: r, Host: m[2], Node: m[3], Parent: strings.Split(strings.TrimSuffix(m[4], "|"), "|")}
	}
	return lines
}
