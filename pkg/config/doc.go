// Package config reads the node configuration file, /etc/slurm/lwk.conf.
//
// It speaks no kernel interface itself; it names the ones the other packages
// use: the IHK backend (the real driver's /dev/mcd0 and /dev/mcosN under
// DevDir, or the simulator under SimStateDir), the sysfs root
// (SysfsRoot/sys/devices/system/...), the CPU lists of the OS cores and the
// NUMA split, and the proxy cgroup limits (cpu.cfs_period_us and quota,
// memory limit).
//
// The format follows Slurm's cgroup.conf and slurm.conf: KEY=VALUE pairs
// separated by blanks, keys case-insensitive, values optionally in double
// quotes, '#' to the end of the line a comment. A line starting with
// Profile=NAME defines an LWK profile and carries its own keys (Image, Kargs,
// AllowKargs), like a slurm.conf NodeName= line. Errors are *ParseError
// values located by file and line. See lwk.conf.example at the repository
// root for every key and its default.
//
// Each key is registered once, as a row of the keys table (keys.go): its
// parser, its default and what it is; the tests hold lwk.conf.example to
// that table. Profile names, the kernel arguments of AllowKargs and sizes
// follow the --lwk-mode grammar, whose rules package lwkmode owns.
package config
