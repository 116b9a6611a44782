//go:build linux && (amd64 || arm64)

package ioctl

// Request numbers. They are plain constants, base + index, with no _IOC
// direction or size bits (ihk/linux/include/ihk/ihk_host_user.h), and are
// passed to ioctl(2) unchanged.
const (
	deviceBase = 0x112900   // /dev/mcd0
	osBase     = 0x112a00   // /dev/mcosN
	auxBase    = 0x11290100 // /dev/mcosN, handled by mcctrl while booted
)

// Device requests on /dev/mcd0.
const (
	reqDeviceCreateOS     = deviceBase + 0x00 // arg ignored; returns the new OS index
	reqDeviceDestroyOS    = deviceBase + 0x01 // arg = OS index by value
	reqDeviceReserveCPU   = deviceBase + 0x02 // arg = *cpuReq
	reqDeviceReleaseCPU   = deviceBase + 0x03 // arg = *cpuReq
	reqDeviceReserveMem   = deviceBase + 0x04 // arg = *memReq
	reqDeviceReleaseMem   = deviceBase + 0x05 // arg = *memReq
	reqDeviceQueryCPU     = deviceBase + 0x06 // arg = *cpuReq (in num_cpus, out cpus[])
	reqDeviceQueryMem     = deviceBase + 0x07 // arg = *memReq (num_chunks 0: count only)
	reqDeviceGetNumCPUs   = deviceBase + 0x0c // no arg; returns the count
	reqDeviceDetectHungup = deviceBase + 0x0f // arg = OS index by value; returns a status
)

// OS requests on /dev/mcosN.
const (
	reqOSLoad            = osBase + 0x00 // arg = NUL-terminated image path
	reqOSBoot            = osBase + 0x01 // arg = flag 0 by value; returns at READY
	reqOSShutdown        = osBase + 0x02 // arg = flag 0 by value
	reqOSSetKargs        = osBase + 0x04 // arg = NUL-terminated string
	reqOSStatus          = osBase + 0x14 // no arg; returns IHK_OS_STATUS_*
	reqOSRegisterEvent   = osBase + 0x15 // arg = *eventfdDesc
	reqOSReadKmsg        = osBase + 0x20 // arg = buffer of kmsgSize bytes; returns bytes copied
	reqOSAssignCPU       = osBase + 0x22 // arg = *cpuReq
	reqOSAssignMem       = osBase + 0x24 // arg = *memReq
	reqOSQueryCPU        = osBase + 0x26 // arg = *cpuReq (num_cpus must equal the count)
	reqOSQueryMem        = osBase + 0x27 // arg = *memReq (num_chunks 0: count only)
	reqOSSetIKCMap       = osBase + 0x28 // arg = *ikcReq
	reqOSGetIKCMap       = osBase + 0x29 // arg = *ikcReq (num_cpus must equal the count)
	reqOSFreeze          = osBase + 0x30 // no arg
	reqOSThaw            = osBase + 0x31 // no arg
	reqOSGetUsage        = osBase + 0x32 // arg = *osMonitor (header only, out)
	reqOSGetCPUUsage     = osBase + 0x33 // arg = *[num_processors]cpuMonitor (out)
	reqOSGetNumNUMANodes = osBase + 0x34 // no arg; returns the count
	reqOSGetBuildID      = osBase + 0x37 // arg = char buffer (out, NUL-terminated)
	reqOSGetNumCPUs      = osBase + 0x38 // no arg; returns the count
)

// mcctrl's aux requests on /dev/mcosN. They exist only while the OS is booted
// (EINVAL otherwise).
const (
	reqAuxPerfNum     = auxBase + 0x00 // arg = event count by value
	reqAuxPerfSet     = auxBase + 0x01 // arg = *[n]perfEventAttr; returns the number registered
	reqAuxPerfGet     = auxBase + 0x02 // arg = *[n]uint64 (out)
	reqAuxPerfEnable  = auxBase + 0x03 // no arg
	reqAuxPerfDisable = auxBase + 0x04 // no arg
	reqAuxPerfDestroy = auxBase + 0x05 // no arg
	reqAuxGetrusage   = auxBase + 0x06 // arg = *getrusageDesc
)

// requestNames maps each request to the name used in *ihk.Error.Op.
var requestNames = map[uint32]string{
	reqDeviceCreateOS:     "IHK_DEVICE_CREATE_OS",
	reqDeviceDestroyOS:    "IHK_DEVICE_DESTROY_OS",
	reqDeviceReserveCPU:   "IHK_DEVICE_RESERVE_CPU",
	reqDeviceReleaseCPU:   "IHK_DEVICE_RELEASE_CPU",
	reqDeviceReserveMem:   "IHK_DEVICE_RESERVE_MEM",
	reqDeviceReleaseMem:   "IHK_DEVICE_RELEASE_MEM",
	reqDeviceQueryCPU:     "IHK_DEVICE_QUERY_CPU",
	reqDeviceQueryMem:     "IHK_DEVICE_QUERY_MEM",
	reqDeviceGetNumCPUs:   "IHK_DEVICE_GET_NUM_CPUS",
	reqDeviceDetectHungup: "IHK_DEVICE_DETECT_HUNGUP",
	reqOSLoad:             "IHK_OS_LOAD",
	reqOSBoot:             "IHK_OS_BOOT",
	reqOSShutdown:         "IHK_OS_SHUTDOWN",
	reqOSSetKargs:         "IHK_OS_SET_KARGS",
	reqOSStatus:           "IHK_OS_STATUS",
	reqOSRegisterEvent:    "IHK_OS_REGISTER_EVENT",
	reqOSReadKmsg:         "IHK_OS_READ_KMSG",
	reqOSAssignCPU:        "IHK_OS_ASSIGN_CPU",
	reqOSAssignMem:        "IHK_OS_ASSIGN_MEM",
	reqOSQueryCPU:         "IHK_OS_QUERY_CPU",
	reqOSQueryMem:         "IHK_OS_QUERY_MEM",
	reqOSSetIKCMap:        "IHK_OS_SET_IKC_MAP",
	reqOSGetIKCMap:        "IHK_OS_GET_IKC_MAP",
	reqOSGetBuildID:       "IHK_OS_GET_BUILDID",
	reqOSFreeze:           "IHK_OS_FREEZE",
	reqOSThaw:             "IHK_OS_THAW",
	reqOSGetUsage:         "IHK_OS_GET_USAGE",
	reqOSGetCPUUsage:      "IHK_OS_GET_CPU_USAGE",
	reqOSGetNumNUMANodes:  "IHK_OS_GET_NUM_NUMA_NODES",
	reqOSGetNumCPUs:       "IHK_OS_GET_NUM_CPUS",
	reqAuxPerfNum:         "IHK_OS_AUX_PERF_NUM",
	reqAuxPerfSet:         "IHK_OS_AUX_PERF_SET",
	reqAuxPerfGet:         "IHK_OS_AUX_PERF_GET",
	reqAuxPerfEnable:      "IHK_OS_AUX_PERF_ENABLE",
	reqAuxPerfDisable:     "IHK_OS_AUX_PERF_DISABLE",
	reqAuxPerfDestroy:     "IHK_OS_AUX_PERF_DESTROY",
	reqAuxGetrusage:       "IHK_OS_GETRUSAGE",
}

// Driver limits and sizes.
const (
	// maxCPUs is SMP_MAX_CPUS: the most CPUs per request, and the bound on
	// every CPU id, in the IHK-SMP driver.
	maxCPUs = 512
	// maxNUMANodes is IHK_MAX_NUM_NUMA_NODES.
	maxNUMANodes = 1024
	// maxRusageCPUs is IHK_MAX_NUM_CPUS, the length of the per-CPU rusage array.
	maxRusageCPUs = 1024
	// kmsgSize is IHK_KMSG_SIZE (4 MiB - 4096), the buffer READ_KMSG needs.
	// Units: bytes.
	kmsgSize = 4<<20 - 4096
	// rusageSize is sizeof(struct ihk_os_rusage). Units: bytes.
	rusageSize = 16568
	// maxSizeRatioAll and reserveTimeoutSeconds are libihk's defaults for the
	// RESERVE_MEM tuning fields (IHK_RESERVE_MEM_MAX_SIZE_RATIO_ALL and
	// IHK_RESERVE_MEM_TIMEOUT). Zero in either makes the driver give up early.
	maxSizeRatioAll       = 98
	reserveTimeoutSeconds = 30
)

// cpuReq mirrors struct ihk_cpu_req (16 bytes).
type cpuReq struct {
	CPUs    *int32 // int *cpus: Linux CPU ids
	NumCPUs int32  // int num_cpus
	_       int32  // padding
}

// memReq mirrors struct ihk_mem_req (32 bytes). size_t is 8 bytes on the
// LP64 targets this file builds for.
type memReq struct {
	Sizes           *uint64 // size_t *sizes: bytes per chunk
	NUMAIDs         *int32  // int *numa_ids
	NumChunks       int32   // int num_chunks (in/out for QUERY)
	MinChunkSize    int32   // int min_chunk_size, RESERVE only. Units: bytes.
	MaxSizeRatioAll int32   // int max_size_ratio_all, RESERVE only. Units: percent.
	Timeout         int32   // int timeout, RESERVE only. Units: seconds.
}

// ikcReq mirrors struct ihk_ikc_req (24 bytes), the argument of
// IHK_OS_SET_IKC_MAP and IHK_OS_GET_IKC_MAP.
type ikcReq struct {
	SrcCPUs *int32 // int *src_cpus
	DstCPUs *int32 // int *dst_cpus
	NumCPUs int32  // int num_cpus
	_       int32  // padding
}

// eventfdDesc mirrors struct ihk_os_ioctl_eventfd_desc (8 bytes).
type eventfdDesc struct {
	FD   int32 // int fd: an eventfd
	Type int32 // enum ihk_os_eventfd_type
}

// getrusageDesc mirrors struct mcctrl_ioctl_getrusage_desc (16 bytes).
type getrusageDesc struct {
	Rusage     *byte  // struct ihk_os_rusage *rusage
	SizeRusage uint64 // size_t size_rusage. Units: bytes.
}

// perfEventAttr mirrors ihk_perf_event_attr (16 bytes): the event code, then
// six one-bit fields packed LSB-first into the unsigned int at offset 8.
type perfEventAttr struct {
	Config uint64 // unsigned long config
	Flags  uint32 // bitfields, see perfFlag*
	_      uint32 // tail padding
}

// Bits of perfEventAttr.Flags, in declaration order of the C bitfields.
const (
	perfFlagDisabled      = 1 << 0
	perfFlagPinned        = 1 << 1
	perfFlagExcludeUser   = 1 << 2
	perfFlagExcludeKernel = 1 << 3
	perfFlagExcludeHV     = 1 << 4
	perfFlagExcludeIdle   = 1 << 5
)

// osMonitor mirrors the header of struct ihk_os_monitor (1032 bytes) that
// IHK_OS_GET_USAGE copies; cpuMonitor mirrors struct ihk_os_cpu_monitor (24
// bytes), of which IHK_OS_GET_CPU_USAGE copies num_processors.
type osMonitor struct {
	NumProcessors uint64      // unsigned long num_processors
	Reserve       [128]uint64 // unsigned long reserve[128]
}

type cpuMonitor struct {
	Status    int32  // int status (IHK_OS_MONITOR_*)
	StatusBak int32  // int status_bak
	Counter   uint64 // unsigned long counter
	OCounter  uint64 // unsigned long ocounter
}

// osRusage mirrors struct ihk_os_rusage (16,568 bytes, no padding). It is
// filled from the GETRUSAGE byte buffer with encoding/binary, never by
// handing its address to the kernel.
type osRusage struct {
	MemoryStatRSS        [8]uint64             // unsigned long memory_stat_rss[IHK_MAX_NUM_PGSIZES]
	MemoryStatMappedFile [8]uint64             // unsigned long memory_stat_mapped_file[8]
	MemoryMaxUsage       uint64                // unsigned long memory_max_usage
	MemoryKmemUsage      uint64                // unsigned long memory_kmem_usage
	MemoryKmemMaxUsage   uint64                // unsigned long memory_kmem_max_usage
	MemoryNUMAStat       [maxNUMANodes]uint64  // unsigned long memory_numa_stat[1024]
	CPUAcctStatSystem    uint64                // unsigned long cpuacct_stat_system
	CPUAcctStatUser      uint64                // unsigned long cpuacct_stat_user
	CPUAcctUsage         uint64                // unsigned long cpuacct_usage
	CPUAcctUsagePerCPU   [maxRusageCPUs]uint64 // unsigned long cpuacct_usage_percpu[1024]
	NumThreads           int32                 // int num_threads
	MaxNumThreads        int32                 // int max_num_threads
}
