//go:build linux && (amd64 || arm64)

package ioctl

import (
	"encoding/binary"
	"unsafe"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// Field offsets of struct ihk_os_rusage, taken from the Go mirror so that the
// layout test pins the decoder and the mirror against ihk_rusage.h at once.
const (
	offMemoryStatRSS        = unsafe.Offsetof(osRusage{}.MemoryStatRSS)
	offMemoryStatMappedFile = unsafe.Offsetof(osRusage{}.MemoryStatMappedFile)
	offMemoryMaxUsage       = unsafe.Offsetof(osRusage{}.MemoryMaxUsage)
	offMemoryKmemUsage      = unsafe.Offsetof(osRusage{}.MemoryKmemUsage)
	offMemoryKmemMaxUsage   = unsafe.Offsetof(osRusage{}.MemoryKmemMaxUsage)
	offMemoryNUMAStat       = unsafe.Offsetof(osRusage{}.MemoryNUMAStat)
	offCPUAcctStatSystem    = unsafe.Offsetof(osRusage{}.CPUAcctStatSystem)
	offCPUAcctStatUser      = unsafe.Offsetof(osRusage{}.CPUAcctStatUser)
	offCPUAcctUsage         = unsafe.Offsetof(osRusage{}.CPUAcctUsage)
	offCPUAcctUsagePerCPU   = unsafe.Offsetof(osRusage{}.CPUAcctUsagePerCPU)
	offNumThreads           = unsafe.Offsetof(osRusage{}.NumThreads)
	offMaxNumThreads        = unsafe.Offsetof(osRusage{}.MaxNumThreads)
)

// The kernel writes host byte order; both supported targets are little-endian.
var le = binary.LittleEndian

// decodeRusage decodes a GETRUSAGE buffer (exactly rusageSize bytes) field by
// field. numNodes and numCPUs trim the per-node and per-CPU arrays; a negative
// count means unknown, and the array is then cut after its last non-zero
// entry.
func decodeRusage(buf []byte, numNodes, numCPUs int) *ihk.Rusage {
	_ = buf[rusageSize-1] // one bounds check for all reads below
	u64 := func(off uintptr) uint64 { return le.Uint64(buf[off:]) }
	arr := func(off uintptr, dst []uint64) {
		for i := range dst {
			dst[i] = u64(off + uintptr(i)*8)
		}
	}
	ru := &ihk.Rusage{
		MemoryMaxUsageBytes: u64(offMemoryMaxUsage),
		KmemUsageBytes:      u64(offMemoryKmemUsage),
		KmemMaxUsageBytes:   u64(offMemoryKmemMaxUsage),
		SystemTicks:         u64(offCPUAcctStatSystem),
		UserTicks:           u64(offCPUAcctStatUser),
		UserNanoseconds:     u64(offCPUAcctUsage),
		Threads:             int32(le.Uint32(buf[offNumThreads:])),
		MaxThreads:          int32(le.Uint32(buf[offMaxNumThreads:])),
	}
	arr(offMemoryStatRSS, ru.MemoryRSSBytes[:])
	arr(offMemoryStatMappedFile, ru.MemoryMappedFileBytes[:])

	numa := make([]uint64, maxNUMANodes)
	arr(offMemoryNUMAStat, numa)
	ru.NUMABytes = trim(numa, numNodes)
	percpu := make([]uint64, maxRusageCPUs)
	arr(offCPUAcctUsagePerCPU, percpu)
	ru.PerCPUUserNanoseconds = trim(percpu, numCPUs)
	return ru
}

// trim cuts v to n entries, or after its last non-zero entry if n < 0.
func trim(v []uint64, n int) []uint64 {
	if n < 0 {
		n = len(v)
		for n > 0 && v[n-1] == 0 {
			n--
		}
	}
	return v[:min(n, len(v)):min(n, len(v))]
}
