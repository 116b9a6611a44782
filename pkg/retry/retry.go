package retry

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// MaxEINTR bounds the immediate retries of an interrupted operation.
const MaxEINTR = 16

// Busy backoff bounds: the delay doubles from FirstBusyDelay up to
// MaxBusyDelay between attempts.
const (
	FirstBusyDelay = 10 * time.Millisecond
	MaxBusyDelay   = 500 * time.Millisecond
)

// Value runs op, retrying it at once while it fails with EINTR (at most
// MaxEINTR retries).
func Value[T any](op func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := op()
		if !errors.Is(err, syscall.EINTR) || i == MaxEINTR {
			return v, err
		}
	}
}

// Call is Value for operations without a result.
func Call(op func() error) error {
	_, err := Value(func() (struct{}, error) { return struct{}{}, op() })
	return err
}

// WhileBusy runs op (with Call's EINTR rule) and, while it fails with EBUSY,
// calls between(waited) and retries after a backoff doubling from
// FirstBusyDelay to MaxBusyDelay. waited is the time since the first
// attempt; between may act to end the busy state (stop the processes that
// hold a device) and its error ends the retries. Once limit has passed
// since the first attempt the last EBUSY is returned, wrapped with "still
// busy after <limit>"; a done ctx ends the wait with ctx's error.
func WhileBusy(ctx context.Context, limit time.Duration, op func() error, between func(waited time.Duration) error) error {
	start := time.Now()
	delay := FirstBusyDelay
	for {
		err := Call(op)
		if !errors.Is(err, ihk.ErrBusy) {
			return err
		}
		waited := time.Since(start)
		if waited >= limit {
			return fmt.Errorf("still busy after %s: %w", limit, err)
		}
		if between != nil {
			if err := between(waited); err != nil {
				return err
			}
		}
		t := time.NewTimer(min(delay, limit-waited))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, MaxBusyDelay)
	}
}

// Gone reports whether err says the object is already gone: ENOENT, ESRCH,
// or an IHK "no such OS instance" (ihk.ErrNotFound). Where the goal is
// removal, callers count it as success.
func Gone(err error) bool {
	return errors.Is(err, ihk.ErrNotFound) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH)
}
