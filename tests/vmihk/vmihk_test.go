package vmihk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// The VM's layout, as scripts/vm-testdrv boots it: 4 CPUs in 2 sockets of 2
// cores, NUMA node 0 = CPUs 0-1 (the OS cores), node 1 = CPUs 2-3 (the
// job's). The fake scontrol below describes the same node to the prolog.
const (
	jobCPUs  = "2-3"
	jobNode  = 1
	lwkBytes = 256 << 20
	// memNoise is how far the job node's MemFree may move by itself while
	// a test runs (the kernel's own allocations and frees), once TestMain
	// has emptied the job CPUs' page lists and with the tests on the OS
	// cores; measured moves stay within 1 MiB, and a leaked
	// reservation chunk (4 MiB at least) does not fit in it.
	memNoise = 3 << 20
)

// fakeScontrol answers the prolog's two questions for a job holding
// abstract CPUs 2-3 (socket 1 = Linux CPUs 2-3) and 512 MiB on node "vm".
const fakeScontrol = `#!/bin/sh
echo "$*" >> "${0%/*}/scontrol.log"
[ "$1" = show ] || exit 0
if [ "$2" = node ]; then
	echo "NodeName=vm Arch=x86_64 CoresPerSocket=2 CPUAlloc=0 CPUTot=4 Sockets=2 Boards=1 State=IDLE ThreadsPerCore=1"
	exit 0
fi
cat <<EOF
JobId=$4 JobName=vmihk
   UserId=nobody(65534) GroupId=nogroup(65534) MCS_label=N/A
   JobState=RUNNING Reason=None Dependency=(null)
   NodeList=vm
   BatchHost=vm
   NumNodes=1 NumCPUs=2 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=2,mem=512M,node=1,billing=2
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=vm CPU_IDs=2-3 Mem=512 GRES=
   MinCPUsNode=1 MinMemoryNode=512M MinTmpDiskNode=0
EOF
`

type vm struct {
	t    *testing.T
	dir  string
	conf string
	bin  string
}

// newVM skips unless the test runs inside the test VM with the IHK test
// driver loaded: it takes the node's CPUs offline and holds its memory.
func newVM(t *testing.T) *vm {
	t.Helper()
	if os.Getenv("LWK_VM_NODE") != "1" {
		t.Skip("runs only inside the test VM (scripts/vm-testdrv sets LWK_VM_NODE=1)")
	}
	if _, err := os.Stat("/dev/mcd0"); err != nil {
		t.Fatalf("LWK_VM_NODE=1 but no IHK test driver: %v", err)
	}
	bin := os.Getenv("LWK_BIN_DIR")
	require.NotEmpty(t, bin, "LWK_BIN_DIR: the directory with lwk-prolog, lwk-epilog and lwkctl")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mckernel.img"), []byte("test image\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scontrol"), []byte(fakeScontrol), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scancel"), []byte("#!/bin/sh\necho \"$*\" >> \"${0%/*}/scancel.log\"\n"), 0o755))
	conf := filepath.Join(dir, "lwk.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`IHKBackend=ihk
OSCores=0-1
StateDir=%[1]s/state
RunDir=%[1]s/run
LogDir=%[1]s/log
ScontrolPath=%[1]s/scontrol
ScancelPath=%[1]s/scancel
DestroyTimeout=5s
Profile=mck Image=%[1]s/mckernel.img Kargs="hidos dump_level=24"
`, dir)), 0o644))
	return &vm{t: t, dir: dir, conf: conf, bin: bin}
}

func (v *vm) run(name string, jobID int, spec string) (string, error) {
	cmd := exec.Command(filepath.Join(v.bin, name))
	cmd.Env = []string{
		"LWK_CONF=" + v.conf,
		"SLURM_JOB_ID=" + strconv.Itoa(jobID),
		"SLURM_JOB_UID=65534", "SLURM_JOB_GID=65534", "SLURM_JOB_USER=nobody",
		"SLURMD_NODENAME=vm",
		"LWK_MODE=" + spec,
		"PATH=/bin",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// kernelState is what the LWK lifecycle changes in Linux itself.
type kernelState struct {
	online    string // /sys/devices/system/cpu/online
	memFree   uint64 // MemFree of the job's NUMA node, bytes
	instances []string
}

func readKernel(t *testing.T) kernelState {
	t.Helper()
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	require.NoError(t, err)
	meminfo, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/node/node%d/meminfo", jobNode))
	require.NoError(t, err)
	var free uint64
	for _, line := range strings.Split(string(meminfo), "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[2] == "MemFree:" {
			kb, err := strconv.ParseUint(f[3], 10, 64)
			require.NoError(t, err, line)
			free = kb << 10
		}
	}
	require.NotZero(t, free, "MemFree of node %d", jobNode)
	inst, err := filepath.Glob("/dev/mcos*")
	require.NoError(t, err)
	return kernelState{online: strings.TrimSpace(string(online)), memFree: free, instances: inst}
}

// requireBooted checks that the prolog booted one LWK: its CPUs offline,
// /dev/mcos0 present, and the job node's MemFree down by the LWK's memory
// since before (the reservation comes from the buddy allocator; the kernel
// may give back a little of its own meanwhile, slab, so memNoise is allowed).
func requireBooted(t *testing.T, before kernelState) {
	t.Helper()
	during := readKernel(t)
	require.Equal(t, "0-1", during.online, "the LWK CPUs %s are offline while the job runs", jobCPUs)
	require.Equal(t, []string{"/dev/mcos0"}, during.instances)
	require.GreaterOrEqual(t, before.memFree-during.memFree, uint64(lwkBytes-memNoise),
		"node %d MemFree fell by the LWK's memory", jobNode)
}

// settle drops clean page cache so that MemFree compares across the runs.
func settle(t *testing.T) {
	t.Helper()
	require.NoError(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200))
}

// TestBootAndTeardown runs the prolog and the epilog through the real IHK
// backend against the test driver: the job's CPUs go offline and come back,
// its memory leaves Linux and comes back, and no instance is left.
func TestBootAndTeardown(t *testing.T) {
	v := newVM(t)
	settle(t)
	before := readKernel(t)
	require.Equal(t, "0-3", before.online)
	require.Empty(t, before.instances)

	out, err := v.run("lwk-prolog", 11, fmt.Sprintf("mck:mem=%dM", lwkBytes>>20))
	require.NoError(t, err, out)

	requireBooted(t, before)

	// The VM mounts only cgroup2: the prolog recorded the proxies' limits
	// for the task wrapper to write onto Slurm's step cgroup (v2 path), with
	// the OS cores as the proxies' CPUs.
	rec := v.cgroupRecord(11)
	require.Equal(t, "v2", rec.Mode)
	require.Equal(t, "0-1", rec.Limits.CPUs, "the proxies run on the OS cores")

	st := v.status()
	require.Len(t, st.OSInstances, 1, "lwkctl status: %+v", st)
	require.Equal(t, "RUNNING", st.OSInstances[0].Status)
	require.Equal(t, jobCPUs, st.OSInstances[0].CPUs)

	out, err = v.run("lwk-epilog", 11, fmt.Sprintf("mck:mem=%dM", lwkBytes>>20))
	require.NoError(t, err, out)
	settle(t)
	after := readKernel(t)
	require.Equal(t, before.online, after.online, "CPUs back online")
	require.Empty(t, after.instances, "no instance left")
	// The reserved pages are back in the buddy allocator; allow for the
	// kernel's own small allocations meanwhile.
	require.InDelta(t, float64(before.memFree), float64(after.memFree), float64(memNoise),
		"node %d MemFree back to its level before the job", jobNode)
	_, err = os.Stat(v.cgroupRecordPath(11))
	require.ErrorIs(t, err, os.ErrNotExist, "the epilog removes the confinement record")
	st = v.status()
	require.Empty(t, st.OSInstances)
	require.Empty(t, st.ReservedCPUs)
	require.Empty(t, st.ReservedMemory)
	require.Empty(t, st.Jobs)
}

// cgroupRecord is the part of the prolog's confinement record
// (<RunDir>/job-<id>.cgroup) these tests read.
type cgroupRecord struct {
	Mode   string `json:"mode"`
	Limits struct {
		CPUs string `json:"cpus"`
	} `json:"limits"`
}

func (v *vm) cgroupRecordPath(jobID int) string {
	return filepath.Join(v.dir, "run", fmt.Sprintf("job-%d.cgroup", jobID))
}

func (v *vm) cgroupRecord(jobID int) cgroupRecord {
	v.t.Helper()
	b, err := os.ReadFile(v.cgroupRecordPath(jobID))
	require.NoError(v.t, err)
	var rec cgroupRecord
	require.NoError(v.t, json.Unmarshal(b, &rec), string(b))
	return rec
}

// status is the part of `lwkctl status --json` these tests read.
type status struct {
	ReservedCPUs   string            `json:"reserved_cpus"`
	ReservedMemory []json.RawMessage `json:"reserved_memory"`
	OSInstances    []struct {
		Status string         `json:"status"`
		CPUs   string         `json:"cpus"`
		Memory []ihk.MemChunk `json:"memory"`
	} `json:"os_instances"`
	Jobs []json.RawMessage `json:"jobs"`
}

func (v *vm) status() status {
	v.t.Helper()
	cmd := exec.Command(filepath.Join(v.bin, "lwkctl"), "status", "--json", "--config", v.conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	require.NoError(v.t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(v.t, err, errb.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		v.t.Fatal("lwkctl status did not finish within a minute")
	}
	var st status
	require.NoError(v.t, json.Unmarshal(out.Bytes(), &st), out.String())
	return st
}
