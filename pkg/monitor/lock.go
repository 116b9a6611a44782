package monitor

import (
	"context"
	"errors"

	"github.com/slurm-lwk/slurm-lwk/pkg/nodelock"
)

// NodeLock is the node lock in a state directory (package nodelock).
type NodeLock struct{ Dir string }

// TryLock implements Locker.
func (n NodeLock) TryLock() (func(), error) {
	l, err := nodelock.TryAcquire(n.Dir)
	if errors.Is(err, nodelock.ErrHeld) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, err
	}
	return func() { _ = l.Release() }, nil
}

// Lock implements Locker.
func (n NodeLock) Lock(ctx context.Context) (func(), error) {
	l, err := nodelock.Acquire(ctx, n.Dir)
	if err != nil {
		return nil, err
	}
	return func() { _ = l.Release() }, nil
}
