package sim

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

func states(acts []ihk.CPUActivity) []int32 {
	out := make([]int32, len(acts))
	for i, a := range acts {
		out[i] = a.State
	}
	return out
}

// TestCPUActivityFollowsTheInstance: the simulated monitor page has one
// entry per LWK CPU whose state follows the instance (holders running,
// frozen, panicked, hung), and is refused before boot like the driver's.
func TestCPUActivityFollowsTheInstance(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	idx, err := b.CreateOS(ctx)
	require.NoError(t, err)
	_, err = b.CPUActivity(ctx, idx)
	var ie *ihk.Error
	require.True(t, errors.As(err, &ie), "%v", err)
	require.Equal(t, syscall.ENOSYS, ie.Errno, "before boot")
	require.NoError(t, b.DestroyOS(ctx, idx))

	idx = booted(t, b, []int{2, 3, 4})
	acts, err := b.CPUActivity(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, []int32{ihk.MonitorIdle, ihk.MonitorIdle, ihk.MonitorIdle}, states(acts), "no program yet")

	release := hold(t, b, idx)
	acts, err = b.CPUActivity(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, []int32{ihk.MonitorUser, ihk.MonitorIdle, ihk.MonitorIdle}, states(acts), "one mcexec, one busy CPU")
	release()

	require.NoError(t, b.Freeze(ctx, idx))
	time.Sleep(2 * freezeLatency)
	acts, err = b.CPUActivity(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, []int32{ihk.MonitorFrozen, ihk.MonitorFrozen, ihk.MonitorFrozen}, states(acts))
	require.NoError(t, b.Thaw(ctx, idx))

	require.NoError(t, b.InjectHang(ctx, idx))
	_, err = b.DetectHangup(ctx, idx)
	require.NoError(t, err)
	hung, err := b.CPUActivity(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, int32(ihk.MonitorKernel), hung[0].State)
	time.Sleep(5 * time.Millisecond)
	later, err := b.CPUActivity(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, hung[0].Counter, later[0].Counter, "a hung CPU's counter stands still")

	require.NoError(t, b.DestroyOS(ctx, idx))
	other := booted(t, b, []int{5})
	require.NoError(t, b.InjectPanic(ctx, other))
	acts, err = b.CPUActivity(ctx, other)
	require.NoError(t, err)
	require.Equal(t, []int32{ihk.MonitorPanic}, states(acts))
}

// TestCallsCountsEachIoctl: every operation is counted under its ioctl
// name; the monitor-page read and PerfSet under both of the driver's
// requests, PerfControl under the request of its operation.
func TestCallsCountsEachIoctl(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, nil)
	idx := booted(t, b, []int{2})
	before := b.Calls()
	for range 3 {
		_, err := b.Status(ctx, idx)
		require.NoError(t, err)
	}
	_, err := b.CPUActivity(ctx, idx)
	require.NoError(t, err)
	_, err = b.Rusage(ctx, idx)
	require.NoError(t, err)
	n, err := b.PerfSet(ctx, idx, []ihk.PerfAttr{{Config: 0x3c}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, b.PerfControl(ctx, idx, ihk.PerfEnable))
	_, err = b.PerfRead(ctx, idx, 1)
	require.NoError(t, err)
	require.NoError(t, b.PerfControl(ctx, idx, ihk.PerfDisable))
	require.NoError(t, b.PerfControl(ctx, idx, ihk.PerfDestroy))
	_, err = b.Status(ctx, 63)
	require.Error(t, err, "failed calls count too")
	after := b.Calls()
	require.Equal(t, uint64(1), before["IHK_OS_BOOT"])
	for name, want := range map[string]uint64{"IHK_OS_STATUS": 4, "IHK_OS_GET_USAGE": 1, "IHK_OS_GET_CPU_USAGE": 1, "IHK_OS_GETRUSAGE": 1, "IHK_OS_BOOT": 0,
		"IHK_OS_AUX_PERF_NUM": 1, "IHK_OS_AUX_PERF_SET": 1, "IHK_OS_AUX_PERF_ENABLE": 1, "IHK_OS_AUX_PERF_GET": 1,
		"IHK_OS_AUX_PERF_DISABLE": 1, "IHK_OS_AUX_PERF_DESTROY": 1, "IHK_OS_AUX_PERF_ENABLE/DISABLE/DESTROY": 0} {
		require.Equal(t, want, after[name]-before[name], name)
	}
}
