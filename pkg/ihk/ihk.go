package ihk

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Client is every IHK operation the backends implement. Consumers declare
// the few they use (apply.IHK, teardown.IHK, nodestatus.IHK, monitor.IHK)
// and take those.
// Each call is one driver request: no backend waits or retries (the driver's
// own blocking aside); package retry holds the rules callers apply.
// Device-level operations act on the node's IHK device (/dev/mcd0);
// operations that take an os argument act on the OS instance /dev/mcos<os>.
// Implementations open and close the OS device around each call, so holding
// a Client never keeps an instance busy.
//
// IHK does not serialise its callers: resource queries and reservations race
// with each other. Callers that change reservations hold the node lock (see
// package apply) around a whole sequence of calls.
type Client interface {
	// ReserveCPUs takes the given Linux CPUs away from Linux (IHK offlines
	// them) and makes them available for assignment.
	ReserveCPUs(ctx context.Context, cpus []int) error
	// ReleaseCPUs gives reserved, unassigned CPUs back to Linux.
	ReleaseCPUs(ctx context.Context, cpus []int) error
	// ReservedCPUs lists the CPUs that are reserved and not assigned to any
	// OS instance, ascending.
	ReservedCPUs(ctx context.Context) ([]int, error)
	// ReserveMemory reserves physically contiguous memory per chunk; sizes are
	// multiples of MemoryGranule.
	ReserveMemory(ctx context.Context, chunks []MemChunk) error
	// ReleaseMemory releases reserved, unassigned chunks; each must match one
	// reserved chunk exactly (size and NUMA node).
	ReleaseMemory(ctx context.Context, chunks []MemChunk) error
	// ReservedMemory lists the reserved, unassigned chunks.
	ReservedMemory(ctx context.Context) ([]MemChunk, error)

	// CreateOS creates an OS instance and returns its index.
	CreateOS(ctx context.Context) (int, error)
	// DestroyOS shuts the instance down if needed and destroys it, returning
	// its CPUs and memory to the reserved pool. ErrBusy while any process
	// holds /dev/mcos<os> open.
	DestroyOS(ctx context.Context, os int) error
	// ListOS lists the existing OS instance indices, ascending.
	ListOS(ctx context.Context) ([]int, error)
	// DetectHangup runs the driver's hang detector once on the instance and
	// returns the resulting status.
	DetectHangup(ctx context.Context, os int) (Status, error)

	// AssignCPUs assigns reserved CPUs to the instance; the order defines the
	// LWK CPU numbering (the first CPU boots).
	AssignCPUs(ctx context.Context, os int, cpus []int) error
	// AssignedCPUs lists the instance's CPUs in LWK order.
	AssignedCPUs(ctx context.Context, os int) ([]int, error)
	// AssignMemory assigns reserved memory of the given sizes and nodes.
	AssignMemory(ctx context.Context, os int, chunks []MemChunk) error
	// AssignedMemory lists the instance's memory chunks.
	AssignedMemory(ctx context.Context, os int) ([]MemChunk, error)
	// SetIKCMap routes assigned CPUs' IKC interrupts to Linux CPUs
	// (IHK_OS_SET_IKC_MAP). The instance must be INITIAL (before LOAD and
	// BOOT); assigning a CPU resets its route to Linux CPU 0.
	SetIKCMap(ctx context.Context, os int, routes []IKCRoute) error
	// IKCMap lists the instance's routes, one per assigned CPU in LWK order.
	IKCMap(ctx context.Context, os int) ([]IKCRoute, error)
	// BuildID returns the build id the IHK driver was compiled with
	// (IHK_OS_GET_BUILDID). mcexec refuses to run when its own differs.
	BuildID(ctx context.Context, os int) (string, error)
	// LoadImage loads the kernel image at path (at most MaxPathLen bytes).
	LoadImage(ctx context.Context, os int, path string) error
	// SetKernelArgs sets the kernel command line (at most MaxKargsLen bytes,
	// must contain "hidos").
	SetKernelArgs(ctx context.Context, os int, kargs string) error
	// Boot boots the instance and returns once it is READY (the driver's
	// BOOT blocks until then); callers poll Status for RUNNING.
	Boot(ctx context.Context, os int) error
	// Shutdown shuts the instance down; it returns to NOT_BOOTED with its
	// resources handed back to the reserved pool.
	Shutdown(ctx context.Context, os int) error
	// Status reads the instance's status.
	Status(ctx context.Context, os int) (Status, error)

	// RegisterEvent creates an eventfd, registers it for events of type t on
	// the instance and returns it. The kernel keeps the registration until
	// DestroyOS; closing the fd does not remove it.
	RegisterEvent(ctx context.Context, os int, t EventType) (EventFD, error)
	// Rusage reads the instance's resource usage (cumulative since boot).
	Rusage(ctx context.Context, os int) (*Rusage, error)
	// ReadKmsg returns the instance's kernel message ring without consuming
	// it. It fails before boot and after shutdown.
	ReadKmsg(ctx context.Context, os int) ([]byte, error)
	// Freeze stops every LWK CPU of a RUNNING instance.
	Freeze(ctx context.Context, os int) error
	// Thaw resumes a FREEZING or FROZEN instance.
	Thaw(ctx context.Context, os int) error

	// PerfSet programs hardware counters on every LWK CPU and returns how
	// many were registered.
	PerfSet(ctx context.Context, os int, attrs []PerfAttr) (int, error)
	// PerfControl enables, disables or destroys the registered counters.
	PerfControl(ctx context.Context, os int, op PerfOp) error
	// PerfRead reads n counters, each summed over all LWK CPUs.
	PerfRead(ctx context.Context, os int, n int) ([]uint64, error)
}

// MemoryGranule is IHK's memory reservation unit (IHK_RESERVE_MEM_GRANULE).
// Units: bytes.
const MemoryGranule = 4 << 20

// MaxPathLen and MaxKargsLen are the driver's limits on the kernel image path
// and the kernel argument string. Units: bytes, excluding the NUL.
const (
	MaxPathLen  = 255
	MaxKargsLen = 255
)

// RequiredKarg must be among an LWK's kernel arguments: without it McKernel
// touches Linux's devices. Both backends refuse SET_KARGS without it (the
// real client before issuing the request), and lwk.conf requires it in every
// profile's fixed arguments.
const RequiredKarg = "hidos"

// MaxOSInstances is the driver's limit on OS instances per device (OS_MAX_MINOR).
const MaxOSInstances = 64

// MemChunk is a reserved or assigned range of physically contiguous memory on
// one NUMA node.
type MemChunk struct {
	// NUMANode is the Linux NUMA node the memory lives on.
	NUMANode int `json:"numa_node"`
	// Bytes is the chunk size. Units: bytes.
	Bytes uint64 `json:"bytes"`
}

// String formats the chunk the way ihkconfig does: "<bytes>@<node>".
func (c MemChunk) String() string { return fmt.Sprintf("%d@%d", c.Bytes, c.NUMANode) }

// Status is an OS instance status, with the kernel's IHK_OS_STATUS_* values.
type Status int

// Kernel status values (ihk/linux/include/ihk/status.h).
const (
	StatusNotBooted Status = 0
	StatusLoading   Status = 1
	StatusBooting   Status = 2
	StatusBooted    Status = 3
	StatusReady     Status = 4
	StatusRunning   Status = 5
	StatusFreezing  Status = 6
	StatusFrozen    Status = 7
	StatusShutdown  Status = 8
	StatusFailed    Status = 9
	StatusHungup    Status = 10
)

var statusNames = map[Status]string{
	StatusNotBooted: "NOT_BOOTED",
	StatusLoading:   "LOADING",
	StatusBooting:   "BOOTING",
	StatusBooted:    "BOOTED",
	StatusReady:     "READY",
	StatusRunning:   "RUNNING",
	StatusFreezing:  "FREEZING",
	StatusFrozen:    "FROZEN",
	StatusShutdown:  "SHUTDOWN",
	StatusFailed:    "FAILED",
	StatusHungup:    "HUNGUP",
}

// String returns the kernel's name for the status, e.g. "RUNNING".
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("UNKNOWN(%d)", int(s))
}

// MarshalText writes the status name, so JSON shows "RUNNING".
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a status name written by MarshalText.
func (s *Status) UnmarshalText(b []byte) error {
	for v, n := range statusNames {
		if n == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown ihk status %q", b)
}

// EventType selects which events an eventfd receives (enum ihk_os_eventfd_type).
type EventType int

// Event types. There is no shutdown event and no type 1.
const (
	EventOOM    EventType = 0
	EventStatus EventType = 2
	EventKmsg   EventType = 101
)

// EventFD is a registered event notification descriptor. Read blocks until
// the event counter is non-zero and returns and resets it.
type EventFD interface {
	Fd() int
	Read() (uint64, error)
	Close() error
}

// CPUActivity is one LWK CPU's entry of the monitor page the LWK shares
// with Linux (struct ihk_os_cpu_monitor). Backends that can read the page
// quietly (IHK_OS_GET_USAGE and IHK_OS_GET_CPU_USAGE: memory reads that
// neither interrupt the LWK nor write to the kernel log) have a method
// CPUActivity(ctx, os) ([]CPUActivity, error); it is not part of Client.
type CPUActivity struct {
	// State is the CPU's IHK_OS_MONITOR_* state (MonitorIdle...), without
	// the ALLOW_THAW_REQUEST flag.
	State int32
	// Counter grows on every LWK kernel entry and after each offloaded
	// system call; a CPU in MonitorKernel whose counter stands still is
	// hung.
	Counter uint64
}

// Monitor-page CPU states (IHK_OS_MONITOR_*, ihk_monitor.h).
const (
	MonitorNotBooted = 0
	MonitorIdle      = 1
	MonitorUser      = 2
	MonitorKernel    = 3
	MonitorFreezing  = 8
	MonitorFrozen    = 9
	MonitorPanic     = 99
)

// PerfOp is a PerfControl operation (PERF_EVENT_ENABLE/DISABLE/DESTROY).
type PerfOp int

// Perf control operations.
const (
	PerfEnable  PerfOp = 0
	PerfDisable PerfOp = 1
	PerfDestroy PerfOp = 2
)

// PerfAttr is one hardware counter to program (ihk_perf_event_attr); mcctrl
// reads only Config, ExcludeUser and ExcludeKernel.
type PerfAttr struct {
	// Config is the raw, architecture-specific event code.
	Config        uint64
	Disabled      bool
	Pinned        bool
	ExcludeUser   bool
	ExcludeKernel bool
	ExcludeHV     bool
	ExcludeIdle   bool
}

// Page-size classes of the rusage memory arrays (enum ihk_os_pgsize).
const (
	PageSize4K = iota
	PageSize64K
	PageSize2M
	PageSize32M
	PageSize1G
	PageSize16G
	PageSize512M
	PageSize4T
	NumPageSizes
)

// Rusage is struct ihk_os_rusage, decoded. All counters are cumulative since
// the instance booted; peaks are never reset.
type Rusage struct {
	// MemoryRSSBytes is anonymous user memory mapped now, per page-size class.
	MemoryRSSBytes [NumPageSizes]uint64 `json:"memory_rss_bytes"`
	// MemoryMappedFileBytes is file-backed user memory mapped now, per class.
	MemoryMappedFileBytes [NumPageSizes]uint64 `json:"memory_mapped_file_bytes"`
	// MemoryMaxUsageBytes is the peak user RSS since boot.
	MemoryMaxUsageBytes uint64 `json:"memory_max_usage_bytes"`
	// KmemUsageBytes and KmemMaxUsageBytes are LWK kernel memory now and at peak.
	KmemUsageBytes    uint64 `json:"kmem_usage_bytes"`
	KmemMaxUsageBytes uint64 `json:"kmem_max_usage_bytes"`
	// NUMABytes is user memory per LWK NUMA id, trimmed to the instance's
	// node count (to the last non-zero entry when the count is unknown).
	NUMABytes []uint64 `json:"numa_bytes"`
	// SystemTicks and UserTicks are CPU time summed over LWK CPUs.
	// Units: 10 ms ticks (USER_HZ), rounded up.
	SystemTicks uint64 `json:"system_ticks"`
	UserTicks   uint64 `json:"user_ticks"`
	// UserNanoseconds is user CPU time summed over LWK CPUs (system time is
	// not included). Units: ns.
	UserNanoseconds uint64 `json:"user_ns"`
	// PerCPUUserNanoseconds is user time per LWK CPU number (assign order),
	// trimmed to the instance's CPU count. Units: ns.
	PerCPUUserNanoseconds []uint64 `json:"percpu_user_ns"`
	// Threads and MaxThreads are LWK threads now and at peak.
	Threads    int32 `json:"threads"`
	MaxThreads int32 `json:"max_threads"`
}

// Sentinel errors that callers branch on. *Error matches them with errors.Is
// according to its errno.
var (
	// ErrBusy: the object is in use or in the wrong state for the request
	// (EBUSY).
	ErrBusy = errors.New("busy")
	// ErrNotFound: no such OS instance, or it is being torn down (ENOENT, and
	// EINVAL from DESTROY_OS/DETECT_HUNGUP on a missing index, see NotFound).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: bad arguments, or resources not in the state the request
	// needs (EINVAL, E2BIG).
	ErrInvalid = errors.New("invalid argument")
	// ErrTimeout: the operation did not finish in time (ETIMEDOUT, ETIME).
	ErrTimeout = errors.New("timed out")
	// ErrNoMemory: the driver could not supply the memory (ENOMEM).
	ErrNoMemory = errors.New("out of memory")
	// ErrPermission: the caller may not do this (EPERM, EACCES).
	ErrPermission = errors.New("permission denied")
)

// Error is a failed IHK operation.
type Error struct {
	// Op is the operation, named after the ioctl, e.g. "IHK_DEVICE_RESERVE_CPU".
	Op string
	// OS is the OS instance index, or -1 for device operations.
	OS int
	// Errno is the kernel's (or the simulator's) error number.
	Errno syscall.Errno
	// Detail optionally names the object acted on, e.g. "cpus 2-15".
	Detail string
	// NotFound marks an errno that means "no such instance" for this request
	// even though it is not ENOENT (DESTROY_OS returns EINVAL for a missing
	// index).
	NotFound bool
}

// Error formats "ihk IHK_OS_BOOT os 0 (cpus 2-15): device or resource busy".
func (e *Error) Error() string {
	s := "ihk " + e.Op
	if e.OS >= 0 {
		s += fmt.Sprintf(" os %d", e.OS)
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s + ": " + e.Errno.Error()
}

// Unwrap returns the errno, so errors.Is(err, syscall.EBUSY) works too.
func (e *Error) Unwrap() error { return e.Errno }

// Is maps the errno onto the package's sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBusy:
		return e.Errno == syscall.EBUSY
	case ErrNotFound:
		return e.Errno == syscall.ENOENT || e.NotFound
	case ErrInvalid:
		return (e.Errno == syscall.EINVAL || e.Errno == syscall.E2BIG) && !e.NotFound
	case ErrTimeout:
		return e.Errno == syscall.ETIMEDOUT || e.Errno == syscall.ETIME
	case ErrNoMemory:
		return e.Errno == syscall.ENOMEM
	case ErrPermission:
		return e.Errno == syscall.EPERM || e.Errno == syscall.EACCES
	}
	return false
}

// SubtractChunks returns the chunks of a that are not in b, each chunk of b
// cancelling one equal chunk of a (a multiset difference). Callers use it to
// tell which pool chunks a reservation added, or which belong to nobody else.
func SubtractChunks(a, b []MemChunk) []MemChunk {
	left := append([]MemChunk(nil), b...)
	var out []MemChunk
	for _, c := range a {
		found := false
		for i, l := range left {
			if l == c {
				left = append(left[:i], left[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			out = append(out, c)
		}
	}
	return out
}
