package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
	"github.com/slurm-lwk/slurm-lwk/pkg/finalusage"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
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

// TestSamplesNeverPollStatus: a sample reads rusage and the monitor page
// (IHK_OS_GET_USAGE, IHK_OS_GET_CPU_USAGE) and never IHK_OS_STATUS, which
// writes two lines to the kernel log on x86. Registration reads the status
// once.
func TestSamplesNeverPollStatus(t *testing.T) {
	e := newEnv(t)
	e.boot(51)
	proxy, _ := e.startProxy()
	defer stopProxy(proxy)
	m := e.newMonitor(e.sim, &fakeSlurm{}, nil)
	ctx := context.Background()
	before := e.sim.Calls()
	m.Once(ctx) // finds and registers the instance, samples once
	registered := e.sim.Calls()
	require.Equal(t, uint64(1), registered["IHK_OS_STATUS"]-before["IHK_OS_STATUS"], "registration reads the status once")
	const n = 5
	for range n {
		m.SampleAll(ctx)
	}
	after := e.sim.Calls()
	require.Zero(t, after["IHK_OS_STATUS"]-registered["IHK_OS_STATUS"], "samples never call STATUS")
	for _, name := range []string{"IHK_OS_GETRUSAGE", "IHK_OS_GET_USAGE", "IHK_OS_GET_CPU_USAGE"} {
		require.Equal(t, uint64(n), after[name]-registered[name], name)
	}
	in, ok := instanceOf(m, 51)
	require.True(t, ok)
	require.Equal(t, n+1, in.Samples)
	require.Equal(t, 1, in.CPUStates[monitor.CPUUser], "the proxy's program busies one LWK CPU")
	require.Equal(t, 3, in.CPUStates[monitor.CPUIdle])
}

// TestJobEndedBeforeTheMonitorSawIt: a job whose epilog ran before any
// rescan saw it running still gets its final record from the epilog's
// reading, and the reading does not stay behind; an unusable reading of
// such a job is removed, and the reading of a job whose epilog has not
// finished (its journal is still there) is left alone.
func TestJobEndedBeforeTheMonitorSawIt(t *testing.T) {
	e := newEnv(t)
	e.boot(7)
	e.epilog(e.sim)
	require.FileExists(t, finalusage.Path(e.logDir, 7, e.os), "the epilog left its reading")
	garbage := finalusage.Path(e.logDir, 9, 0)
	require.NoError(t, os.WriteFile(garbage, []byte("{not json"), 0o600))
	// Job 11's epilog is still running: its journal is there.
	rec := &journal.Record{JobID: 11, User: "root", Created: time.Now().UTC()}
	require.NoError(t, e.store.Write(rec))
	pending := finalusage.Reading{JobID: 11, OS: 1, Time: time.Now().UTC(), Rusage: &ihk.Rusage{}}
	require.NoError(t, finalusage.Write(e.logDir, pending))

	m := e.newMonitor(e.sim, &fakeSlurm{}, nil)
	run(t, m)
	waitFor(t, "the final record of job 7", func() bool {
		return fileContains(e.spool.RecordPath(7), `"final":"epilog"`)
	})
	require.NoFileExists(t, finalusage.Path(e.logDir, 7, e.os), "reading consumed")
	waitFor(t, "the unusable reading removed", func() bool {
		_, err := os.Stat(garbage)
		return errors.Is(err, fs.ErrNotExist)
	})
	require.FileExists(t, finalusage.Path(e.logDir, 11, 1), "a running epilog's reading is left to it")
	require.False(t, fileContains(e.spool.RecordPath(9), "job"), "no record for an unusable reading")
}

// TestRecordWaitsForAJobNotYetTracked: a record request for a job the
// monitor has not looked at yet, though its epilog has run here, waits for
// the final record instead of answering "unknown"; a job that never was on
// the node is unknown at once.
func TestRecordWaitsForAJobNotYetTracked(t *testing.T) {
	e := newEnv(t)
	e.boot(7)
	e.epilog(e.sim)
	m := e.newMonitor(e.sim, &fakeSlurm{}, nil)
	type answer struct {
		rec *accounting.NodeRecord
		ok  bool
	}
	got := make(chan answer, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		rec, ok := m.Record(context.Background(), 7, 10*time.Second)
		got <- answer{rec, ok}
	}()
	<-started
	time.Sleep(200 * time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("answered before the monitor looked: %+v", a)
	default:
	}
	run(t, m) // its first rescan finds the epilog's reading
	a := <-got
	require.True(t, a.ok, "the job was reported unknown")
	require.Equal(t, accounting.FinalEpilog, a.rec.Final)

	start := time.Now()
	_, ok := m.Record(context.Background(), 8, 10*time.Second)
	require.False(t, ok)
	require.Less(t, time.Since(start), 5*time.Second, "an unknown job waited")
}
