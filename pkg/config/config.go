package config

import (
	"time"

	"k8s.io/utils/cpuset"
)

// Backend names the IHK backend. It is never chosen silently: lwk.conf must
// name one.
type Backend string

// Backends.
const (
	// BackendIHK is the real IHK driver (ioctls on /dev/mcd0, /dev/mcosN).
	BackendIHK Backend = "ihk"
	// BackendSim is the simulated driver for machines without IHK.
	BackendSim Backend = "sim"
)

// DefaultPath is where slurm-lwk looks for the node configuration.
const DefaultPath = "/etc/slurm/lwk.conf"

// Config is the parsed node configuration (lwk.conf).
type Config struct {
	// Backend is the IHK backend (IHKBackend=ihk|sim). Required.
	Backend Backend

	// OSCores are the CPUs kept for the system, slurmd and the mcexec proxies
	// (OSCores=0-1), normally slurm.conf's CpuSpecList in machine numbering.
	// Never given to an LWK.
	OSCores cpuset.CPUSet
	// SystemNUMANodes and JobNUMANodes split the node's memory as in the
	// paper (§4.3): job memory comes only from JobNUMANodes. Both empty means
	// the node is not split; setting one requires the other.
	SystemNUMANodes cpuset.CPUSet
	JobNUMANodes    cpuset.CPUSet

	// ProxyMemoryBytes caps the memory of a job's mcexec proxies
	// (ProxyMemory=128M). Units: bytes.
	ProxyMemoryBytes uint64
	// ProxyCPUPercent is the proxies' CPU bandwidth as a percentage of the OS
	// cores' capacity (ProxyCPUShare=50%): quota = period × |OSCores| × pct/100.
	ProxyCPUPercent int
	// ProxyCPUPeriod is the CFS period (ProxyCPUPeriod=100ms).
	ProxyCPUPeriod time.Duration

	// CgroupPrefix is the directory, under each cgroup v1 hierarchy, of the
	// jobs' proxy cgroups (CgroupPrefix=slurm-lwk).
	CgroupPrefix string

	// LWKMemoryPercent is the share of the job's memory on the node that goes
	// to the LWK when the request does not say (LWKMemoryShare=90%).
	LWKMemoryPercent int
	// LWKMemoryHeadroomPercent is the share of each NUMA node's MemFree the
	// planner never reserves (LWKMemoryHeadroom=2%): MemFree counts pages
	// below the zone watermarks and in blocks too fragmented for IHK's
	// 4 MiB chunks, so a reservation of all of it fails or takes long.
	LWKMemoryHeadroomPercent int

	// McexecBuildID is the IHK build id the site's mcexec was compiled
	// against (McexecBuildID=, what `ihkosctl 0 get buildid` printed on the
	// build host). When set, the prolog compares IHK_OS_GET_BUILDID with it
	// and fails before booting on a mismatch, instead of every task failing
	// in mcexec. Empty: not checked (the driver's id is logged).
	McexecBuildID string

	// DefaultProfile is the profile a bare --lwk-mode selects
	// (DefaultProfile=...); empty means the first profile defined.
	DefaultProfile string
	// Profiles are the LWK profiles by name (Profile=NAME Image=... lines).
	Profiles map[string]Profile
	// ProfileNames are the profile names in the order the file defines them.
	ProfileNames []string

	// StateDir holds journals and the node lock
	// (StateDir=/run/slurm-lwk/state). Root-only. It belongs on tmpfs: IHK's
	// reservations and OS instances do not survive a reboot, so neither
	// should the journal that describes them.
	StateDir string
	// RunDir holds the per-job marker files <RunDir>/job-<jobid> (content
	// "os=<N>\n") that lwk-prolog writes once the LWK is up and lwk-epilog
	// removes; the SPANK shim reads them (RunDir=/run/slurm-lwk). Root-only
	// (0700). Must match the shim's rundir= plugstack.conf argument.
	RunDir string
	// DevDir is where the IHK device nodes live (DevDir=/dev): mcd0, mcosN.
	// With the simulated backend it defaults to <SimStateDir>/dev, where the
	// simulator keeps its stand-in files.
	DevDir string
	// SysfsRoot is the root under which sys/devices/system is read
	// (SysfsRoot=/). Tests and the simulated demo point it at a fixture.
	SysfsRoot string
	// LogDir receives per-job LWK kernel message logs (LogDir=/var/log/slurm-lwk).
	LogDir string

	// SimStateDir is the simulated backend's shared state (SimStateDir=...).
	SimStateDir string
	// SimBootDelay is how long a simulated boot takes (SimBootDelay=2s).
	SimBootDelay time.Duration
	// SimOfflineCPUs gives the simulator IHK's real Linux-side effect on
	// CPUs (SimOfflineCPUs=yes): reserving takes them offline through
	// <SysfsRoot>/sys/devices/system/cpu/cpuN/online, releasing brings them
	// back. Off by default (the demo's SysfsRoot is a fixture); only for a
	// throw-away machine such as the VM harness's guest.
	SimOfflineCPUs bool

	// McexecPath is the mcexec binary tasks run through
	// (McexecPath=/usr/bin/mcexec; the simulator's stand-in in sim mode).
	McexecPath string
	// ScontrolPath is the scontrol binary (ScontrolPath=/usr/bin/scontrol).
	ScontrolPath string
	// ScancelPath is the scancel binary (ScancelPath=/usr/bin/scancel), used
	// to cancel a job whose request the node cannot satisfy.
	ScancelPath string
	// SqueuePath is the squeue binary (SqueuePath=/usr/bin/squeue), used to
	// read a job's comment before appending to it.
	SqueuePath string
	// FailureReasonField is the job field lwk-monitor appends a panic,
	// hang or OOM reason to while the job runs: "AdminComment" (default;
	// `scontrol show job` shows it to the user, sacct after the job),
	// "Comment" (stored by accounting only with
	// AccountingStoreFlags=job_comment) or "none".
	FailureReasonField string

	// BootTimeout bounds BOOT plus the wait for RUNNING (BootTimeout=120s).
	BootTimeout time.Duration
	// DestroyTimeout bounds teardown's retries of DESTROY_OS on EBUSY
	// (DestroyTimeout=30s).
	DestroyTimeout time.Duration
	// LockTimeout bounds the wait for the node lock (LockTimeout=240s); a
	// prolog holds the lock for a whole boot and its rollback.
	LockTimeout time.Duration

	// TestKillAfterStep, test only: lwk-prolog SIGKILLs itself right after
	// this journal step (a steps.All name, or defrag_memory) succeeded.
	// lwknode.ArmTestKill honours it only in a root-owned lwk.conf no group
	// or other may write. Empty (the default): never.
	TestKillAfterStep string
}

// Profile is one bootable LWK configuration.
type Profile struct {
	// Name is the profile name users pass in --lwk-mode.
	Name string
	// Image is the absolute path of the kernel image (at most 255 bytes).
	Image string
	// Kargs are the fixed kernel arguments, in order; they must include
	// "hidos".
	Kargs []string
	// AllowedKargs are the kernel arguments users may add with kargs=. An
	// entry ending in "=" allows any value for that key ("dump_level=").
	AllowedKargs []string
	// ProxyMemoryBytes, ProxyCPUPercent and ProxyCPUPeriod override the
	// node's proxy limits for jobs of this profile; zero: the node's.
	ProxyMemoryBytes uint64
	ProxyCPUPercent  int
	ProxyCPUPeriod   time.Duration
	// Defrag is the pre-boot defragmentation of the job NUMA nodes the
	// prolog runs right before reserving LWK memory (Defrag=yes,
	// DefragDropCaches=yes, DefragBudget=10s). Off by default.
	Defrag DefragPolicy
	// PerfEvents are the CPU performance counters lwk-monitor programs on
	// the LWK of this profile's jobs (PerfEvents=0x3c,0xc0:uk; at most
	// MaxPerfEvents). Empty: none.
	PerfEvents []PerfEvent
}

// PerfEvent is one CPU performance counter of a profile.
type PerfEvent struct {
	// Code is the raw, architecture-specific event code (IHK's
	// ihk_perf_event_attr.config).
	Code uint64
	// User and Kernel say which CPU modes are counted (at least one).
	User, Kernel bool
}

// ProxyLimits returns the proxy limits for jobs of a profile: the profile's
// overrides, else the node's. Units: bytes, percent of the OS cores.
func (c *Config) ProxyLimits(p Profile) (memoryBytes uint64, cpuPercent int, period time.Duration) {
	memoryBytes, cpuPercent, period = c.ProxyMemoryBytes, c.ProxyCPUPercent, c.ProxyCPUPeriod
	if p.ProxyMemoryBytes != 0 {
		memoryBytes = p.ProxyMemoryBytes
	}
	if p.ProxyCPUPercent != 0 {
		cpuPercent = p.ProxyCPUPercent
	}
	if p.ProxyCPUPeriod != 0 {
		period = p.ProxyCPUPeriod
	}
	return memoryBytes, cpuPercent, period
}

// DefaultDefragBudget bounds the pre-boot defragmentation when the
// profile does not say (DefragBudget=).
const DefaultDefragBudget = 10 * time.Second

// DefragPolicy is a profile's pre-boot defragmentation.
type DefragPolicy struct {
	// Enabled runs it (Defrag=yes): compact the job nodes and offline and
	// online their partly used Movable memory blocks.
	Enabled bool `json:"enabled"`
	// DropCaches also drops the clean page cache first
	// (DefragDropCaches=yes); drop_caches is machine-wide, so only where
	// the site allows it.
	DropCaches bool `json:"drop_caches,omitempty"`
	// Budget bounds the whole step (DefragBudget=10s); steps not started
	// in time are skipped (conversions to kernel memory excepted).
	Budget time.Duration `json:"budget_ns,omitempty"`
	// OnlineKernel (DefragOnlineKernel=yes) also evacuates the job nodes'
	// partly used Normal blocks and onlines every evacuated job block as
	// kernel memory, Movable ones included, so that IHK's reservation
	// (GFP_KERNEL, never from ZONE_MOVABLE since Linux 4.14) can take
	// them; the epilog turns the blocks that were Movable back into
	// ZONE_MOVABLE after releasing the LWK memory.
	OnlineKernel bool `json:"online_kernel,omitempty"`
}
