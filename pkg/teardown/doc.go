// Package teardown is lwk-epilog's core: it returns the node to its state
// before the job, whatever the prolog reached and however it ended.
//
// It works from the job's journal and from live state together. Under the
// node lock no prolog is half-way through, so every IHK resource on the node
// is either assigned to an OS instance that some journal or run marker
// claims, reserved by a journal whose reserve step is done and whose assign
// step is not (a prolog that died between the two), or orphaned. Teardown
// destroys the job's OS instance (from its journal or marker; without them,
// every instance nobody claims) and then releases every reserved CPU and
// memory chunk that no other job claims. It queries the driver for what is
// reserved rather than trusting its own records: DESTROY_OS returns an
// instance's memory to the pool split differently from how it was reserved
// (IHK does not merge chunks back).
//
// Order (undo in teardown.go): the run marker is removed; then, for each
// instance, device access is revoked (root-only again, before any holder is
// stopped, so a user cannot reopen it), the LWK kernel log is saved
// (READ_KMSG works only before shutdown), the last rusage reading is saved
// for lwk-monitor (GETRUSAGE, package finalusage), and DESTROY_OS is retried
// while busy with package retry's bounded backoff; once it has been busy for
// holderGrace (250 ms), each retry first looks for the device's holders and
// stops the job's. After the destroy (the proxies are gone) the job's
// cgroups are removed; then RELEASE_CPU, RELEASE_MEM, the restore after the
// pre-boot defragmentation (job-node blocks offline since an interrupted
// step back online, except those offline before it; after DefragOnlineKernel
// the journaled Movable blocks back into ZONE_MOVABLE), and last the
// journal. Jobs whose epilog already ran and whose resources were collected
// here get the same restore and then lose their cgroups, markers and
// journals. Without a journal (recovery from live state) the blocks are not
// restored: lwkctl node apply makes them Movable again.
// "Already gone" is success at every step, so running teardown twice is
// harmless.
//
// Holders of the device are found by device number in every task's file
// table and memory map (package devholders) and stopped through pidfds when
// they are the job's: in the job's cgroup, or the job's user. Root and
// other users' holders are never killed; they are logged, and if DESTROY_OS
// stays busy teardown fails naming them (see holderPolicy).
//
// Kernel interfaces: the IHK client (LIST by DevDir scan, DESTROY_OS,
// QUERY/RELEASE_CPU, QUERY/RELEASE_MEM, READ_KMSG, GETRUSAGE),
// /proc/PID/task/TID/fd, maps, map_files, status and cgroup (who holds
// /dev/mcosN, and whose it is), pidfd_open(2)/pidfd_send_signal(2), the
// ACL, owner and mode of the device node, the job's cgroup directories
// (cgroup.procs, then rmdir; package proxycgroup) and, after a pre-boot
// defragmentation, the job nodes' memory block state and zone in sysfs.
package teardown
