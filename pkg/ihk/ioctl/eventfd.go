//go:build linux && (amd64 || arm64)

package ioctl

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/retry"
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
// zero (eventfd(2) semantics without EFD_SEMAPHORE). An interrupted read is
// retried at once, within package retry's bound.
func (e *eventFD) Read() (uint64, error) {
	var b [8]byte
	n, err := retry.Value(func() (int, error) { return unix.Read(e.fd, b[:]) })
	if err != nil {
		return 0, fmt.Errorf("read eventfd %d: %w", e.fd, err)
	}
	if n != len(b) {
		return 0, fmt.Errorf("read eventfd %d: short read of %d bytes", e.fd, n)
	}
	// eventfd counters are in host byte order.
	return binary.NativeEndian.Uint64(b[:]), nil
}

// Close closes the descriptor; the kernel's registration stays until the
// instance is destroyed. Closing twice is harmless.
func (e *eventFD) Close() error {
	e.once.Do(func() { e.err = unix.Close(e.fd) })
	return e.err
}
