// Package sysfs reads the kernel's CPU, NUMA node and memory block
// interfaces under a root directory (normally "/"), so tests and
// --sysfs-root can point it at a captured tree:
//
//   - /sys/devices/system/cpu: possible, present, online, offline;
//     cpuN/online; cpuN/topology/{physical_package_id,core_id,
//     thread_siblings_list}; the cpuN/nodeK link.
//   - /sys/devices/system/node: possible, online, has_cpu, has_memory,
//     has_normal_memory; nodeN/cpulist, nodeN/meminfo ("Node N MemTotal:
//     ... kB"), nodeN/distance.
//   - /sys/devices/system/memory: block_size_bytes (hex); memoryN/state,
//     valid_zones, removable, phys_index (hex); the memoryN/nodeK link.
//
// The package only reads. Every value is parsed at this boundary into Go
// types (CPU and node lists become k8s.io/utils/cpuset sets); a file whose
// content does not parse yields a *ParseError naming it. A missing file is
// reported with an error matching fs.ErrNotExist, so callers can tell
// "absent" (for example the topology/ directory of an offline CPU, which
// the kernel removes on CPU offline since Linux 4.x) from "broken".
package sysfs
