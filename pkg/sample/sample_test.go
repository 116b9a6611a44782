package sample

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// driver fakes the three operations sampling uses.
type driver struct {
	os      []int
	listErr error
	status  map[int]ihk.Status
	rusage  map[int]*ihk.Rusage
	calls   []string
}

func (d *driver) ListOS(context.Context) ([]int, error) { return d.os, d.listErr }

func (d *driver) Status(_ context.Context, os int) (ihk.Status, error) {
	d.calls = append(d.calls, "status")
	st, ok := d.status[os]
	if !ok {
		return 0, &ihk.Error{Op: "open", OS: os, Errno: syscall.ENOENT}
	}
	return st, nil
}

func (d *driver) Rusage(_ context.Context, os int) (*ihk.Rusage, error) {
	d.calls = append(d.calls, "rusage")
	if ru, ok := d.rusage[os]; ok {
		return ru, nil
	}
	return nil, &ihk.Error{Op: "IHK_OS_GETRUSAGE", OS: os, Errno: syscall.EINVAL}
}

func TestTake(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.FixedZone("JST", 9*3600))
	ru := &ihk.Rusage{UserNanoseconds: 42, Threads: 3}
	d := &driver{
		os:     []int{0, 1, 2, 3},
		status: map[int]ihk.Status{0: ihk.StatusRunning, 1: ihk.StatusNotBooted, 2: ihk.StatusFrozen},
		rusage: map[int]*ihk.Rusage{0: ru},
	}
	got, err := Take(context.Background(), d, func() time.Time { return at })
	require.NoError(t, err)
	utc := at.UTC()
	require.Equal(t, []Sample{
		{Time: utc, OS: 0, Status: "RUNNING", Rusage: ru},
		{Time: utc, OS: 1, Status: "NOT_BOOTED"}, // no rusage before boot: not asked
		{Time: utc, OS: 2, Status: "FROZEN", Error: "ihk IHK_OS_GETRUSAGE os 2: invalid argument"},
		{Time: utc, OS: 3, Error: "ihk open os 3: no such file or directory"},
	}, got)
	require.Equal(t, []string{"status", "rusage", "status", "status", "rusage", "status"}, d.calls)
}

func TestTakeListFails(t *testing.T) {
	d := &driver{listErr: &ihk.Error{Op: "list_os", OS: -1, Errno: syscall.EACCES}}
	_, err := Take(context.Background(), d, time.Now)
	require.ErrorIs(t, err, ihk.ErrPermission)
}
