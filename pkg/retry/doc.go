// Package retry holds the one set of rules by which slurm-lwk waits for and
// retries IHK operations. The IHK backends issue exactly one driver request
// per call (the driver's own blocking aside); packages apply and teardown,
// which know what an operation is for, decide with these rules whether to
// try again. The backends' eventfd readers use the EINTR rule too: a
// read(2) of an eventfd is not an IHK request, and a signal may interrupt
// it.
//
//   - EINTR: retried at once, a bounded number of times. Some IHK ioctl
//     handlers return -EINTR rather than -ERESTARTSYS when a signal arrives,
//     so the kernel does not restart them even with SA_RESTART.
//   - EBUSY: retried with a bounded doubling backoff until a time limit, for
//     operations whose busy state ends by itself or by something the caller
//     does between attempts (IHK_DEVICE_DESTROY_OS while /dev/mcosN is open).
//   - Already gone (ENOENT, ESRCH, "no such OS instance"): success where the
//     goal is removal, as opencontainers/cgroups' rmdir treats ENOENT.
//
// It speaks no kernel interface itself; it classifies the errno carried by
// *ihk.Error and syscall.Errno.
package retry
