//go:build linux && (amd64 || arm64)

package ioctl

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// The want values below are copied from ihk_host_user.h at IHK 3114d9e7 and
// mcctrl at McKernel e597be09 (the sources doc.go names).
func TestRequestNumbers(t *testing.T) {
	tests := []struct {
		name string
		got  uint32
		want uint32
	}{
		{"IHK_DEVICE_CREATE_OS", reqDeviceCreateOS, 0x112900},
		{"IHK_DEVICE_DESTROY_OS", reqDeviceDestroyOS, 0x112901},
		{"IHK_DEVICE_RESERVE_CPU", reqDeviceReserveCPU, 0x112902},
		{"IHK_DEVICE_RELEASE_CPU", reqDeviceReleaseCPU, 0x112903},
		{"IHK_DEVICE_RESERVE_MEM", reqDeviceReserveMem, 0x112904},
		{"IHK_DEVICE_RELEASE_MEM", reqDeviceReleaseMem, 0x112905},
		{"IHK_DEVICE_QUERY_CPU", reqDeviceQueryCPU, 0x112906},
		{"IHK_DEVICE_QUERY_MEM", reqDeviceQueryMem, 0x112907},
		{"IHK_DEVICE_GET_NUM_CPUS", reqDeviceGetNumCPUs, 0x11290c},
		{"IHK_DEVICE_DETECT_HUNGUP", reqDeviceDetectHungup, 0x11290f},
		{"IHK_OS_LOAD", reqOSLoad, 0x112a00},
		{"IHK_OS_BOOT", reqOSBoot, 0x112a01},
		{"IHK_OS_SHUTDOWN", reqOSShutdown, 0x112a02},
		{"IHK_OS_SET_KARGS", reqOSSetKargs, 0x112a04},
		{"IHK_OS_STATUS", reqOSStatus, 0x112a14},
		{"IHK_OS_REGISTER_EVENT", reqOSRegisterEvent, 0x112a15},
		{"IHK_OS_READ_KMSG", reqOSReadKmsg, 0x112a20},
		{"IHK_OS_ASSIGN_CPU", reqOSAssignCPU, 0x112a22},
		{"IHK_OS_ASSIGN_MEM", reqOSAssignMem, 0x112a24},
		{"IHK_OS_QUERY_CPU", reqOSQueryCPU, 0x112a26},
		{"IHK_OS_QUERY_MEM", reqOSQueryMem, 0x112a27},
		{"IHK_OS_SET_IKC_MAP", reqOSSetIKCMap, 0x112a28},
		{"IHK_OS_GET_IKC_MAP", reqOSGetIKCMap, 0x112a29},
		{"IHK_OS_GET_BUILDID", reqOSGetBuildID, 0x112a37},
		{"IHK_OS_FREEZE", reqOSFreeze, 0x112a30},
		{"IHK_OS_THAW", reqOSThaw, 0x112a31},
		{"IHK_OS_GET_USAGE", reqOSGetUsage, 0x112a32},
		{"IHK_OS_GET_CPU_USAGE", reqOSGetCPUUsage, 0x112a33},
		{"IHK_OS_GET_NUM_NUMA_NODES", reqOSGetNumNUMANodes, 0x112a34},
		{"IHK_OS_GET_NUM_CPUS", reqOSGetNumCPUs, 0x112a38},
		{"IHK_OS_AUX_PERF_NUM", reqAuxPerfNum, 0x11290100},
		{"IHK_OS_AUX_PERF_SET", reqAuxPerfSet, 0x11290101},
		{"IHK_OS_AUX_PERF_GET", reqAuxPerfGet, 0x11290102},
		{"IHK_OS_AUX_PERF_ENABLE", reqAuxPerfEnable, 0x11290103},
		{"IHK_OS_AUX_PERF_DISABLE", reqAuxPerfDisable, 0x11290104},
		{"IHK_OS_AUX_PERF_DESTROY", reqAuxPerfDestroy, 0x11290105},
		{"IHK_OS_GETRUSAGE", reqAuxGetrusage, 0x11290106},
	}
	require.Len(t, requestNames, len(tests), "every request used must be pinned here")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.got, "request number (%#x)", tc.got)
			require.Equal(t, tc.name, requestNames[tc.got], "name used in errors")
		})
	}
}

// TestLayouts recomputes every mirrored struct's size and field offsets from
// the Go types and compares them with the layouts of IHK's ihk_host_user.h and ihk_rusage.h.
func TestLayouts(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"ihk_cpu_req size", unsafe.Sizeof(cpuReq{}), 16},
		{"ihk_cpu_req.cpus", unsafe.Offsetof(cpuReq{}.CPUs), 0},
		{"ihk_cpu_req.num_cpus", unsafe.Offsetof(cpuReq{}.NumCPUs), 8},

		{"ihk_mem_req size", unsafe.Sizeof(memReq{}), 32},
		{"ihk_mem_req.sizes", unsafe.Offsetof(memReq{}.Sizes), 0},
		{"ihk_mem_req.numa_ids", unsafe.Offsetof(memReq{}.NUMAIDs), 8},
		{"ihk_mem_req.num_chunks", unsafe.Offsetof(memReq{}.NumChunks), 16},
		{"ihk_mem_req.min_chunk_size", unsafe.Offsetof(memReq{}.MinChunkSize), 20},
		{"ihk_mem_req.max_size_ratio_all", unsafe.Offsetof(memReq{}.MaxSizeRatioAll), 24},
		{"ihk_mem_req.timeout", unsafe.Offsetof(memReq{}.Timeout), 28},

		{"ihk_ikc_req size", unsafe.Sizeof(ikcReq{}), 24},
		{"ihk_ikc_req.src_cpus", unsafe.Offsetof(ikcReq{}.SrcCPUs), 0},
		{"ihk_ikc_req.dst_cpus", unsafe.Offsetof(ikcReq{}.DstCPUs), 8},
		{"ihk_ikc_req.num_cpus", unsafe.Offsetof(ikcReq{}.NumCPUs), 16},

		{"eventfd_desc size", unsafe.Sizeof(eventfdDesc{}), 8},
		{"eventfd_desc.fd", unsafe.Offsetof(eventfdDesc{}.FD), 0},
		{"eventfd_desc.type", unsafe.Offsetof(eventfdDesc{}.Type), 4},

		{"getrusage_desc size", unsafe.Sizeof(getrusageDesc{}), 16},
		{"getrusage_desc.rusage", unsafe.Offsetof(getrusageDesc{}.Rusage), 0},
		{"getrusage_desc.size_rusage", unsafe.Offsetof(getrusageDesc{}.SizeRusage), 8},

		{"ihk_perf_event_attr size", unsafe.Sizeof(perfEventAttr{}), 16},
		{"ihk_perf_event_attr.config", unsafe.Offsetof(perfEventAttr{}.Config), 0},
		{"ihk_perf_event_attr bitfields", unsafe.Offsetof(perfEventAttr{}.Flags), 8},

		{"ihk_os_monitor header size", unsafe.Sizeof(osMonitor{}), 1032},
		{"ihk_os_monitor.num_processors", unsafe.Offsetof(osMonitor{}.NumProcessors), 0},
		{"ihk_os_monitor.reserve", unsafe.Offsetof(osMonitor{}.Reserve), 8},
		{"ihk_os_cpu_monitor size", unsafe.Sizeof(cpuMonitor{}), 24},
		{"ihk_os_cpu_monitor.status", unsafe.Offsetof(cpuMonitor{}.Status), 0},
		{"ihk_os_cpu_monitor.status_bak", unsafe.Offsetof(cpuMonitor{}.StatusBak), 4},
		{"ihk_os_cpu_monitor.counter", unsafe.Offsetof(cpuMonitor{}.Counter), 8},
		{"ihk_os_cpu_monitor.ocounter", unsafe.Offsetof(cpuMonitor{}.OCounter), 16},

		{"ihk_os_rusage size", unsafe.Sizeof(osRusage{}), 16568},
		{"ihk_os_rusage size (rusageSize)", rusageSize, 16568},
		{"ihk_os_rusage size (encoding/binary)", uintptr(binary.Size(osRusage{})), 16568},
		{"ihk_os_rusage.memory_stat_rss", offMemoryStatRSS, 0},
		{"ihk_os_rusage.memory_stat_mapped_file", offMemoryStatMappedFile, 64},
		{"ihk_os_rusage.memory_max_usage", offMemoryMaxUsage, 128},
		{"ihk_os_rusage.memory_kmem_usage", offMemoryKmemUsage, 136},
		{"ihk_os_rusage.memory_kmem_max_usage", offMemoryKmemMaxUsage, 144},
		{"ihk_os_rusage.memory_numa_stat", offMemoryNUMAStat, 152},
		{"ihk_os_rusage.cpuacct_stat_system", offCPUAcctStatSystem, 8344},
		{"ihk_os_rusage.cpuacct_stat_user", offCPUAcctStatUser, 8352},
		{"ihk_os_rusage.cpuacct_usage", offCPUAcctUsage, 8360},
		{"ihk_os_rusage.cpuacct_usage_percpu", offCPUAcctUsagePerCPU, 8368},
		{"ihk_os_rusage.num_threads", offNumThreads, 16560},
		{"ihk_os_rusage.max_num_threads", offMaxNumThreads, 16564},

		{"IHK_KMSG_SIZE", kmsgSize, 4190208},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.got)
		})
	}
}

// TestPerfAttrBits checks the bitfield packing against IHK's header
// example (disabled + exclude_kernel → byte 8 = 0x09) and each bit alone.
func TestPerfAttrBits(t *testing.T) {
	tests := []struct {
		name string
		attr ihk.PerfAttr
		want byte // byte 8 of the 16-byte struct
	}{
		{"none", ihk.PerfAttr{Config: 0xc0}, 0x00},
		{"disabled+exclude_kernel", ihk.PerfAttr{Disabled: true, ExcludeKernel: true}, 0x09},
		{"disabled", ihk.PerfAttr{Disabled: true}, 0x01},
		{"pinned", ihk.PerfAttr{Pinned: true}, 0x02},
		{"exclude_user", ihk.PerfAttr{ExcludeUser: true}, 0x04},
		{"exclude_kernel", ihk.PerfAttr{ExcludeKernel: true}, 0x08},
		{"exclude_hv", ihk.PerfAttr{ExcludeHV: true}, 0x10},
		{"exclude_idle", ihk.PerfAttr{ExcludeIdle: true}, 0x20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := encodePerfAttr(tc.attr)
			b := unsafe.Slice((*byte)(unsafe.Pointer(&raw)), 16)
			require.Equal(t, tc.attr.Config, binary.LittleEndian.Uint64(b[0:]), "config")
			require.Equal(t, tc.want, b[8])
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0}, b[9:], "bytes 9-15")
		})
	}
}

// rusageFixture builds a 16,568-byte GETRUSAGE buffer with a distinct value
// in every field, written at ihk_rusage.h's offsets, for an instance
// with nodes NUMA nodes and cpus CPUs. Entry 1023 of both arrays is also set
// when tail is true, to catch a decoder that reads the arrays short or long.
func rusageFixture(nodes, cpus int, tail bool) []byte {
	b := make([]byte, 16568)
	put := func(off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
	for i := range 8 {
		put(0+8*i, 1000+uint64(i))  // memory_stat_rss[i]
		put(64+8*i, 2000+uint64(i)) // memory_stat_mapped_file[i]
	}
	put(128, 3000) // memory_max_usage
	put(136, 3001) // memory_kmem_usage
	put(144, 3002) // memory_kmem_max_usage
	for i := range nodes {
		put(152+8*i, 4000+uint64(i)) // memory_numa_stat[i]
	}
	put(8344, 5000) // cpuacct_stat_system
	put(8352, 5001) // cpuacct_stat_user
	put(8360, 5002) // cpuacct_usage
	for i := range cpus {
		put(8368+8*i, 6000+uint64(i)) // cpuacct_usage_percpu[i]
	}
	if tail {
		put(152+8*1023, 4999)  // memory_numa_stat[1023]
		put(8368+8*1023, 6999) // cpuacct_usage_percpu[1023]
	}
	binary.LittleEndian.PutUint32(b[16560:], 7)          // num_threads
	binary.LittleEndian.PutUint32(b[16564:], 0xfffffff6) // max_num_threads = -10
	return b
}

func seq(base uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = base + uint64(i)
	}
	return s
}

func TestDecodeRusage(t *testing.T) {
	fixed := ihk.Rusage{
		MemoryRSSBytes:        [8]uint64{1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007},
		MemoryMappedFileBytes: [8]uint64{2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007},
		MemoryMaxUsageBytes:   3000,
		KmemUsageBytes:        3001,
		KmemMaxUsageBytes:     3002,
		SystemTicks:           5000,
		UserTicks:             5001,
		UserNanoseconds:       5002,
		Threads:               7,
		MaxThreads:            -10,
	}
	withArrays := func(numa, percpu []uint64) *ihk.Rusage {
		r := fixed
		r.NUMABytes, r.PerCPUUserNanoseconds = numa, percpu
		return &r
	}
	full := func(base uint64, n int, last uint64) []uint64 {
		s := make([]uint64, 1024)
		copy(s, seq(base, n))
		s[1023] = last
		return s
	}
	tests := []struct {
		name           string
		buf            []byte
		numNodes, cpus int
		want           *ihk.Rusage
	}{
		{"counts from the driver", rusageFixture(2, 4, false), 2, 4,
			withArrays(seq(4000, 2), seq(6000, 4))},
		{"counts cut entries past them", rusageFixture(2, 4, true), 2, 4,
			withArrays(seq(4000, 2), seq(6000, 4))},
		{"counts keep idle trailing entries", rusageFixture(1, 2, false), 3, 4,
			withArrays([]uint64{4000, 0, 0}, []uint64{6000, 6001, 0, 0})},
		{"unknown counts trim trailing zeros", rusageFixture(3, 5, false), -1, -1,
			withArrays(seq(4000, 3), seq(6000, 5))},
		{"unknown counts reach the array ends", rusageFixture(3, 5, true), -1, -1,
			withArrays(full(4000, 3, 4999), full(6000, 5, 6999))},
		{"zero counts", rusageFixture(0, 0, false), 0, 0,
			withArrays([]uint64{}, []uint64{})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeRusage(tc.buf, tc.numNodes, tc.cpus)
			require.Equal(t, tc.want, got)
		})
	}
}
