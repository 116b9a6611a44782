// Package finalusage passes an LWK's last rusage reading from lwk-epilog to
// lwk-monitor. The epilog reads IHK_OS_GETRUSAGE under the node lock right
// before DESTROY_OS (the monitor cannot: it must not hold /dev/mcosN open
// while DESTROY may run) and writes it, root-only, as
// <LogDir>/job-<id>.os<N>.rusage.json; the monitor folds it into the job's
// final record and removes it.
//
// Kernel interfaces: none (files only).
package finalusage
