package monitor_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// TestPerfCountersFollowTheProfile: the monitor programs and starts the
// counters of the job's profile when it first sees the LWK, reads them at
// every sample, and disables, reads and destroys them when it exits; a
// job of a profile without PerfEvents gets none.
func TestPerfCountersFollowTheProfile(t *testing.T) {
	e := newEnv(t)
	e.boot(41)
	proxy, _ := e.startProxy()
	defer stopProxy(proxy)
	m := e.newMonitor(e.sim, &fakeSlurm{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer cancel()

	var first uint64
	waitFor(t, "counters read by a sample", func() bool {
		rec, _ := m.Record(context.Background(), 41, 0)
		if rec == nil || rec.Perf["0x3c"] == 0 {
			return false
		}
		first = rec.Perf["0x3c"]
		return true
	})
	waitFor(t, "counters still counting at later samples", func() bool {
		rec, _ := m.Record(context.Background(), 41, 0)
		return rec != nil && rec.Perf["0x3c"] > first
	})
	started := e.sim.Calls()
	for name, want := range map[string]uint64{"IHK_OS_AUX_PERF_NUM": 1, "IHK_OS_AUX_PERF_SET": 1, "IHK_OS_AUX_PERF_ENABLE": 1,
		"IHK_OS_AUX_PERF_DISABLE": 0, "IHK_OS_AUX_PERF_DESTROY": 0} {
		require.Equal(t, want, started[name], "%s while the job runs", name)
	}
	require.Positive(t, started["IHK_OS_AUX_PERF_GET"], "read at samples")
	v, err := e.sim.PerfRead(context.Background(), e.os, 1)
	require.NoError(t, err, "one counter registered")
	require.Positive(t, v[0], "and enabled")
	_, err = e.sim.PerfRead(context.Background(), e.os, 2)
	require.Error(t, err, "only the profile's one counter is registered")

	cancel()
	require.NoError(t, <-done)
	stopped := e.sim.Calls()
	require.Equal(t, uint64(1), stopped["IHK_OS_AUX_PERF_DISABLE"], "disabled on exit")
	require.Equal(t, uint64(1), stopped["IHK_OS_AUX_PERF_DESTROY"], "destroyed on exit")
	require.Equal(t, uint64(1), stopped["IHK_OS_AUX_PERF_SET"], "programmed once")
	_, err = e.sim.PerfRead(context.Background(), e.os, 1)
	var ie *ihk.Error
	require.True(t, errors.As(err, &ie), "counters destroyed on exit: %v", err)
	require.Equal(t, syscall.EINVAL, ie.Errno)
}

// TestNoPerfCountersWithoutPerfEvents: a profile without PerfEvents gets
// no counters.
func TestNoPerfCountersWithoutPerfEvents(t *testing.T) {
	e := newEnv(t)
	e.boot(42)
	e.perf = map[string][]ihk.PerfAttr{"other": {{Config: 0xc0}}}
	m := e.newMonitor(e.sim, &fakeSlurm{}, nil)
	run(t, m)
	waitFor(t, "samples", func() bool { in, ok := instanceOf(m, 42); return ok && in.Samples >= 2 })
	_, err := e.sim.PerfRead(context.Background(), e.os, 1)
	require.Error(t, err, "nothing registered for profile mck")
	rec, _ := m.Record(context.Background(), 42, 0)
	require.NotNil(t, rec)
	require.Empty(t, rec.Perf)
}
