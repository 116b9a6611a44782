package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/cpuhotplug"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// With real Linux-side effects, reserving takes the CPUs offline in the
// sysfs tree and releasing brings them back; a CPU the kernel will not
// take offline fails the reservation with EBUSY and changes nothing.
func TestReserveCPUsTakesThemOffline(t *testing.T) {
	root := t.TempDir()
	online := func(c int) string {
		return filepath.Join(root, "sys/devices/system/cpu", "cpu"+strconv.Itoa(c), "online")
	}
	for c := 1; c < 8; c++ {
		require.NoError(t, os.MkdirAll(filepath.Dir(online(c)), 0o755))
		require.NoError(t, os.WriteFile(online(c), []byte("1\n"), 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "sys/devices/system/cpu/cpu0"), 0o755)) // no online file
	b := newBackend(t, func(o *Options) { o.CPUHotplug = cpuhotplug.New(root) })
	ctx := context.Background()
	read := func(c int) string {
		v, err := os.ReadFile(online(c))
		require.NoError(t, err)
		return string(v)
	}

	require.NoError(t, b.ReserveCPUs(ctx, []int{4, 5}))
	require.Equal(t, "0", read(4))
	require.Equal(t, "0", read(5))

	err := b.ReserveCPUs(ctx, []int{6, 0})
	var ie *ihk.Error
	require.True(t, errors.As(err, &ie), "%v", err)
	require.Equal(t, syscall.EBUSY, ie.Errno)
	require.Equal(t, "1", read(6), "cpu 6 went offline, then back when cpu 0 refused")
	got, err := b.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{4, 5}, got)

	require.NoError(t, b.ReleaseCPUs(ctx, []int{4, 5}))
	require.Equal(t, "1", read(4))
	require.Equal(t, "1", read(5))
}
