// Package steps names the side effects of the LWK lifecycle, in the order
// lwk-prolog performs them, and defines the data each one journals. The
// prolog (package apply) writes them, the epilog (package teardown) and
// lwkctl read them; the names are stable because journals outlive binaries.
package steps

import "github.com/slurm-lwk/slurm-lwk/pkg/ihk"

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
	WriteMarker   = "write_marker"
)

// All lists every step in prolog order. Tests that must cover every step
// (the fault-injection tables) iterate over it.
var All = []string{
	ReserveMemory, ReserveCPUs, CreateOS, AssignCPUs, AssignMemory,
	LoadImage, SetKernelArgs, Boot, WaitRunning, GrantDevice, WriteMarker,
}

// NotIHK are the steps that are not an IHK operation of the same name. The
// simulator's fault injection accepts them beside the IHK operations: its
// client wrapper covers the operations, apply's fault hook these.
var NotIHK = []string{WaitRunning, GrantDevice, WriteMarker}

// Memory is the data of reserve_memory and assign_memory.
type Memory struct {
	// Requested is what the plan asked for.
	Requested []ihk.MemChunk `json:"requested"`
	// Reserved, on reserve_memory done, is the chunks the driver actually
	// added to the reserved pool (it may split a request into several
	// physically contiguous chunks).
	Reserved []ihk.MemChunk `json:"reserved,omitempty"`
	// OS is the instance, for assign_memory.
	OS *int `json:"os,omitempty"`
}

// CPUs is the data of reserve_cpus and assign_cpus.
type CPUs struct {
	// CPUs are Linux CPU IDs, in assignment order.
	CPUs []int `json:"cpus"`
	// OS is the instance, for assign_cpus.
	OS *int `json:"os,omitempty"`
}

// OS is the data of the steps that act on one instance.
type OS struct {
	OS int `json:"os"`
	// Image or Kargs, for load_image and set_kernel_args.
	Image string `json:"image,omitempty"`
	Kargs string `json:"kargs,omitempty"`
}

// Device is the data of grant_device: the device node and the ownership it
// had before the job's user was given access.
type Device struct {
	OS   int    `json:"os"`
	Path string `json:"path"`
	UID  int    `json:"prev_uid"`
	GID  int    `json:"prev_gid"`
	Mode uint32 `json:"prev_mode"`
}

// Marker is the data of write_marker.
type Marker struct {
	Path string `json:"path"`
}
