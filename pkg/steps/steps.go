// Package steps names the side effects of the LWK lifecycle, in the order
// lwk-prolog performs them, and defines the data each one journals. The
// prolog (package apply) writes them, the epilog (package teardown) and
// lwkctl read them; the names are stable because journals outlive binaries.
package steps

import (
	"encoding/json"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
)

// Step names, in prolog order.
const (
	ReserveMemory = "reserve_memory"
	ReserveCPUs   = "reserve_cpus"
	CreateOS      = "create_os"
	AssignCPUs    = "assign_cpus"
	AssignMemory  = "assign_memory"
	LoadImage     = "load_image"
	SetKernelArgs = "set_kernel_args"
	Boot          = "boot"
	WaitRunning   = "wait_running"
	GrantDevice   = "grant_device"
	// ConfineProxies creates the cgroups of the job's Linux side (v1) and
	// the root-only record the task wrapper joins by. Before write_marker:
	// no task runs through mcexec, and so none joins, until the marker is
	// there.
	ConfineProxies = "confine_proxies"
	WriteMarker    = "write_marker"
)

// DefragMemory is the optional pre-boot defragmentation of the job NUMA
// nodes, before reserve_memory. It is not in All: it runs only when the
// profile asks (Defrag=yes), and it holds nothing for the epilog to give
// back; an intent without done means the prolog died with a memory block
// possibly offline, which teardown brings back online.
const DefragMemory = "defrag_memory"

// All lists every step in prolog order. Tests that must cover every step
// (the fault-injection tables) iterate over it.
var All = []string{
	ReserveMemory, ReserveCPUs, CreateOS, AssignCPUs, AssignMemory,
	LoadImage, SetKernelArgs, Boot, WaitRunning, GrantDevice, ConfineProxies, WriteMarker,
}

// Prolog lists every step a prolog may journal, in prolog order: All with
// the optional DefragMemory first. Everything that accepts a step name
// (lwk.conf's TestKillAfterStep, the simulator's fault injection) accepts
// these.
func Prolog() []string { return append([]string{DefragMemory}, All...) }

// NotIHK are the steps that are not an IHK operation of the same name. The
// simulator's fault injection accepts them beside the IHK operations: its
// client wrapper covers the operations, apply's fault hook these.
var NotIHK = []string{DefragMemory, WaitRunning, GrantDevice, ConfineProxies, WriteMarker}

// OSIndex returns the OS instance the job's create_os step created, once
// that step is done: the one place a journal's OS index is decoded.
func OSIndex(rec *journal.Record) (int, bool) {
	st, ok := rec.Find(CreateOS)
	if !ok || st.State != journal.StateDone {
		return 0, false
	}
	var data OS
	if st.DecodeData(&data) != nil {
		return 0, false
	}
	return data.OS, true
}

// Payloads are decoded leniently (journal.Step.DecodeData): fields that
// older binaries wrote and nothing reads (an "os" in reserve_memory's and
// reserve_cpus' data, "image" and "kargs" beside an instance's "os",
// defrag_memory's "nodes") are ignored when an old journal is read.

// Memory is the data of reserve_memory.
type Memory struct {
	// Requested is what the plan asked for.
	Requested []ihk.MemChunk `json:"requested"`
	// Reserved, on reserve_memory done, is the chunks the driver actually
	// added to the reserved pool (it may split a request into several
	// physically contiguous chunks).
	Reserved []ihk.MemChunk `json:"reserved,omitempty"`
}

// CPUs is the data of reserve_cpus.
type CPUs struct {
	// CPUs are Linux CPU IDs, in assignment order.
	CPUs []int `json:"cpus"`
}

// OS is the data of the steps that act on one instance.
type OS struct {
	OS int `json:"os"`
}

// Device is the data of grant_device: the device node the job's user was
// given access to. Teardown takes that access away by making the node
// root's, mode 0600, again, whatever it was before: anyone who can open it
// can read kernel memory. (Journals before this field set also recorded the
// previous owner, which nothing read; decoding ignores it.)
type Device struct {
	OS   int    `json:"os"`
	Path string `json:"path"`
}

// Confinement is the data of confine_proxies: the cgroup mode and, under
// v1, the job's directory in each hierarchy (known before they exist, so the
// intent names them), and the record's path.
type Confinement struct {
	Mode    string            `json:"mode"`
	JobDirs map[string]string `json:"job_dirs,omitempty"`
	Record  string            `json:"record"`
}

// Defrag is the data of defrag_memory: on done, what the step did
// (duration, contiguous share of the job nodes before and after, blocks
// evacuated and refused, per-step outcome), for the monitor and the admin.
type Defrag struct {
	// OnlineKernel says the step onlines evacuated job blocks as kernel
	// memory (DefragOnlineKernel=yes).
	OnlineKernel bool `json:"online_kernel,omitempty"`
	// MovableBlocks, journaled with the intent when OnlineKernel is set,
	// are the job blocks that were in ZONE_MOVABLE before the step: any of
	// them may be kernel memory afterwards, and the epilog, once the LWK
	// memory is released, turns them back into ZONE_MOVABLE (also after a
	// prolog killed halfway).
	MovableBlocks []int `json:"movable_blocks,omitempty"`
	// OfflineBlocks, journaled with the intent, are the job blocks offline
	// before the step (an admin's, a failed one): the epilog leaves them
	// offline.
	OfflineBlocks []int           `json:"offline_blocks,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	// Err is set when the step could not run at all (it never fails the
	// prolog: defragmentation is an optimisation).
	Err string `json:"error,omitempty"`
}
