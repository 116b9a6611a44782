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
// Kernel interfaces: the IHK client (DESTROY_OS, QUERY/RELEASE_CPU,
// QUERY/RELEASE_MEM, READ_KMSG), /proc/<pid>/fd (who holds /dev/mcosN),
// kill(2), and chown/chmod on the device node.
package teardown
