package apply

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
)

// statuses fakes the one IHK operation waitRunning uses; calling any other
// panics (the embedded interface is nil).
type statuses struct {
	IHK
	seq   []any // ihk.Status or error, in turn; the last one repeats
	calls int
}

func (s *statuses) Status(ctx context.Context, os int) (ihk.Status, error) {
	v := s.seq[min(s.calls, len(s.seq)-1)]
	s.calls++
	if err, ok := v.(error); ok {
		return 0, err
	}
	return v.(ihk.Status), nil
}

func TestWaitRunning(t *testing.T) {
	eintr := &ihk.Error{Op: "IHK_OS_STATUS", OS: 0, Errno: syscall.EINTR}
	tests := []struct {
		name      string
		seq       []any
		ctxTime   time.Duration // 0: no deadline
		cancel    bool
		wantErr   error
		wantMsg   string
		wantCalls int
	}{
		{name: "RUNNING after READY", seq: []any{ihk.StatusReady, ihk.StatusReady, ihk.StatusRunning}, wantCalls: 3},
		{name: "already RUNNING", seq: []any{ihk.StatusRunning}, wantCalls: 1},
		{name: "BOOTING and BOOTED are still starting", seq: []any{ihk.StatusBooting, ihk.StatusBooted, ihk.StatusRunning}, wantCalls: 3},
		{name: "EINTR is retried at once", seq: []any{eintr, ihk.StatusRunning}, wantCalls: 2},
		{name: "FAILED", seq: []any{ihk.StatusBooted, ihk.StatusFailed}, wantMsg: "os 0 is FAILED, not RUNNING"},
		{name: "HUNGUP", seq: []any{ihk.StatusHungup}, wantMsg: "os 0 is HUNGUP, not RUNNING"},
		{name: "shut down meanwhile", seq: []any{ihk.StatusNotBooted}, wantMsg: "os 0 is NOT_BOOTED, not RUNNING"},
		{name: "SHUTDOWN", seq: []any{ihk.StatusShutdown}, wantMsg: "os 0 is SHUTDOWN, not RUNNING"},
		{name: "frozen meanwhile does not run by itself", seq: []any{ihk.StatusFrozen}, wantMsg: "os 0 is FROZEN, not RUNNING"},
		{name: "FREEZING", seq: []any{ihk.StatusFreezing}, wantMsg: "os 0 is FREEZING, not RUNNING"},
		{name: "status fails", seq: []any{&ihk.Error{Op: "open", OS: 0, Errno: syscall.ENOENT}}, wantErr: ihk.ErrNotFound},
		{name: "stuck at READY: deadline", seq: []any{ihk.StatusReady}, ctxTime: 40 * time.Millisecond,
			wantErr: ihk.ErrTimeout, wantMsg: "os 0 still READY"},
		{name: "stuck at BOOTED: canceled", seq: []any{ihk.StatusBooted}, cancel: true,
			wantErr: context.Canceled, wantMsg: "os 0 still BOOTED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &statuses{seq: tc.seq}
			r := &runner{d: Deps{IHK: fake, StatusInterval: 5 * time.Millisecond,
				Node: teardown.Node{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.ctxTime > 0 {
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTime)
				defer cancel()
			}
			if tc.cancel {
				time.AfterFunc(30*time.Millisecond, cancel)
			}
			start := time.Now()
			err := r.waitRunning(ctx)
			require.Less(t, time.Since(start), 2*time.Second, "gave up promptly")
			if tc.wantErr == nil && tc.wantMsg == "" {
				require.NoError(t, err)
				require.Equal(t, tc.wantCalls, fake.calls)
				return
			}
			require.Error(t, err)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			if !errors.Is(tc.wantErr, ihk.ErrTimeout) {
				require.False(t, errors.Is(err, ihk.ErrTimeout), "not a timeout: %v", err)
			}
			require.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}
