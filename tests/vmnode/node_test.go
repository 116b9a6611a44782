//go:build vmnode

package vmnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
)

// The guest's layout, as scripts/vm-node boots it: 4 sockets of one core;
// CPUs 0-1 on NUMA node 0 are the OS cores, CPU 2 is on node 1, CPU 3 on
// node 2. The lwk.conf below sets the proxies' limits so that the checks
// have round numbers: 64 MiB, and 25% of the two OS cores = half a CPU.
const (
	osCores       = "0-1"
	cgroupRoot    = "/sys/fs/cgroup"
	proxyMemory   = 64 << 20
	cpuPeriodUS   = 100000
	cpuQuotaUS    = 50000
	guestCPUsAll  = "0-3"
	nobodyUID     = 65534
	nobodyGID     = 65534
	settleTimeout = 20 * time.Second
)

// fakeScontrol answers the prolog's two questions: the node (4 sockets of
// one core) and the job, whose abstract CPU IDs (= Linux IDs here) come
// from the file job-<id>.cpus beside it.
const fakeScontrol = `#!/bin/sh
echo "$*" >> "${0%/*}/scontrol.log"
[ "$1" = show ] || exit 0
if [ "$2" = node ]; then
	echo "NodeName=vm Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUTot=4 Sockets=4 Boards=1 State=IDLE ThreadsPerCore=1"
	exit 0
fi
cpus=$(cat "${0%/*}/job-$4.cpus")
cat <<EOF
JobId=$4 JobName=vmnode
   UserId=nobody(65534) GroupId=nogroup(65534) MCS_label=N/A
   JobState=RUNNING Reason=None Dependency=(null)
   NodeList=vm
   BatchHost=vm
   NumNodes=1 NumCPUs=2 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=2,mem=512M,node=1,billing=2
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=vm CPU_IDs=$cpus Mem=512 GRES=
   MinCPUsNode=1 MinMemoryNode=512M MinTmpDiskNode=0
EOF
`

// guest is the node as one test uses it: its lwk.conf and directories.
type guest struct {
	t    *testing.T
	dir  string
	conf string
	bin  string
}

// newGuest skips outside the VM: the tests take CPUs of the machine
// offline and write the root cgroup's controllers.
func newGuest(t *testing.T) *guest {
	t.Helper()
	if os.Getenv("LWK_VM_GUEST") != "1" {
		t.Skip("takes CPUs offline and writes cgroups: runs only in the VM harness's guest (LWK_VM_GUEST=1)")
	}
	bin := os.Getenv("LWK_BIN_DIR")
	require.NotEmpty(t, bin, "LWK_BIN_DIR: the directory with lwk-prolog, lwk-epilog and lwkctl")
	b, err := os.ReadFile("/proc/self/mounts")
	require.NoError(t, err)
	require.Contains(t, string(b), " "+cgroupRoot+" cgroup2 ", "the guest mounts cgroup2 at %s", cgroupRoot)
	require.NotContains(t, string(b), " cgroup ", "the guest mounts no cgroup v1 hierarchy")
	require.Equal(t, guestCPUsAll, readTrim(t, "/sys/devices/system/cpu/online"), "every CPU online before the test")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mckernel.img"), []byte("simulated image\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scontrol"), []byte(fakeScontrol), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scancel"), []byte("#!/bin/sh\necho \"$*\" >> \"${0%/*}/scancel.log\"\n"), 0o755))
	conf := filepath.Join(dir, "lwk.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`IHKBackend=sim
SimOfflineCPUs=yes
OSCores=%[2]s
SystemNUMANodes=0
JobNUMANodes=1-3
StateDir=%[1]s/state
RunDir=%[1]s/run
LogDir=%[1]s/log
SimStateDir=%[1]s/sim
ScontrolPath=%[1]s/scontrol
ScancelPath=%[1]s/scancel
DestroyTimeout=5s
ProxyMemory=64M
ProxyCPUShare=25%%
ProxyCPUPeriod=100ms
Profile=mck Image=%[1]s/mckernel.img Kargs=hidos
`, dir, osCores)), 0o644))
	return &guest{t: t, dir: dir, conf: conf, bin: bin}
}

// run runs one of the project's programs as slurmd would (root, Slurm's
// environment) and returns its combined output.
func (g *guest) run(name string, jobID int, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(g.bin, name), args...)
	cmd.Env = []string{
		"LWK_CONF=" + g.conf,
		"SLURM_JOB_ID=" + strconv.Itoa(jobID),
		"SLURM_JOB_UID=65534", "SLURM_JOB_GID=65534", "SLURM_JOB_USER=nobody",
		"SLURMD_NODENAME=vm",
		"LWK_MODE=mck:mem=64M",
		"PATH=/bin",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// prolog runs lwk-prolog for a job holding cpus.
func (g *guest) prolog(jobID int, cpus string) {
	g.t.Helper()
	require.NoError(g.t, os.WriteFile(filepath.Join(g.dir, fmt.Sprintf("job-%d.cpus", jobID)), []byte(cpus+"\n"), 0o644))
	// A test that fails half-way still gives the CPUs back (the epilog
	// is idempotent), so that the next test finds them online.
	g.t.Cleanup(func() { _, _ = g.run("lwk-epilog", jobID) })
	out, err := g.run("lwk-prolog", jobID)
	require.NoError(g.t, err, "lwk-prolog: %s", out)
}

func (g *guest) epilog(jobID int) {
	g.t.Helper()
	out, err := g.run("lwk-epilog", jobID)
	require.NoError(g.t, err, "lwk-epilog: %s", out)
}

// confineTask is what the SPANK shim runs from task_init_privileged.
func (g *guest) confineTask(jobID, pid int) {
	g.t.Helper()
	out, err := g.run("lwkctl", jobID, "confine-task", "--config", g.conf,
		"--job", strconv.Itoa(jobID), "--pid", strconv.Itoa(pid), "--role", "proxies")
	require.NoError(g.t, err, "lwkctl confine-task: %s", out)
}

// record reads the prolog's confinement record through the package the
// task wrapper reads it with.
func (g *guest) record(jobID int) *proxycgroup.Record {
	g.t.Helper()
	rec, err := proxycgroup.ReadRecord(filepath.Join(g.dir, "run"), uint32(jobID))
	require.NoError(g.t, err)
	return rec
}

// status is the part of `lwkctl status --json` the tests read.
type status struct {
	ReservedCPUs string `json:"reserved_cpus"`
	OSInstances  []struct {
		Status string `json:"status"`
		CPUs   string `json:"cpus"`
	} `json:"os_instances"`
	Jobs    []json.RawMessage `json:"jobs"`
	Cgroups []json.RawMessage `json:"cgroups"`
}

func (g *guest) status() status {
	g.t.Helper()
	out, err := exec.Command(filepath.Join(g.bin, "lwkctl"), "status", "--json", "--config", g.conf).Output()
	require.NoError(g.t, err, "lwkctl status")
	var st status
	require.NoError(g.t, json.Unmarshal(out, &st), string(out))
	return st
}

// slurmJob is one job's cgroup tree as Slurm's cgroup/v2 plugin makes it:
// <scope>/<job>/step_<step>/{slurm,user/task_<n>}, with the cpuset and
// memory controllers enabled down to the step (ConstrainCores,
// ConstrainRAMSpace) and the job's CPUs in the job's and the step's
// cpuset.cpus.
type slurmJob struct {
	scope, job, step, user string
	tasks                  []string
	created                []string
}

// makeSlurmJob creates the tree below cgroupRoot; scope is relative to it
// (system.slice/slurmstepd.scope, or <node>_slurmstepd.scope), jobName is
// job_<id> or, from Slurm 26.05, the job's SLUID.
func makeSlurmJob(t *testing.T, scope, jobName string, step, tasks int, cpus string) *slurmJob {
	t.Helper()
	j := &slurmJob{scope: filepath.Join(cgroupRoot, scope)}
	j.job = filepath.Join(j.scope, jobName)
	j.step = filepath.Join(j.job, "step_"+strconv.Itoa(step))
	j.user = filepath.Join(j.step, "user")
	for i := range tasks {
		j.tasks = append(j.tasks, filepath.Join(j.user, "task_"+strconv.Itoa(i)))
	}
	dirs := []string{filepath.Dir(j.scope), j.scope, j.job, j.step, filepath.Join(j.step, "slurm"), j.user}
	dirs = append(dirs, j.tasks...)
	for _, d := range dirs {
		err := os.Mkdir(d, 0o755)
		if err == nil {
			j.created = append(j.created, d)
			continue
		}
		require.ErrorIs(t, err, fs.ErrExist)
	}
	t.Cleanup(func() { j.remove(t) })
	// The controllers, from the root down to the step (whose children
	// are slurm/ and user/); none of these holds a process.
	for _, d := range []string{cgroupRoot, filepath.Dir(j.scope), j.scope, j.job, j.step} {
		writeFile(t, filepath.Join(d, "cgroup.subtree_control"), "+cpuset +memory")
	}
	writeFile(t, filepath.Join(j.job, "cpuset.cpus"), cpus)
	writeFile(t, filepath.Join(j.step, "cpuset.cpus"), cpus)
	return j
}

// addStep adds another step (step_<name>/{slurm,user/task_0}) to the job,
// cpuset as the first, and returns its user/ cgroup and task leaf.
func (j *slurmJob) addStep(t *testing.T, name string) (user, task string) {
	t.Helper()
	step := filepath.Join(j.job, "step_"+name)
	user = filepath.Join(step, "user")
	task = filepath.Join(user, "task_0")
	for _, d := range []string{step, filepath.Join(step, "slurm"), user, task} {
		require.NoError(t, os.Mkdir(d, 0o755))
		j.created = append(j.created, d)
	}
	writeFile(t, filepath.Join(step, "cgroup.subtree_control"), "+cpuset +memory")
	writeFile(t, filepath.Join(step, "cpuset.cpus"), readTrim(t, filepath.Join(j.step, "cpuset.cpus")))
	return user, task
}

// remove is Slurm's end of the step: rmdir leaf first, not recursive, so
// a cgroup of anyone else's left inside makes it fail. The scope and
// system.slice go too when the test made them.
func (j *slurmJob) remove(t *testing.T) {
	for _, d := range slices.Backward(j.created) {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("rmdir of Slurm's own cgroup: %v", err)
		}
	}
	j.created = nil
}

// place moves pid into a cgroup, as slurmstepd does with its tasks.
func place(t *testing.T, dir string, pid int) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
}

func writeFile(t *testing.T, path, value string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(value), 0o644), "write %q to %s", value, path)
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func readSet(t *testing.T, path string) cpuset.CPUSet {
	t.Helper()
	s := readTrim(t, path)
	set, err := cpuset.Parse(s)
	require.NoError(t, err, "%s: %q", path, s)
	return set
}

// cgroupOf is the process's cgroup v2 path, relative to the root.
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	s := readTrim(t, fmt.Sprintf("/proc/%d/cgroup", pid))
	cg, ok := strings.CutPrefix(s, "0::")
	require.True(t, ok, "pid %d: not a cgroup v2 line: %q", pid, s)
	return cg
}

func rel(t *testing.T, dir string) string {
	t.Helper()
	r, err := filepath.Rel(cgroupRoot, dir)
	require.NoError(t, err)
	return "/" + r
}

// cpusAllowed is the Cpus_allowed_list of a process.
func cpusAllowed(t *testing.T, pid int) cpuset.CPUSet {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			set, err := cpuset.Parse(strings.TrimSpace(v))
			require.NoError(t, err, line)
			return set
		}
	}
	t.Fatalf("pid %d: no Cpus_allowed_list", pid)
	return cpuset.CPUSet{}
}

// eventually polls cond until it holds: the kernel updates cpusets after
// a CPU hotplug from a work item, not within the write to "online".
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, settleTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupDirs lists every cgroup on the node.
func cgroupDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	require.NoError(t, filepath.WalkDir(cgroupRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	}))
	return dirs
}

// cpuStat reads a cgroup's cpu.stat.
func cpuStat(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for line := range strings.SplitSeq(readTrim(t, filepath.Join(dir, "cpu.stat")), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		require.NoError(t, err, line)
		out[f[0]] = v
	}
	return out
}

// memoryEvents reads one counter of a cgroup's memory.events.
func memoryEvents(t *testing.T, dir, key string) int64 {
	t.Helper()
	for line := range strings.SplitSeq(readTrim(t, filepath.Join(dir, "memory.events")), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err, line)
			return n
		}
	}
	t.Fatalf("%s/memory.events has no %s", dir, key)
	return 0
}

// rootOwnedNotWritable checks that a cgroup file the confinement relies on
// is root's and writable by root only.
func rootOwnedNotWritable(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	require.Zero(t, st.Uid, "%s owner", path)
	require.Zero(t, fi.Mode().Perm()&0o022, "%s mode %v: writable by others", path, fi.Mode())
}
