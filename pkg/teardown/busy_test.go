package teardown_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
)

// busyDriver fakes teardown's IHK operations around one instance whose
// DESTROY_OS answers the given errnos in turn, then succeeds.
type busyDriver struct {
	destroy []syscall.Errno
	calls   int
}

func (b *busyDriver) ListOS(context.Context) ([]int, error) { return []int{3}, nil }
func (b *busyDriver) ReadKmsg(context.Context, int) ([]byte, error) {
	return nil, &ihk.Error{Op: "IHK_OS_READ_KMSG", OS: 3, Errno: syscall.EINVAL}
}
func (b *busyDriver) DestroyOS(_ context.Context, os int) error {
	b.calls++
	if b.calls <= len(b.destroy) {
		e := b.destroy[b.calls-1]
		return &ihk.Error{Op: "IHK_DEVICE_DESTROY_OS", OS: os, Errno: e, NotFound: e == syscall.EINVAL}
	}
	return nil
}
func (b *busyDriver) ReservedCPUs(context.Context) ([]int, error)            { return nil, nil }
func (b *busyDriver) ReleaseCPUs(context.Context, []int) error               { return nil }
func (b *busyDriver) ReservedMemory(context.Context) ([]ihk.MemChunk, error) { return nil, nil }
func (b *busyDriver) ReleaseMemory(context.Context, []ihk.MemChunk) error    { return nil }

func TestDestroyRetries(t *testing.T) {
	busy := make([]syscall.Errno, 1000)
	for i := range busy {
		busy[i] = syscall.EBUSY
	}
	tests := []struct {
		name       string
		destroy    []syscall.Errno
		wantErr    error
		wantIs     error
		wantDetail string
		wantOS     []int
		maxCalls   int
	}{
		{name: "destroyed at once", wantOS: []int{3}, maxCalls: 1},
		{name: "EINTR then EBUSY, then destroyed", destroy: []syscall.Errno{syscall.EINTR, syscall.EBUSY}, wantOS: []int{3}, maxCalls: 3},
		{name: "no such os is success", destroy: []syscall.Errno{syscall.EINVAL}, wantOS: []int{3}, maxCalls: 1},
		{name: "busy past DestroyTimeout leaves the node unusable", destroy: busy,
			wantErr: teardown.ErrNodeUnusable, wantIs: ihk.ErrBusy, wantDetail: "still busy after 150ms", maxCalls: 8},
		{name: "another failure leaves the node unusable", destroy: []syscall.Errno{syscall.EIO},
			wantErr: teardown.ErrNodeUnusable, wantIs: syscall.EIO, wantDetail: "input/output error", maxCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store, err := journal.Open(filepath.Join(dir, "journal"))
			require.NoError(t, err)
			drv := &busyDriver{destroy: tc.destroy}
			d := teardown.Deps{IHK: drv, Node: teardown.Node{Journal: store,
				DevDir: filepath.Join(dir, "dev"), RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log"),
				Proc: procfs.FS{Root: t.TempDir()}, DestroyTimeout: 150 * time.Millisecond, KillGrace: time.Millisecond,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
			start := time.Now()
			res, err := teardown.Run(context.Background(), d, 42)
			require.Less(t, time.Since(start), 2*time.Second)
			require.LessOrEqual(t, drv.calls, tc.maxCalls, "a bounded backoff, not a spin")
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.wantDetail)
				require.ErrorIs(t, err, tc.wantIs, "the driver's error is kept")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantOS, res.OS)
		})
	}
}
