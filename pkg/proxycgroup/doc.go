// Package proxycgroup confines the Linux side of one LWK job: the mcexec
// proxies of every step, which McKernel delegates its system calls to, and
// the job's batch step (paper §4.4). It speaks the kernel's cgroup
// filesystem, v1 or v2, whichever the node mounts (chosen once by Detect
// from /proc/self/mounts):
//
//   - cgroup v1: our own cgroups in the cpuset, memory and cpu hierarchies,
//     <mount>/slurm-lwk/job-<id>/{proxies,batch}. proxies gets cpuset.cpus
//     (the OS cores), cpuset.mems, memory.limit_in_bytes (and
//     memory.memsw.limit_in_bytes where swap is accounted) and
//     cpu.cfs_period_us/cpu.cfs_quota_us; batch gets cpuset.cpus only (the
//     job's Linux CPUs). Slurm tracks processes through the freezer
//     hierarchy (proctrack/cgroup), which we never touch, so scancel,
//     --signal, suspend and time limits still reach every proxy.
//   - cgroup v2: one tree, and Slurm finds a step's processes only in the
//     cgroups it made (cgroup.procs of step_*/slurm and task_* leaves, not
//     recursively). A cgroup of our own would hide the proxies from Slurm,
//     so nothing is created: the limits are written onto Slurm's own
//     step_*/user cgroup (the parent of the task leaves), found from
//     /proc/<pid>/cgroup, never by assuming job_<id> (Slurm 26.05 names
//     the job directory by its SLUID). cpuset.cpus, cpuset.mems, memory.max,
//     memory.swap.max and cpu.max; Slurm removes them with its cgroups.
//
// The prolog creates the confinement and writes a root-only record of it
// (<RunDir>/job-<id>.cgroup); the SPANK shim runs "lwkctl confine-task" as
// root from task_init_privileged, in the forked task before it execs, which
// puts the task in (v1) or limits its step (v2) from that record, never from
// anything in the user's environment. Every directory is root-owned 0755 and
// every control file root-owned 0644 as the kernel creates them, so the
// job's user can neither move a process out (writing another cgroup's
// cgroup.procs needs write access to it) nor widen a limit, and
// sched_setaffinity is bounded by the cpuset.
//
// Low-level file access goes through github.com/opencontainers/cgroups
// (openat2 confined to /sys/fs/cgroup, the cgroupfs type check, retries of
// cgroup.procs writes on EINVAL and of rmdir on EBUSY); the layout and the
// values are this package's. Every path is injected: tests run the same
// code over a fake cgroupfs (a temp dir and an FS that emulates the
// kernel's mkdir/rmdir/attach rules).
package proxycgroup
