// Package nodeprep prepares a node for contiguous LWK memory (paper §3.2.3,
// §4.3): it plans the kernel command line and the run-time settings, applies
// and undoes the run-time settings with a record of every change, and
// reports how contiguous each NUMA node's free memory is.
//
// It reads, below a root directory (normally "/"): the CPU, node and
// memory-block trees of /sys/devices/system (pkg/sysfs, pkg/topology),
// /proc/zoneinfo, /proc/buddyinfo and /proc/kpageflags (pkg/memfrag),
// /proc/irq and /proc/PID (pkg/affinity), /proc/cmdline, and the cgroup and
// systemd trees (pkg/sysconfine). It changes memoryN/state (pkg/memblock),
// /proc/irq/N/smp_affinity_list, and systemd drop-ins or a cpuset cgroup.
//
// Plan is pure. Apply records each change in <StateDir>/nodeprep.json
// before making it (intent) and after (done), so Undo can reverse exactly
// what was changed, also after a crash in between; applying twice changes
// nothing the second time.
package nodeprep
