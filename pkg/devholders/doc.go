// Package devholders finds the processes that hold a given file, by device
// number and inode rather than by path, and pins them with pidfds so that a
// signal never reaches a process that reused a holder's PID. The lifecycle
// uses it to find what keeps an OS instance device (/dev/mcosN with the real
// driver, DevDir/mcosN with the simulator) busy: the driver refuses
// IHK_DEVICE_DESTROY_OS while any descriptor on it exists.
//
// Kernel interfaces (proc(5)):
//
//   - stat(2) of the path gives the target: st_rdev for a device node (any
//     node with the same numbers reaches the same driver object), st_dev and
//     st_ino for a regular file (the simulator's stand-ins).
//   - /proc/PID/task/TID/fd/N for every task: stat(2) follows the link to the
//     open file itself, so a descriptor opened through a bind mount in
//     another mount namespace matches, and a thread that called
//     unshare(CLONE_FILES) is found in its own table. Tasks that share a
//     table (kcmp(2) KCMP_FILES, on a live procfs) are read once.
//   - /proc/PID/task/TID/maps ("major:minor inode") and map_files/<range>
//     (stat, needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE): a mapping keeps
//     the device busy after its descriptor is closed.
//   - pidfd_open(2) (Linux 5.3) and pidfd_send_signal(2) (5.1); without them
//     kill(2) right after a re-check.
//
// What no /proc scan can see: a descriptor in flight in a unix socket
// (SCM_RIGHTS sent, not yet received) is held by the socket, not by a
// process; it goes away when the socket's owners die. Reading another
// user's task directories needs root (or CAP_SYS_PTRACE); processes whose
// directories cannot be read are skipped, not reported.
package devholders
