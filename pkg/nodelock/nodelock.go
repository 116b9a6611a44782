package nodelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is returned when the lock could not be taken in time.
var ErrTimeout = errors.New("timed out waiting for the node lock")

// Lock is a held node lock.
type Lock struct {
	f *os.File
}

// A waiter retries a contended lock after firstPoll, doubling up to
// maxPoll: short critical sections (the simulator's) are caught quickly,
// long ones (a prolog's boot) are not polled hard.
const (
	firstPoll = 100 * time.Microsecond
	maxPoll   = 10 * time.Millisecond
)

// Acquire takes the exclusive lock on dir/lock, creating it (0600) if needed,
// and waits until ctx is done.
func Acquire(ctx context.Context, dir string) (*Lock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open node lock %s: %w", path, err)
	}
	for delay := firstPoll; ; delay = min(2*delay, maxPoll) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w (%w)", path, ErrTimeout, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}

// ErrHeld is TryAcquire's answer when another holder has the lock.
var ErrHeld = errors.New("node lock held")

// TryAcquire takes the lock on dir/lock if it is free and returns ErrHeld
// at once if not. lwk-monitor uses it so that its samples never wait for
// (or delay) a prolog or epilog.
func TryAcquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open node lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return &Lock{f: f}, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ErrHeld)
		default:
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
}
