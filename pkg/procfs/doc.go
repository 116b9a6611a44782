// Package procfs reads the few /proc files slurm-lwk needs, below a root
// that callers inject (as prometheus/procfs's NewFS does): tests pass a
// fixture tree, production DefaultMountPoint, chosen once where a command is
// wired (lwknode.Open, the cmd/ packages).
//
// Kernel interface, all read-only:
//
//   - /proc/<pid>/ directories: PIDs.
//   - /proc/<pid>/stat (proc(5)): Stat (comm, state, parent, PF_* flags, CPU
//     times, threads, start time, resident set); Placement reads comm and
//     flags from it too.
//   - /proc/<pid>/status: RealUID and UIDs (the Uid: line), Placement
//     (Cpus_allowed_list, Mems_allowed_list).
//   - /proc/<pid>/comm: Comm.
//   - /proc/<pid>/cgroup: Cgroups and CgroupLines (hierarchy, controllers,
//     path per line).
//   - /proc/<pid>/task/<tid>/schedstat: RunTime (the threads' time on a
//     CPU).
//   - /proc/locks: Locks.
//
// Other packages build paths below the root with FS.Path (self/mounts for
// the cgroup layout, self/task, the fd tables devholders scans).
//
// A process that exits while being read is reported with an error wrapping
// fs.ErrNotExist or syscall.ESRCH.
package procfs
