package monitor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
)

// gateLock is the node lock with a switch: while held is set, TryLock
// answers ErrLocked as when a prolog or epilog holds the lock. It counts
// TryLock calls.
type gateLock struct {
	inner monitor.Locker
	held  atomic.Bool
	tries atomic.Int64
}

func (g *gateLock) TryLock() (func(), error) {
	g.tries.Add(1)
	if g.held.Load() {
		return nil, monitor.ErrLocked
	}
	return g.inner.TryLock()
}

func (g *gateLock) Lock(ctx context.Context) (func(), error) { return g.inner.Lock(ctx) }

// onlyRegistration configures a monitor that samples and rescans hourly
// and neither detects hangs nor watches for suspension, so that only
// registration retries run, at most every retry.
func onlyRegistration(retry time.Duration) func(*monitor.Config) {
	return func(c *monitor.Config) {
		c.Interval, c.RescanInterval = time.Hour, time.Hour
		c.HangInterval, c.SuspendInterval = 0, 0
		c.RegisterRetry = retry
	}
}

// TestRegistersSoonAfterTheLockIsFree: when the node lock is held as the
// monitor first sees an LWK, it tries again every RegisterRetry, not at
// the next sample or rescan (both an hour away here), and registers the
// instance once the lock is free.
func TestRegistersSoonAfterTheLockIsFree(t *testing.T) {
	e := newEnv(t)
	e.boot(61)
	e.configure = onlyRegistration(20 * time.Millisecond)
	lock := &gateLock{inner: monitor.NodeLock{Dir: e.stateDir}}
	lock.held.Store(true)
	m := e.newMonitor(e.sim, &fakeSlurm{}, lock)
	run(t, m)
	waitFor(t, "registration tried again while the lock is held", func() bool { return lock.tries.Load() >= 3 })
	in, ok := instanceOf(m, 61)
	require.True(t, ok, "tracked")
	require.False(t, in.Registered, "not registered while the lock is held")

	lock.held.Store(false)
	waitFor(t, "registered once the lock is free", func() bool {
		in, _ := instanceOf(m, 61)
		return in.Registered
	})
	tries := lock.tries.Load()
	// Registered: no more retries (the next sample is an hour away).
	for range 5 {
		time.Sleep(2 * 20 * time.Millisecond)
	}
	require.Equal(t, tries, lock.tries.Load(), "no retries after registration")
}

// TestRegistrationRetriesStartSoon: the first retries come within
// milliseconds, doubling, however long Config.RegisterRetry is: a new LWK
// is usually first seen while its prolog still holds the lock.
func TestRegistrationRetriesStartSoon(t *testing.T) {
	e := newEnv(t)
	e.boot(62)
	e.configure = onlyRegistration(time.Hour)
	lock := &gateLock{inner: monitor.NodeLock{Dir: e.stateDir}}
	lock.held.Store(true)
	m := e.newMonitor(e.sim, &fakeSlurm{}, lock)
	run(t, m)
	waitFor(t, "four tries while the lock is held", func() bool { return lock.tries.Load() >= 4 })
	lock.held.Store(false)
	waitFor(t, "registered once the lock is free", func() bool {
		in, _ := instanceOf(m, 62)
		return in.Registered
	})
}
