// Package procfs reads the few /proc files slurm-lwk needs, below a root
// that callers inject (as prometheus/procfs's NewFS does): tests pass a
// fixture tree, production DefaultMountPoint.
//
// Kernel interface: /proc/<pid>/ directories (the PIDs), /proc/<pid>/stat
// (proc(5): parent, CPU times, threads, start time, resident set) and
// /proc/<pid>/status (the real UID). It only reads. A process that exits
// while being read is reported with an error wrapping fs.ErrNotExist or
// syscall.ESRCH.
package procfs
