// Package sim is a simulated IHK driver for machines without the IHK kernel
// module (CI, laptops, the demo). It is selected only by IHKBackend=sim in
// lwk.conf and is named as a simulation everywhere it shows.
//
// It implements ihk.Client with the state machine and errno values of the
// IHK 1.7 SMP driver (linux/core/host_driver.c, linux/driver/smp/
// smp-driver.c; see package ioctl for the exact sources): the same
// reservation, assignment, LOAD/SET_KARGS/BOOT/SHUTDOWN/DESTROY rules, the
// same status values derived over a configurable boot time, and the same
// errno for each refusal, wrapped in *ihk.Error. Its kernel interfaces are
// only files:
//
//   - <StateDir>/state.json: the whole simulated driver, shared by every
//     process (prolog, epilog, monitor, lwkctl). Each operation takes
//     flock(LOCK_EX) on <StateDir>/lock, reads the state, checks, mutates,
//     and writes it back (temp file, rename: atomic against a killed
//     process; no fsync, since driver state never outlives a reboot).
//   - <DevDir>/mcd0 and <DevDir>/mcosN: regular files standing in for the
//     device nodes. mcosN is created by CreateOS (0600, owner = caller) and
//     removed by DestroyOS. Its first line is a JSON DeviceInfo (index,
//     assigned CPUs in LWK order, memory, boot timeline) that the simulator
//     rewrites in place (same inode, owner and mode) under an OFD record
//     lock; the mcexec stand-in (cmd/lwk-sim-mcexec), running as the job
//     user with rw access to that file only, reads it and appends one
//     UsageRecord line per finished program.
//   - A process "holds" an instance while it has mcosN open with
//     flock(LOCK_SH); DestroyOS then fails with EBUSY, as the driver refuses
//     IHK_DEVICE_DESTROY_OS while any descriptor on /dev/mcosN is open.
//   - /proc/<pid>/stat of the stand-ins' children (live CPU time for rusage
//     and perf; the stand-ins found by their flock in /proc/locks), every
//     task's descriptor table (other holders that block DestroyOS, via
//     package devholders) and pidfd_getfd(2) to signal eventfds registered
//     by other processes.
//
// Real sysfs is not touched unless lwk.conf sets SimOfflineCPUs=yes: then
// reserving CPUs takes them offline through CPU hotplug
// (/sys/devices/system/cpu/cpuN/online, package cpuhotplug) and releasing
// brings them back, as the driver does. Otherwise reserved CPUs are
// "offline" only in the simulator's state. Reserved memory is always
// bookkeeping against the topology's free memory.
//
// Where the simulator deliberately differs from the driver:
//
//   - Reserving a CPU that is already reserved fails with EBUSY (the driver
//     says EINVAL, as for any CPU that is not online), as slurm-lwk's issue
//     #4 asks: overlapping reservations are "busy".
//   - A memory request entry becomes exactly one chunk (the driver may
//     return several smaller ones); sizes of -1 ("all") do not exist in
//     ihk.Client. The 95%-of-node-0 and max_size_ratio limits are not
//     simulated; free memory is the topology's MemFreeBytes minus what is
//     reserved.
//   - LOAD only checks that the image is an existing regular file; it does
//     not parse the ELF. BOOT additionally requires a loaded image (EINVAL).
//   - SHUTDOWN and DESTROY do not wait for READY/RUNNING and do not stop the
//     programs mcexec stand-ins run; FREEZE changes the status only.
//   - Rusage and perf counters are built from the Linux CPU time of the
//     programs run through the stand-in (records of finished programs plus
//     /proc of live ones); see Rusage and PerfControl for what is synthetic.
//   - The hang detector only finds hangs injected with InjectHang; panics
//     come from InjectPanic. Both signal registered STATUS eventfds.
//
// Fault injection (ParseFaults, ParseFaultEnv, FaultsFromEnv) makes a named
// operation fail with an errno before it does anything, or SIGKILLs the
// process right after it succeeded and persisted its effects. It is one
// wrapper around any IHK client (Inject) plus apply's hook for the prolog
// steps that are not IHK operations (Faults.Before/After); the simulated
// driver itself knows nothing of it.
package sim
