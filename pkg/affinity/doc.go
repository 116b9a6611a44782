// Package affinity reads and sets where interrupts and processes may run,
// below a root directory (normally "/"):
//
//   - /proc/irq/N/smp_affinity_list (list syntax, "0-3"); the handler names
//     are the subdirectories of /proc/irq/N. Writing fails with EIO for
//     interrupts whose affinity the kernel manages (per-CPU timers, managed
//     MSI-X vectors of multi-queue devices): those are reported, not fatal.
//   - /proc/PID/stat (comm and flags, PF_KTHREAD = 0x00200000) and
//     /proc/PID/status (Cpus_allowed_list, Mems_allowed_list), parsed by
//     package procfs (FS.Placement) with root/proc as its root.
//
// Processes are only read here; confining them is done through cgroups.
package affinity
