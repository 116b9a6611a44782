// Package ihk defines the client interface to the IHK (Interface for
// Heterogeneous Kernels) driver that slurm-lwk uses to carve CPUs and memory
// out of Linux and boot McKernel on them, and the types and error values that
// every backend shares.
//
// Two backends implement Client:
//
//   - ihk/ioctl speaks the driver's ioctl ABI on /dev/mcd0 (device requests,
//     base 0x112900) and /dev/mcosN (OS requests, base 0x112a00, and mcctrl's
//     aux requests from 0x11290100). It is the production backend.
//   - ihk/sim is a simulation for machines without the IHK module. It keeps
//     the driver's state machine and errno values, shares its state across
//     processes through a locked state directory, and is chosen only when
//     lwk.conf says IHKBackend=sim.
//
// Both backends report failures as *Error, which carries the operation, the OS
// index and the errno, and matches the sentinel values below with errors.Is.
// The ABI facts come from IHK 1.7.0 (commit 3114d9e7) and McKernel 1.7.9/1.8.0
// (commit e597be09); see the ioctl package for the exact numbers.
package ihk
