// Package topology is the node model slurm-lwk plans against: logical CPUs
// with their core, socket and NUMA node, NUMA nodes with their memory and
// distance table, and memory blocks. It is built from the kernel's sysfs
// (/sys/devices/system/{cpu,node,memory}) by Read, or by hand in tests, and
// answers set queries ("the CPUs in these nodes") without touching the
// machine.
package topology
