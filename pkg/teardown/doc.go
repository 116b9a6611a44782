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
// Order, the reverse of the prolog: run marker → device access (revoked
// before holders are killed, so a user cannot reopen it) → the job's
// remaining mcexec processes → the LWK kernel log (READ_KMSG works only
// before shutdown) → DESTROY_OS (retried while busy, with package retry's
// bounded backoff; holders are looked for after a short grace) → RELEASE_CPU →
// RELEASE_MEM → journal. "Already gone" is success at every step, so running
// teardown twice is harmless.
//
// Holders of the device are found by device number in every task's file
// table and memory map (package devholders) and stopped through pidfds when
// they are the job's: in the job's cgroup, or the job's user. Root and
// other users' holders are never killed; they are logged, and if DESTROY_OS
// stays busy teardown fails naming them (see holderPolicy).
//
// Kernel interfaces: the IHK client (DESTROY_OS, QUERY/RELEASE_CPU,
// QUERY/RELEASE_MEM, READ_KMSG), /proc/PID/task/TID/fd, maps, map_files,
// status and cgroup (who holds /dev/mcosN, and whose it is),
// pidfd_open(2)/pidfd_send_signal(2), and chown/chmod on the device node.
package teardown
