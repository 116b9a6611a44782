// Package monitor is lwk-monitor's core: it watches every booted LWK of the
// node without disturbing it, reacts to a panic, hang or out-of-memory of an
// LWK, freezes an LWK whose job Slurm suspended, and keeps the samples and
// final per-node usage records that accounting gathers.
//
// Kernel interfaces (through the IHK backend; pkg/ihk/ioctl names the IHK
// and McKernel sources they follow): IHK_OS_REGISTER_EVENT eventfds for OOM and
// STATUS, read with poll(2); IHK_OS_GETRUSAGE and, with the real driver and
// the simulator, the monitor page (IHK_OS_GET_USAGE/GET_CPU_USAGE) for
// samples, never a loop of
// IHK_OS_STATUS (which logs to dmesg on x86: STATUS is read only to confirm
// an event); IHK_DEVICE_DETECT_HUNGUP at the hang interval (only one caller
// per node may run it: sites that also run ihkmond must start ihkmond
// without -i); IHK_OS_FREEZE/THAW; IHK_OS_READ_KMSG; the AUX_PERF ioctls
// for the counters of a profile's PerfEvents (set and enabled at
// registration, read at each sample, disabled and destroyed on exit).
// From Slurm (SlurmCommands): squeue to read the job field the failure
// reason is appended to, scontrol to set it and drain the node, scancel.
// From Linux: /proc/<pid>/stat and fd links and the cgroup freezer state of
// the job's mcexec proxies, inotify on the run and journal directories.
//
// Never racing teardown: every call that opens /dev/mcosN is made while
// holding the node lock, taken without waiting (a sample that finds the lock
// held is skipped, not delayed; a registration that finds it held is
// retried every Config.RegisterRetry) except when the monitor stops a job's
// performance counters on exit, which waits for the lock (bounded by its
// context); always after checking that the job's marker still
// exists. lwk-epilog holds the same lock for its whole teardown, so DESTROY
// never meets a descriptor the monitor opened, and the monitor never opens
// the device of an instance being destroyed. The epilog also takes the
// final rusage reading itself, under that lock, right before DESTROY (see
// package teardown), so the final record misses nothing between samples.
package monitor
