package monitor_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// TestSamplingAndFinalRecord: the monitor finds the job from its journal,
// samples the LWK's rusage (the simulator counts the proxy's spinning
// child), and once the epilog has run serves a final record built from the
// epilog's last reading, over HTTP.
func TestSamplingAndFinalRecord(t *testing.T) {
	e := newEnv(t)
	e.boot(7)
	proxy, _ := e.startProxy()
	s := &fakeSlurm{}
	m := e.newMonitor(e.sim, s, nil)
	run(t, m)
	waitFor(t, "samples with LWK CPU time", func() bool {
		in, ok := instanceOf(m, 7)
		return ok && in.Samples >= 3 && in.Rusage != nil && in.Rusage.UserNanoseconds > 0
	})
	in, _ := instanceOf(m, 7)
	require.Equal(t, ihk.StatusRunning, in.Status)
	require.GreaterOrEqual(t, e.samples(7), 3, "samples spooled as JSON lines")

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	// While the job runs, a short wait gives a partial record (202).
	resp, err := http.Get(srv.URL + "/v1/jobs/7/record?wait=10ms")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	// A request waiting for the final record is answered when the epilog
	// has run.
	type answer struct {
		code int
		rec  accounting.NodeRecord
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/v1/jobs/7/record?wait=20s")
		if err != nil {
			got <- answer{}
			return
		}
		defer resp.Body.Close()
		var a answer
		a.code = resp.StatusCode
		_ = json.NewDecoder(resp.Body).Decode(&a.rec)
		got <- a
	}()
	time.Sleep(50 * time.Millisecond)
	stopProxy(proxy)
	e.epilog(e.sim)
	a := <-got
	require.Equal(t, http.StatusOK, a.code)
	rec := a.rec
	require.Equal(t, accounting.FinalEpilog, rec.Final, "final reading taken by the epilog before DESTROY")
	require.Equal(t, uint32(7), rec.JobID)
	require.Equal(t, "n1", rec.Node)
	require.Positive(t, rec.UserSeconds)
	require.GreaterOrEqual(t, rec.UserSeconds, float64(in.Rusage.UserNanoseconds)/1e9, "the final reading is not older than a sample")
	require.GreaterOrEqual(t, rec.Samples, 3)
	require.Positive(t, rec.BootSeconds)
	require.Positive(t, rec.TeardownSeconds)
	require.Contains(t, rec.Perf, "0x3c", "the profile's counter was programmed and read")
	require.True(t, fileContains(e.spool.RecordPath(7), `"final":"epilog"`), "final record spooled")

	resp, err = http.Get(srv.URL + "/v1/jobs/8/record")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// TestPanicHangOOMFailJobAndDrain: each LWK failure, raised the way the
// driver raises it (STATUS eventfd on panic, DETECT_HUNGUP for a hang, OOM
// eventfd), saves the kernel log, writes the reason to the proxy's stderr,
// fails the job and drains the node with a reason starting "lwk:".
func TestPanicHangOOMFailJobAndDrain(t *testing.T) {
	cases := []struct {
		name   string
		inject func(e *env) error
		kind   string
		text   string
		kmsg   string
	}{
		{"panic", func(e *env) error { return e.sim.InjectPanic(context.Background(), e.os) }, "panic", "LWK kernel panic", "Kernel panic"},
		{"hang", func(e *env) error { return e.sim.InjectHang(context.Background(), e.os) }, "hang", "LWK hang detected", "hang detected"},
		{"oom", func(e *env) error { return e.sim.InjectOOM(context.Background(), e.os) }, "oom", "LWK out of memory", "OOM margin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.boot(21)
			proxy, stderr := e.startProxy()
			s := &fakeSlurm{}
			m := e.newMonitor(e.sim, s, nil)
			run(t, m)
			waitFor(t, "a first sample (events registered)", func() bool {
				in, ok := instanceOf(m, 21)
				return ok && in.Samples > 0
			})
			require.NoError(t, tc.inject(e))
			waitFor(t, "the job failed and the node drained", func() bool {
				failed, drained := s.state()
				return failed[21] != "" && len(drained) > 0
			})
			failed, drained := s.state()
			require.Len(t, drained, 1, "drained once")
			require.True(t, strings.HasPrefix(drained[0], "lwk: "+tc.text), "drain reason %q", drained[0])
			require.Equal(t, drained[0], failed[21])
			kmsg := e.spool.KmsgPath(21, e.os, tc.kind)
			require.Contains(t, drained[0], kmsg, "the reason names the saved kernel log")
			require.True(t, fileContains(kmsg, tc.kmsg), "kernel log saved with the event")
			waitFor(t, "the reason on the task's stderr", func() bool { return strings.Contains(stderr.String(), "lwk: "+tc.text) })
			in, _ := instanceOf(m, 21)
			require.Equal(t, 1, in.Events[tc.kind])
			require.EqualValues(t, 1, m.Snapshot().Counters.Events[tc.kind])

			stopProxy(proxy)
			e.epilog(e.sim)
			rec, ok := m.Record(context.Background(), 21, 5*time.Second)
			require.True(t, ok)
			require.Equal(t, 1, rec.Events[tc.kind], "the event is in the node's record")
		})
	}
}

// TestSuspendFreezesResumeThaws: stopping the job's proxies (what
// scontrol suspend does) freezes the LWK through IHK; continuing them
// thaws it.
func TestSuspendFreezesResumeThaws(t *testing.T) {
	e := newEnv(t)
	e.boot(31)
	proxy, _ := e.startProxy()
	m := e.newMonitor(e.sim, &fakeSlurm{}, nil)
	run(t, m)
	waitFor(t, "the instance tracked", func() bool { _, ok := instanceOf(m, 31); return ok })
	status := func() ihk.Status {
		st, err := e.sim.Status(context.Background(), e.os)
		require.NoError(t, err)
		return st
	}
	require.Equal(t, ihk.StatusRunning, status())

	require.NoError(t, proxy.Process.Signal(syscall.SIGSTOP))
	waitFor(t, "the LWK frozen", func() bool { return status() == ihk.StatusFrozen })
	in, _ := instanceOf(m, 31)
	require.True(t, in.Frozen)
	require.Equal(t, 1, in.Events["freeze"])

	require.NoError(t, proxy.Process.Signal(syscall.SIGCONT))
	waitFor(t, "the LWK thawed", func() bool { return status() == ihk.StatusRunning })
	waitFor(t, "the thaw counted", func() bool { in, _ := instanceOf(m, 31); return in.Events["thaw"] == 1 && !in.Frozen })
}
