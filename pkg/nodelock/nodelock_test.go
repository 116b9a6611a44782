package nodelock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAcquireExcludesAndReleases(t *testing.T) {
	dir := t.TempDir()
	first, err := Acquire(context.Background(), dir)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = Acquire(ctx, dir)
	require.True(t, errors.Is(err, ErrTimeout), "second acquire while held: %v", err)

	require.NoError(t, first.Release())
	second, err := Acquire(context.Background(), dir)
	require.NoError(t, err, "acquire after release")
	require.NoError(t, second.Release())
}

func TestAcquireWaitsForRelease(t *testing.T) {
	dir := t.TempDir()
	held, err := Acquire(context.Background(), dir)
	require.NoError(t, err)
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = held.Release()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := Acquire(ctx, dir)
	require.NoError(t, err)
	require.NoError(t, l.Release())
}

func TestAcquireMissingDir(t *testing.T) {
	_, err := Acquire(context.Background(), "/nonexistent/slurm-lwk")
	require.Error(t, err)
	require.Contains(t, err.Error(), "/nonexistent/slurm-lwk/lock")
}
