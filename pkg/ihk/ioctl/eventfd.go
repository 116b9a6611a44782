//go:build linux && (amd64 || arm64)

package ioctl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// eventFD is a registered eventfd (ihk.EventFD). The descriptor is blocking;
// callers that must not block a thread can poll Fd().
type eventFD struct {
	fd   int
	once sync.Once
	err  error
}

// Fd returns the eventfd descriptor.
func (e *eventFD) Fd() int { return e.fd }

// Read blocks until the counter is non-zero, then returns it and resets it to
// zero (eventfd(2) semantics without EFD_SEMAPHORE).
func (e *eventFD) Read() (uint64, error) {
	var b [8]byte
	for {
		n, err := unix.Read(e.fd, b[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read eventfd %d: %w", e.fd, err)
		}
		if n != len(b) {
			return 0, fmt.Errorf("read eventfd %d: short read of %d bytes", e.fd, n)
		}
		// eventfd counters are in host byte order.
		return binary.NativeEndian.Uint64(b[:]), nil
	}
}

// Close closes the descriptor; the kernel's registration stays until the
// instance is destroyed. Closing twice is harmless.
func (e *eventFD) Close() error {
	e.once.Do(func() { e.err = unix.Close(e.fd) })
	return e.err
}
