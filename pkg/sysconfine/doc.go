// Package sysconfine confines the node's system processes to the OS cores
// and system NUMA nodes, below a root directory (normally "/"), by one of:
//
//   - systemd (when /run/systemd/system exists): a drop-in
//     /etc/systemd/system/UNIT.d/50-slurm-lwk-nodeprep.conf with
//     AllowedCPUs= and AllowedMemoryNodes= (systemd.resource-control(5);
//     applied by "systemctl daemon-reload", effective on cgroup v2 only) for
//     user.slice, machine.slice and every service running in system.slice
//     except Slurm's own (slurmd.service; slurmstepd.scope holds the jobs,
//     so system.slice itself is never restricted);
//   - the cpuset hierarchy otherwise: a cgroup "slurm-lwk-system" under
//     the cgroup v2 root (/sys/fs/cgroup, cpuset.cpus, cpuset.mems,
//     cgroup.procs; the cpuset controller is enabled in the root's
//     cgroup.subtree_control) or the v1 cpuset root
//     (/sys/fs/cgroup/cpuset), into which every user-space process of the
//     root cgroup is moved. Kernel threads stay where they are.
package sysconfine
