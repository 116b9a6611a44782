//go:build linux && (amd64 || arm64)

package ioctl

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysLayer is the system-call surface the backend uses. The real one issues
// syscalls; tests inject a fake that inspects argument memory.
//
// Pointer and value arguments have separate methods: a pointer stays an
// unsafe.Pointer until the syscall itself converts it, so the Go runtime
// keeps the pointee (and, through its pointer-typed fields, the arrays it
// refers to) alive and in place for the whole call.
type sysLayer interface {
	Open(path string, flags int) (int, error)
	Close(fd int) error
	// IoctlValue issues a request whose argument is a value (or ignored).
	IoctlValue(fd int, req uint32, arg uintptr) (uintptr, syscall.Errno)
	// IoctlPointer issues a request whose argument points to user memory.
	IoctlPointer(fd int, req uint32, arg unsafe.Pointer) (uintptr, syscall.Errno)
	Eventfd(initval uint, flags int) (int, error)
}

// unixSys is the real sysLayer.
type unixSys struct{}

func (unixSys) Open(path string, flags int) (int, error) { return unix.Open(path, flags, 0) }

func (unixSys) Close(fd int) error { return unix.Close(fd) }

func (unixSys) IoctlValue(fd int, req uint32, arg uintptr) (uintptr, syscall.Errno) {
	// Syscall, not RawSyscall: BOOT and DESTROY can block for tens of seconds.
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg)
	return r, errno
}

func (unixSys) IoctlPointer(fd int, req uint32, arg unsafe.Pointer) (uintptr, syscall.Errno) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	return r, errno
}

func (unixSys) Eventfd(initval uint, flags int) (int, error) { return unix.Eventfd(initval, flags) }
