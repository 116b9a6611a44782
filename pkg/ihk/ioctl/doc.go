// Package ioctl is the real IHK backend: it implements ihk.Client with ioctl(2)
// calls on the IHK device nodes, without cgo (golang.org/x/sys/unix).
//
// # ABI source
//
// Request numbers, structures and semantics follow IHK 1.7.0 (RIKEN-SysSoft/ihk
// branch development, commit 3114d9e7, 2022-05-31: linux/include/ihk/
// ihk_host_user.h, ihk_rusage.h, linux/core/host_driver.c, linux/driver/smp/
// smp-driver.c) and McKernel 1.7.9/1.8.0 (RIKEN-SysSoft/mckernel commit
// e597be09, 2023-10-24, whose ihk submodule pins the same IHK commit:
// executer/kernel/mcctrl/control.c for the aux requests). The layouts are
// those of LP64 Linux on x86_64 and aarch64, which are identical; the
// package builds only there.
//
// # Device files and requests
//
//   - <DevDir>/mcd0, the IHK device (ihk-smp-<arch>.ko): device requests at base
//     0x112900 (CREATE_OS, DESTROY_OS, RESERVE/RELEASE/QUERY CPU and MEM,
//     GET_NUM_CPUS, DETECT_HUNGUP). The driver checks no euid; access is the
//     node's file mode.
//   - <DevDir>/mcos<N>, one per OS instance: OS requests at base 0x112a00
//     (ASSIGN/QUERY CPU and MEM, SET/GET_IKC_MAP, GET_BUILDID, LOAD,
//     SET_KARGS, BOOT, SHUTDOWN, STATUS, REGISTER_EVENT, READ_KMSG, FREEZE,
//     THAW, GET_NUM_CPUS, GET_NUM_NUMA_NODES, GET_USAGE, GET_CPU_USAGE) and
//     mcctrl's aux requests at base 0x11290100 (PERF_*,
//     GETRUSAGE), which exist only while the instance is booted.
//
// DevDir comes from lwk.conf (normally /dev). Instances are listed, as libihk
// does, by scanning DevDir for mcos<N>.
//
// # Pitfalls handled here
//
//   - The request numbers are raw constants, not _IOC-encoded; some requests
//     take their argument by value (OS index, count, flag), others a pointer.
//     The system-call layer has separate value and pointer entry points.
//   - Positive return values carry data (CREATE_OS: index, GET_NUM_*: count,
//     STATUS and DETECT_HUNGUP: status, READ_KMSG: bytes, PERF_SET: events
//     registered). A non-zero return from a request that returns 0 is a
//     failure: some handlers leak a positive copy residual instead of -EFAULT.
//   - Any open fd on /dev/mcosN makes DESTROY_OS fail with EBUSY, so every OS
//     call opens and closes the node; DestroyOS returns EBUSY to its caller
//     (teardown retries it). DESTROY_OS and DETECT_HUNGUP answer EINVAL for a missing index,
//     and opening a node being torn down gives ENOENT: both are ihk.ErrNotFound.
//   - QUERY requests are count-then-list: the OS-level ones and device
//     QUERY_CPU insist on the exact count, while device QUERY_MEM copies every
//     chunk without checking, so its arrays get spare room.
//   - RESERVE_MEM needs the tuning fields libihk normally fills (min chunk =
//     page size, max ratio 98 %, timeout 30 s); sizes must be multiples of
//     4 MiB.
//   - Image paths and kernel arguments are limited to 255 bytes (the driver
//     truncates silently), and the arguments must contain the token hidos.
//   - BOOT returns at READY; the caller (apply) polls STATUS until RUNNING.
//     STATUS logs two kernel lines per call on x86, so polling stays sparse.
//   - Every call issues one request and returns its errno, EINTR and EBUSY
//     included: package retry holds the rules its callers apply.
//   - READ_KMSG needs a 4,190,208-byte buffer and works only between BOOT and
//     SHUTDOWN. GETRUSAGE fills the 16,568-byte struct ihk_os_rusage, decoded
//     field by field (little-endian).
//   - mcctrl's PERF_GET writes one counter per registered event whatever the
//     caller asked for, so its buffer is always sized for the maximum.
package ioctl
