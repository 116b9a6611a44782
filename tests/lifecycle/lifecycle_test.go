package lifecycle

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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/devholders"
	"github.com/slurm-lwk/slurm-lwk/pkg/devperm"
	"github.com/slurm-lwk/slurm-lwk/pkg/hookserver"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodelock"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodestatus"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

var binDir string

var nodeSeq atomic.Int64

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lwk-lifecycle-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// Tests run the mcexec stand-in as an unprivileged user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/",
		"github.com/slurm-lwk/slurm-lwk/cmd/lwk-prolog",
		"github.com/slurm-lwk/slurm-lwk/cmd/lwk-epilog",
		"github.com/slurm-lwk/slurm-lwk/cmd/lwkctl",
		"github.com/slurm-lwk/slurm-lwk/cmd/lwk-sim-mcexec",
		"github.com/slurm-lwk/slurm-lwk/cmd/lwk-monitor")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one simulated node: its lwk.conf and directories.
type node struct {
	t    *testing.T
	dir  string
	conf string
}

// fakeScontrol logs its arguments; for `show node -o node1` it prints the
// paper node's layout, for `show job -d <id>` Slurm 22.05's output for a job
// holding abstract CPUs 0-15 and 10 GiB on node1. While the file
// hold-show-job exists, `show job` waits (a prolog held before the lock).
const fakeScontrol = `#!/bin/sh
echo "$*" >> "${0%/*}/scontrol.log"
[ "$1" = show ] || exit 0
if [ "$2" = node ]; then
	if [ -f "${0%/*}/node.txt" ]; then cat "${0%/*}/node.txt"; exit 0; fi
	echo "NodeName=node1 Arch=x86_64 CoresPerSocket=4 CPUAlloc=0 CPUTot=16 Sockets=2 Boards=1 State=IDLE ThreadsPerCore=2"
	exit 0
fi
while [ -f "${0%/*}/hold-show-job" ]; do sleep 0.02; done
cat <<EOF
JobId=$4 JobName=lifecycle
   UserId=nobody(65534) GroupId=nogroup(65534) MCS_label=N/A
   JobState=RUNNING Reason=None Dependency=(null)
   NodeList=node1
   BatchHost=node1
   NumNodes=1 NumCPUs=16 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=16,mem=10G,node=1,billing=16
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node1 CPU_IDs=0-15 Mem=10240 GRES=
   MinCPUsNode=1 MinMemoryNode=10G MinTmpDiskNode=0
EOF
`

// fakeScancel logs its arguments.
const fakeScancel = `#!/bin/sh
echo "$*" >> "${0%/*}/scancel.log"
`

// slurmCalls returns what the fake scontrol or scancel was asked to do.
func (n *node) slurmCalls(cmd string) []string {
	b, err := os.ReadFile(filepath.Join(n.dir, cmd+".log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(n.t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func newNode(t *testing.T) *node {
	t.Helper()
	return newNodeOn(t, fixture.Root(t, "paper-e5520-fake12"))
}

// newNodeOn is newNode with the paper node's lwk.conf over another sysfs
// tree.
func newNodeOn(t *testing.T, sysfsRoot string) *node {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("needs root: the prolog chowns the instance's device to the job's user (CI runs as root; LWK_FORCE_ROOT_TESTS=1 forces)")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mckernel.img"), []byte("simulated image\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scontrol"), []byte(fakeScontrol), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scancel"), []byte(fakeScancel), 0o755))
	conf := filepath.Join(dir, "lwk.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`IHKBackend=sim
OSCores=0-1
SystemNUMANodes=0-1
JobNUMANodes=2-11
StateDir=%[1]s/state
RunDir=%[1]s/run
LogDir=%[1]s/log
SimStateDir=%[1]s/sim
SimBootDelay=50ms
SysfsRoot=%[2]s
ScontrolPath=%[1]s/scontrol
ScancelPath=%[1]s/scancel
DestroyTimeout=5s
CgroupPrefix=%[3]s
Profile=mck Image=%[1]s/mckernel.img Kargs="hidos dump_level=24" AllowKargs=time_sharing
`, dir, sysfsRoot, cgroupPrefix(t))), 0o644))
	return &node{t: t, dir: dir, conf: conf}
}

// cgroupPrefix gives each node its own directory under the real cgroup
// hierarchies (the prolog confines the proxies there), removed afterwards.
func cgroupPrefix(t *testing.T) string {
	prefix := fmt.Sprintf("slurm-lwk-lifecycle-%d-%d", os.Getpid(), nodeSeq.Add(1))
	t.Cleanup(func() {
		for _, c := range []string{"cpuset", "memory", "cpu"} {
			dir := filepath.Join("/sys/fs/cgroup", c, prefix)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.IsDir() {
					t.Errorf("cgroup left behind: %s/%s", dir, e.Name())
				}
			}
			_ = os.Remove(dir)
		}
	})
	return prefix
}

// copyLayout copies a fixture's CPU and NUMA node trees (not the memory
// blocks, which the lifecycle does not read) to a temp root a test may
// change.
func copyLayout(t *testing.T, name string) string {
	t.Helper()
	src := fixture.Root(t, name)
	dst := t.TempDir()
	for _, sub := range []string{"cpu", "node"} {
		from := filepath.Join(src, "sys/devices/system", sub)
		err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			to := filepath.Join(dst, rel)
			switch {
			case d.Type()&os.ModeSymlink != 0:
				if strings.HasPrefix(d.Name(), "memory") {
					return nil
				}
				link, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return os.Symlink(link, to)
			case d.IsDir():
				return os.MkdirAll(to, 0o755)
			default:
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				return os.WriteFile(to, b, 0o644)
			}
		})
		require.NoError(t, err)
	}
	return dst
}

// TestNearlyFullJobNodeDoesNotDrain is the reproduction of a zero-byte
// memory chunk: job node 2 with 2048 kB free got "node 2: 0 B" in the plan,
// RESERVE_MEM refused it and the prolog failed (draining the node).
func TestNearlyFullJobNodeDoesNotDrain(t *testing.T) {
	root := copyLayout(t, "paper-e5520-fake12")
	require.NoError(t, os.WriteFile(filepath.Join(root, "sys/devices/system/node/node2/meminfo"),
		[]byte("Node 2 MemTotal:        1032192 kB\nNode 2 MemFree:            2048 kB\n"), 0o644))
	n := newNodeOn(t, root)
	_, stderr, err := n.run("lwk-prolog", 43, []string{"LWK_MODE=mck:mem=2G"})
	require.NoError(t, err, stderr)
	require.Empty(t, n.slurmCalls("scancel"), "a satisfiable request is not cancelled")
	st := n.status()
	require.Len(t, st.OSInstances, 1)
	var total uint64
	for _, c := range st.OSInstances[0].Memory {
		require.NotEqual(t, 2, c.NUMANode, "memory on the full node: %+v", st.OSInstances[0].Memory)
		require.NotZero(t, c.Bytes)
		total += c.Bytes
	}
	require.Equal(t, uint64(2<<30), total)
	_, stderr, err = n.run("lwk-epilog", 43, []string{"LWK_MODE=mck:mem=2G"})
	require.NoError(t, err, stderr)
	n.requirePristine("after epilog")
}

// jobEnv is the environment the plugin gives a hook of an LWK job of user
// nobody, plus extra variables (later ones win).
func (n *node) jobEnv(jobID int, extra ...string) []string {
	return append([]string{
		"LWK_CONF=" + n.conf,
		fmt.Sprintf("SLURM_JOB_ID=%d", jobID),
		"SLURM_JOB_UID=65534", "SLURM_JOB_GID=65534", "SLURM_JOB_USER=nobody",
		"SLURMD_NODENAME=node1",
		"LWK_MODE=mck",
		"PATH=/usr/bin:/bin",
	}, extra...)
}

// run starts one of the binaries with a job's environment plus extra
// variables (later ones win); it returns stdout, stderr and the exit error.
func (n *node) run(bin string, jobID int, extra []string, args ...string) (string, string, error) {
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = n.jobEnv(jobID, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (n *node) status() *nodestatus.Status {
	n.t.Helper()
	out, stderr, err := n.run("lwkctl", 0, nil, "status", "--json")
	require.NoError(n.t, err, stderr)
	var st nodestatus.Status
	require.NoError(n.t, json.Unmarshal([]byte(out), &st), out)
	return &st
}

// requirePristine checks that IHK holds nothing and no job state is left:
// no journal, no run marker (the node service's socket is no job's), no
// device stand-in but mcd0.
func (n *node) requirePristine(what string) {
	n.t.Helper()
	st := n.status()
	require.True(n.t, st.Pristine(), "%s: node not pristine: %+v", what, st)
	for _, dir := range []string{"state/journal", "run"} {
		ents, _ := os.ReadDir(filepath.Join(n.dir, dir))
		left := slices.DeleteFunc(names(ents), func(name string) bool { return dir == "run" && name == hookserver.SocketName })
		require.Empty(n.t, left, "%s: leftovers in %s", what, dir)
	}
	ents, err := os.ReadDir(filepath.Join(n.dir, "sim", "dev"))
	require.NoError(n.t, err)
	require.Equal(n.t, []string{"mcd0"}, names(ents), "%s: device stand-ins", what)
}

func names(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestPrologEpilogRoundTrip(t *testing.T) {
	n := newNode(t)
	n.requirePristine("before")
	_, stderr, err := n.run("lwk-prolog", 41, nil)
	require.NoError(t, err, stderr)

	st := n.status()
	require.Equal(t, "sim", st.Backend)
	require.Len(t, st.OSInstances, 1)
	in := st.OSInstances[0]
	require.Equal(t, "RUNNING", in.Status)
	require.Equal(t, "2-15", in.CPUs)
	for _, c := range in.Memory {
		require.GreaterOrEqual(t, c.NUMANode, 2, "memory on a system node: %+v", in.Memory)
	}
	// 9 GiB on job nodes 2-11 and CPUs on 0-1: McKernel's NUMA ids equal Linux's.
	numa := "0:0,1:1,2:2,3:3,4:4,5:5,6:6,7:7,8:8,9:9,10:10,11:11"
	require.Equal(t, []nodestatus.Job{{JobID: 41, Step: steps.WriteMarker, State: "done", OS: in.Index, LWKNUMAMap: numa}}, st.Jobs)

	// The device stays root's; the job's user, and only they, get rw
	// through its ACL.
	dev := filepath.Join(n.dir, "sim", "dev", fmt.Sprintf("mcos%d", in.Index))
	fi, err := os.Stat(dev)
	require.NoError(t, err)
	require.Equal(t, uint32(0), fi.Sys().(*syscall.Stat_t).Uid)
	require.Zero(t, fi.Mode().Perm()&0o007, "no access for others: %v", fi.Mode())
	users, err := devperm.Granted(dev)
	require.NoError(t, err)
	require.Equal(t, []int{65534}, users)
	marker, err := os.ReadFile(filepath.Join(n.dir, "run", "job-41"))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("os=%d\nattempt=0\ncpus=14\noversubscribe=0\nlwk_numa=%s\n", in.Index, numa), string(marker))

	// The proxies' confinement exists before the marker, and its record is
	// root-only (0600 in the 0700 run directory).
	fi, err = os.Stat(filepath.Join(n.dir, "run", "job-41.cgroup"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	if layout, err := proxycgroup.Detect(procfs.Default()); err == nil && layout.Mode == proxycgroup.V1 {
		require.Len(t, st.Cgroups, 1)
		require.Equal(t, uint32(41), st.Cgroups[0].JobID)
		require.Empty(t, st.Cgroups[0].Problem)
		cpus, err := os.ReadFile(filepath.Join(st.Cgroups[0].Dirs["cpuset"], "proxies", "cpuset.cpus"))
		require.NoError(t, err)
		require.Equal(t, "0-1\n", string(cpus), "the OS cores")
		quota, err := os.ReadFile(filepath.Join(st.Cgroups[0].Dirs["cpu"], "proxies", "cpu.cfs_quota_us"))
		require.NoError(t, err)
		require.Equal(t, "100000\n", string(quota), "50% of two OS cores")
	}

	_, stderr, err = n.run("lwk-epilog", 41, nil)
	require.NoError(t, err, stderr)
	n.requirePristine("after epilog")
	_, stderr, err = n.run("lwk-epilog", 41, nil)
	require.NoError(t, err, "a second epilog is harmless: %s", stderr)
	n.requirePristine("after second epilog")
}

func TestLeftoverCgroupIsAProblemUntilCleanup(t *testing.T) {
	n := newNode(t)
	if layout, err := proxycgroup.Detect(procfs.Default()); err != nil || layout.Mode != proxycgroup.V1 {
		t.Skipf("needs cgroup v1 hierarchies (this node: %v %v): under v2 nothing of ours is left to find", layout.Mode, err)
	}
	_, stderr, err := n.run("lwk-prolog", 43, nil)
	require.NoError(t, err, stderr)
	// The journal is lost (an admin removed it, a disk went away): the
	// cgroups stay and nothing explains them.
	require.NoError(t, os.Remove(filepath.Join(n.dir, "state", "journal", "job-43.journal")))
	st := n.status()
	require.Len(t, st.Cgroups, 1)
	require.Contains(t, st.Cgroups[0].Problem, "lwkctl cleanup --job 43 removes it")
	require.False(t, st.Pristine())
	out, stderr, err := n.run("lwkctl", 0, nil, "cleanup", "--job", "43")
	require.NoError(t, err, stderr)
	require.Contains(t, out, "cgroups removed true")
	n.requirePristine("after cleanup")
}

func TestLinuxJobPassesThrough(t *testing.T) {
	n := newNode(t)
	for _, spec := range []string{"", "off"} {
		for _, bin := range []string{"lwk-prolog", "lwk-epilog"} {
			// A missing config proves neither binary reads it for a Linux job.
			_, stderr, err := n.run(bin, 5, []string{"LWK_MODE=" + spec, "LWK_CONF=/nonexistent/lwk.conf"})
			require.NoError(t, err, "%s with LWK_MODE=%q: %s", bin, spec, stderr)
		}
	}
	_, err := os.Stat(filepath.Join(n.dir, "state"))
	require.True(t, errors.Is(err, os.ErrNotExist), "a Linux job created state")
}

// injection says how a step is made to fail or crash: IHK operations are
// injected by the simulated driver, the other steps by the lifecycle itself,
// both under the step's name.
var injection = map[string]string{
	steps.ReserveMemory:  "reserve_memory",
	steps.ReserveCPUs:    "reserve_cpus",
	steps.CreateOS:       "create_os",
	steps.AssignCPUs:     "assign_cpus",
	steps.AssignMemory:   "assign_memory",
	steps.LoadImage:      "load_image",
	steps.SetKernelArgs:  "set_kernel_args",
	steps.Boot:           "boot",
	steps.WaitRunning:    "wait_running",
	steps.GrantDevice:    "grant_device",
	steps.ConfineProxies: "confine_proxies",
	steps.WriteMarker:    "write_marker",
}

func TestEveryStepHasAnInjectionRow(t *testing.T) {
	for _, s := range steps.All {
		_, ok := injection[s]
		require.True(t, ok, "lifecycle step %q has no fault-injection row: add one", s)
	}
	require.Len(t, injection, len(steps.All), "injection rows for steps that no longer exist")
}

func TestFaultAtEveryStepRollsBack(t *testing.T) {
	for i, s := range steps.All {
		t.Run(s, func(t *testing.T) {
			n := newNode(t)
			job := 100 + i
			_, stderr, err := n.run("lwk-prolog", job, []string{"LWK_SIM_FAULT=" + injection[s] + ":EIO"})
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "prolog must fail: %v %s", err, stderr)
			require.Equal(t, 1, exit.ExitCode())
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			require.Len(t, lines, 1, "one line for the drain reason: %q", stderr)
			require.True(t, strings.HasPrefix(lines[0], "lwk: "), lines[0])
			require.Contains(t, lines[0], s, "the reason names the step")
			require.Contains(t, lines[0], "input/output error", "the reason gives the cause")
			n.requirePristine("after failed " + s)
			// The drain reason slurmd would otherwise hide behind "Prolog error".
			calls := n.slurmCalls("scontrol")
			require.Len(t, calls, 3, "show node, show job, then drain: %q", calls)
			require.Regexp(t, fmt.Sprintf(`^update NodeName=node1 State=DRAIN Reason=lwk: job %d: %s: `, job, s), calls[2])
			require.Empty(t, n.slurmCalls("scancel"))
		})
	}
}

func TestCrashAfterEveryStepIsCleanedByEpilog(t *testing.T) {
	for i, s := range steps.All {
		t.Run(s, func(t *testing.T) {
			n := newNode(t)
			job := 200 + i
			_, stderr, err := n.run("lwk-prolog", job, []string{"LWK_SIM_CRASH=" + injection[s]})
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "prolog must be killed: %v %s", err, stderr)
			ws := exit.Sys().(syscall.WaitStatus)
			require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by SIGKILL, got %v", ws)

			_, stderr, err = n.run("lwk-epilog", job, nil)
			require.NoError(t, err, stderr)
			n.requirePristine("epilog after crash at " + s)
		})
	}
}

func TestEpilogWithCorruptJournalRecoversFromLiveState(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-prolog", 77, nil)
	require.NoError(t, err, stderr)
	path := filepath.Join(n.dir, "state", "journal", "job-77.journal")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)-5] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o600))

	_, stderr, err = n.run("lwk-epilog", 77, nil)
	require.NoError(t, err, stderr)
	require.Contains(t, stderr, "recovered from live state")
	// The corrupt file is kept for the admin, renamed; nothing else is left.
	_, err = os.Stat(path + ".corrupt")
	require.NoError(t, err)
	require.NoError(t, os.Remove(path+".corrupt"))
	n.requirePristine("after recovery")
}

// TestEpilogFailsUnlessTheNodeIsClean: lwk-epilog exits non-zero, which
// makes slurmd drain the node, on any error, not only when IHK is known to
// hold resources: an epilog that could not finish (here: the node lock stays
// taken) has not returned the node to its state before the job either.
func TestEpilogFailsUnlessTheNodeIsClean(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-prolog", 5, nil)
	require.NoError(t, err, stderr)
	f, err := os.OpenFile(n.conf, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("LockTimeout=300ms\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	lock, err := nodelock.Acquire(context.Background(), filepath.Join(n.dir, "state"))
	require.NoError(t, err)

	_, stderr, err = n.run("lwk-epilog", 5, nil)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, stderr)
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, stderr, "lwk: ")
	require.Len(t, n.status().OSInstances, 1, "the job's LWK is still there")

	lock.Release()
	_, stderr, err = n.run("lwk-epilog", 5, nil)
	require.NoError(t, err, stderr)
	n.requirePristine("after the epilog could take the lock")
}

// One LWK job per node (IHK boots one OS per device): a second LWK job that
// Slurm starts on a node whose LWK belongs to another job is requeued, with
// the reason in its AdminComment; nothing of it is reserved, the node is not
// drained, and its epilog (Slurm runs one at requeue) leaves the first job
// alone.
func TestSecondLWKJobRequeuedNotDrained(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-prolog", 1, []string{"LWK_MODE=mck:cores=4,mem=2G"})
	require.NoError(t, err, stderr)
	before := n.status()

	_, stderr, err = n.run("lwk-prolog", 2, []string{"LWK_MODE=mck:cores=2,mem=1G"})
	require.NoError(t, err, "a busy node must not fail the prolog (that drains it): %s", stderr)
	require.Contains(t, stderr, "lwk: job 2 requeued: job 1 holds this node's LWK")
	calls := n.slurmCalls("scontrol")
	require.Contains(t, calls, "update JobId=2 AdminComment=lwk: requeued: job 1 holds this node's LWK (one LWK job per node): another job's lwk is on this node")
	require.Equal(t, "requeue 2", calls[len(calls)-1])
	for _, c := range calls {
		require.NotContains(t, c, "DRAIN")
	}
	require.Empty(t, n.slurmCalls("scancel"))
	require.Equal(t, before, n.status(), "job 2's prolog touched IHK")

	_, stderr, err = n.run("lwk-epilog", 2, nil)
	require.NoError(t, err, stderr)
	require.Equal(t, before, n.status(), "job 2's epilog touched job 1's LWK")

	_, stderr, err = n.run("lwk-epilog", 1, nil)
	require.NoError(t, err, stderr)
	n.requirePristine("after both epilogs")
}

// The job's user runs a program through the mcexec stand-in, which holds the
// instance's device; the epilog must revoke access, stop it and destroy the
// instance.
func TestEpilogStopsTheJobsMcexec(t *testing.T) {
	n := newNode(t)
	// The user must reach the device stand-in and read lwk.conf.
	for d := n.dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	_, stderr, err := n.run("lwk-prolog", 51, nil)
	require.NoError(t, err, stderr)

	cmd := exec.Command(filepath.Join(binDir, "lwk-sim-mcexec"), "-n", "1", "/bin/sleep", "60")
	cmd.Env = []string{"LWK_CONF=" + n.conf, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Wait until the stand-in holds the device.
	dev := filepath.Join(n.dir, "sim", "dev", "mcos0")
	require.Eventually(t, func() bool {
		pids, err := devholders.Find("/proc", dev)
		return err == nil && slices.Contains(pids, cmd.Process.Pid)
	}, 5*time.Second, 20*time.Millisecond, "mcexec stand-in did not open %s: %s", dev, out.String())

	_, stderr, err = n.run("lwk-epilog", 51, nil)
	require.NoError(t, err, stderr)
	select {
	case err := <-done:
		require.Error(t, err, "the stand-in was stopped, not left to finish: %s", out.String())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the epilog left the job's mcexec running")
	}
	n.requirePristine("after the epilog stopped mcexec")
}

func TestPrologDryRunTouchesNothing(t *testing.T) {
	n := newNode(t)
	out, stderr, err := n.run("lwk-prolog", 0, nil, "--dry-run", "--json", "--config", n.conf,
		"--job-id", "9", "--lwk-mode", "mck:cores=2", "--cpus", "2-15", "--mem", "4G")
	require.NoError(t, err, stderr)
	var p struct {
		LWKCPUs string `json:"lwk_cpus"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &p), out)
	require.Equal(t, "2,4,10,12", p.LWKCPUs)
	_, err = os.Stat(filepath.Join(n.dir, "sim"))
	require.True(t, errors.Is(err, os.ErrNotExist), "a dry run opened the simulated driver")
	_, err = os.Stat(filepath.Join(n.dir, "state"))
	require.True(t, errors.Is(err, os.ErrNotExist), "a dry run created state")
}

func TestMonitorSamplesRunningInstance(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-prolog", 61, nil)
	require.NoError(t, err, stderr)
	out, stderr, err := n.run("lwk-monitor", 0, nil, "--once", "--spool-dir", filepath.Join(n.dir, "spool"))
	require.NoError(t, err, stderr)
	var status struct {
		Instances []struct {
			Job     uint32          `json:"job"`
			OS      int             `json:"os"`
			Status  string          `json:"status"`
			Samples int             `json:"samples"`
			Rusage  json.RawMessage `json:"rusage"`
		} `json:"instances"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &status), out)
	require.Len(t, status.Instances, 1, out)
	sample := status.Instances[0]
	require.Equal(t, uint32(61), sample.Job, "found from the prolog's journal")
	require.Equal(t, "RUNNING", sample.Status)
	require.Equal(t, 1, sample.Samples)
	require.Contains(t, string(sample.Rusage), "user_ns")
	_, stderr, err = n.run("lwk-epilog", 61, nil)
	require.NoError(t, err, stderr)
	n.requirePristine("after the monitored job")
}

// A request the node cannot satisfy is the user's mistake: the job is
// cancelled with the reason recorded, and the node is not drained.
func TestUnsatisfiableRequestCancelsTheJob(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-prolog", 301, []string{"LWK_MODE=mck:mem=100G"})
	require.NoError(t, err, "the prolog succeeds so that slurmd does not drain the node: %s", stderr)
	require.Contains(t, stderr, "lwk: job 301 cancelled: ")
	require.Equal(t, []string{"301"}, n.slurmCalls("scancel"))
	calls := n.slurmCalls("scontrol")
	require.Len(t, calls, 3, "%q", calls)
	require.Regexp(t, `^update JobId=301 AdminComment=lwk: plan job 301: mem=100 GiB: more than the job's memory on this node \(10 GiB\)`, calls[2])
	for _, c := range calls {
		require.NotContains(t, c, "DRAIN")
	}
	n.requirePristine("after a refused request")
}

// slurm.conf describing the node with one thread per core on two-thread
// hardware makes Slurm's CPU IDs unmappable: the prolog refuses and drains
// the node (a configuration error) instead of booting on the wrong CPUs.
func TestLayoutMismatchRefused(t *testing.T) {
	n := newNode(t)
	require.NoError(t, os.WriteFile(filepath.Join(n.dir, "node.txt"),
		[]byte("NodeName=node1 CoresPerSocket=8 CPUTot=16 Sockets=2 ThreadsPerCore=1\n"), 0o644))
	_, stderr, err := n.run("lwk-prolog", 401, nil)
	require.Error(t, err)
	require.Contains(t, stderr, "slurm.conf says 2 sockets x 8 cores x 1 threads, the hardware has 2 sockets x 4 cores x 2 threads")
	calls := n.slurmCalls("scontrol")
	require.Regexp(t, `^update NodeName=node1 State=DRAIN Reason=lwk: job 401: node node1: slurm.conf says`, calls[len(calls)-1])
	require.Empty(t, n.slurmCalls("scancel"))
	n.requirePristine("after a refused layout")
}

// TestLayoutCacheSeesAnOfflinedCPU: the prolog caches the node layout in
// StateDir; a CPU taken offline between two jobs must reach the next
// prolog, and so must its return.
func TestLayoutCacheSeesAnOfflinedCPU(t *testing.T) {
	root := copyLayout(t, "paper-e5520-fake12")
	n := newNodeOn(t, root)
	_, stderr, err := n.run("lwk-prolog", 44, nil)
	require.NoError(t, err, stderr)
	require.Equal(t, "2-15", n.status().OSInstances[0].CPUs)
	_, stderr, err = n.run("lwk-epilog", 44, nil)
	require.NoError(t, err, stderr)
	_, err = os.Stat(filepath.Join(n.dir, "state", "topology.cache"))
	require.NoError(t, err, "the prolog cached the layout")

	// echo 0 > cpu15/online: the kernel updates cpu/online and the
	// cpulists and removes cpu15/topology.
	sys := filepath.Join(root, "sys/devices/system")
	setOnline := func(online, offline, cpu15, oddNodes string) {
		require.NoError(t, os.WriteFile(filepath.Join(sys, "cpu/online"), []byte(online+"\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(sys, "cpu/offline"), []byte(offline+"\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(sys, "cpu/cpu15/online"), []byte(cpu15+"\n"), 0o644))
		for _, node := range []int{1, 3, 5, 7, 9, 11} {
			require.NoError(t, os.WriteFile(filepath.Join(sys, fmt.Sprintf("node/node%d/cpulist", node)), []byte(oddNodes+"\n"), 0o644))
		}
	}
	topo := filepath.Join(sys, "cpu/cpu15/topology")
	saved := filepath.Join(t.TempDir(), "topology")
	require.NoError(t, os.Rename(topo, saved))
	setOnline("0-14", "15", "0", "1,3,5,7,9,11,13")
	// With CPU 15 offline the hardware no longer matches slurm.conf's
	// 2x4x2 layout, so the prolog refuses (it saw the change; from a stale
	// layout it would have booted CPUs 2-15).
	_, stderr, err = n.run("lwk-prolog", 45, nil)
	require.Error(t, err)
	require.Contains(t, stderr, "the hardware has 2 sockets x 4 cores x 1 threads")
	require.Empty(t, n.status().OSInstances)

	// echo 1 > cpu15/online: back to the first layout.
	require.NoError(t, os.Rename(saved, topo))
	setOnline("0-15", "", "1", "1,3,5,7,9,11,13,15")
	_, stderr, err = n.run("lwk-prolog", 46, nil)
	require.NoError(t, err, stderr)
	require.Equal(t, "2-15", n.status().OSInstances[0].CPUs)
	_, stderr, err = n.run("lwk-epilog", 46, nil)
	require.NoError(t, err, stderr)
	_, stderr, err = n.run("lwk-epilog", 45, nil)
	require.NoError(t, err, stderr)
	n.requirePristine("after epilog")
}

// A --lwk-mode that never went through the plugin's submit check (too long,
// control or non-ASCII bytes) is the user's error: the job is cancelled with
// the reason, the prolog exits 0 and the node stays in service; the epilog
// does not fail on it either.
func TestMalformedSpecInEnvironmentCancelsJob(t *testing.T) {
	tests := []struct {
		name, env, want string
	}{
		{name: "tab", env: "LWK_MODE=mck\tx", want: "spec contains byte 0x09"},
		{name: "full-width G", env: "SPANK_LWK_MODE=mck:mem=8Ｇ", want: "spec contains byte 0xef"},
		{name: "8 KiB", env: "LWK_MODE=mck:kargs=" + strings.Repeat("k", 8<<10), want: "spec is 8202 bytes, limit 1024"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			job := 501 + i
			extra := []string{tc.env}
			if strings.HasPrefix(tc.env, "SPANK_") {
				extra = append(extra, "LWK_MODE=") // only the job-control copy
			}
			_, stderr, err := n.run("lwk-prolog", job, extra)
			require.NoError(t, err, "a malformed spec failed the prolog (drains the node): %s", stderr)
			require.Contains(t, stderr, fmt.Sprintf("lwk: job %d cancelled: --lwk-mode:", job))
			require.Contains(t, stderr, tc.want)
			require.Equal(t, []string{strconv.Itoa(job)}, n.slurmCalls("scancel"))
			calls := n.slurmCalls("scontrol")
			require.Len(t, calls, 1, "%q", calls)
			require.Regexp(t, fmt.Sprintf(`^update JobId=%d AdminComment=lwk: --lwk-mode: .*%s`, job, regexp.QuoteMeta(tc.want)), calls[0])
			_, stderr, err = n.run("lwk-epilog", job, extra)
			require.NoError(t, err, "the epilog failed on a malformed spec (drains the node): %s", stderr)
			n.requirePristine("after a malformed spec")
		})
	}
}

// More tasks on the node than the LWK has CPUs: every `mcexec -n` would fail,
// so the prolog cancels the job with the reason (sbatch -n4
// --lwk-mode=mck:cores=1 on a two-thread core), unless the kernel arguments
// allow oversubscription.
func TestMoreTasksThanLWKCPUsCancelsJob(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-prolog", 601, []string{"LWK_MODE=mck:cores=1,mem=1G", "SLURM_JOB_NTASKS=4", "SLURM_JOB_NUM_NODES=1"})
	require.NoError(t, err, stderr)
	require.Contains(t, stderr, "lwk: job 601 cancelled: plan job 601: 4 tasks on this node (4 tasks on 1 nodes) but the LWK has 2 CPUs")
	require.Equal(t, []string{"601"}, n.slurmCalls("scancel"))
	n.requirePristine("after refusing too many tasks")

	// Two tasks on one core's two threads fit.
	_, stderr, err = n.run("lwk-prolog", 602, []string{"LWK_MODE=mck:cores=1,mem=1G", "SLURM_JOB_NTASKS=2", "SLURM_JOB_NUM_NODES=1"})
	require.NoError(t, err, stderr)
	require.Equal(t, []string{"601"}, n.slurmCalls("scancel"))
	_, stderr, err = n.run("lwk-epilog", 602, nil)
	require.NoError(t, err, stderr)
	n.requirePristine("after the job that fits")
}

// The marker records the attempt the LWK was booted for
// (SLURM_JOB_RESTART_COUNT), its CPU count and whether it oversubscribes;
// the SPANK plugin compares the attempt with the step's.
func TestMarkerRecordsAttempt(t *testing.T) {
	n := newNode(t)
	_, stderr, err := n.run("lwk-prolog", 701, []string{"LWK_MODE=mck:cores=2,mem=1G", "SLURM_JOB_RESTART_COUNT=3"})
	require.NoError(t, err, stderr)
	b, err := os.ReadFile(filepath.Join(n.dir, "run", "job-701"))
	require.NoError(t, err)
	// Then how the LWK numbers its NUMA nodes: its CPUs' node and the job
	// nodes holding its memory, packed.
	require.Equal(t, "os=0\nattempt=3\ncpus=4\noversubscribe=0\nlwk_numa=0:0,2:1,4:2\n", string(b))
	_, stderr, err = n.run("lwk-epilog", 701, nil)
	require.NoError(t, err, stderr)
	n.requirePristine("after the epilog")
}
