package retry

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

func ihkErr(errno syscall.Errno) error {
	return &ihk.Error{Op: "IHK_DEVICE_DESTROY_OS", OS: 3, Errno: errno}
}

// results returns an op that fails with errs in turn, then succeeds, and a
// pointer to its call count.
func results(errs ...error) (func() error, *int) {
	n := 0
	return func() error {
		n++
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, &n
}

func TestCall(t *testing.T) {
	eintr := ihkErr(syscall.EINTR)
	many := make([]error, MaxEINTR+5)
	for i := range many {
		many[i] = eintr
	}
	tests := []struct {
		name      string
		errs      []error
		wantErr   error
		wantCalls int
	}{
		{name: "success", wantCalls: 1},
		{name: "EINTR is retried at once", errs: []error{eintr, eintr}, wantCalls: 3},
		{name: "EINTR retries are bounded", errs: many, wantErr: syscall.EINTR, wantCalls: MaxEINTR + 1},
		{name: "EBUSY is not retried", errs: []error{ihkErr(syscall.EBUSY)}, wantErr: ihk.ErrBusy, wantCalls: 1},
		{name: "other errors are returned", errs: []error{ihkErr(syscall.EIO)}, wantErr: syscall.EIO, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, n := results(tc.errs...)
			err := Call(op)
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr)
			}
			require.Equal(t, tc.wantCalls, *n)
		})
	}
}

func TestWhileBusy(t *testing.T) {
	busy := ihkErr(syscall.EBUSY)
	always := make([]error, 1000)
	for i := range always {
		always[i] = busy
	}
	t.Run("retried until it succeeds, calling between each time", func(t *testing.T) {
		op, n := results(busy, ihkErr(syscall.EINTR), busy)
		var waits []time.Duration
		err := WhileBusy(context.Background(), 5*time.Second, op, func(w time.Duration) error {
			waits = append(waits, w)
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, 4, *n)
		require.Len(t, waits, 2)
		require.Greater(t, waits[1], waits[0])
	})
	t.Run("bounded by the limit with a doubling backoff", func(t *testing.T) {
		op, n := results(always...)
		start := time.Now()
		err := WhileBusy(context.Background(), 120*time.Millisecond, op, nil)
		require.ErrorIs(t, err, ihk.ErrBusy)
		require.ErrorContains(t, err, "still busy after 120ms")
		require.GreaterOrEqual(t, time.Since(start), 120*time.Millisecond)
		require.Less(t, time.Since(start), 2*time.Second)
		// Backoff 10, 20, 40, 50 (cut at the limit) ms: a handful of attempts, not a spin.
		require.GreaterOrEqual(t, *n, 2)
		require.LessOrEqual(t, *n, 8)
	})
	t.Run("the caller's deadline ends the wait", func(t *testing.T) {
		op, _ := results(always...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
		defer cancel()
		err := WhileBusy(ctx, time.Hour, op, nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, ihk.ErrBusy)
	})
	t.Run("an error from between ends the retries", func(t *testing.T) {
		op, n := results(always...)
		stop := errors.New("holders survive SIGKILL")
		err := WhileBusy(context.Background(), time.Hour, op, func(time.Duration) error { return stop })
		require.ErrorIs(t, err, stop)
		require.Equal(t, 1, *n)
	})
	t.Run("other errors end the retries", func(t *testing.T) {
		op, n := results(busy, ihkErr(syscall.EPERM))
		err := WhileBusy(context.Background(), time.Hour, op, nil)
		require.ErrorIs(t, err, ihk.ErrPermission)
		require.Equal(t, 2, *n)
	})
}

func TestGone(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&ihk.Error{Op: "IHK_DEVICE_DESTROY_OS", OS: 5, Errno: syscall.EINVAL, NotFound: true}, true},
		{ihkErr(syscall.ENOENT), true},
		{fmt.Errorf("kill 42: %w", syscall.ESRCH), true},
		{ihkErr(syscall.EINVAL), false},
		{ihkErr(syscall.EBUSY), false},
		{nil, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			require.Equal(t, tc.want, Gone(tc.err))
		})
	}
}
