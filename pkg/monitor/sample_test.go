package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/metrics"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/spool"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// fakeIHK is the part of IHK the monitor uses (monitor.IHK and the quiet
// monitor-page reader), answering from fixed values: no driver, no root.
type fakeIHK struct {
	status   ihk.Status
	rusage   *ihk.Rusage
	rusageEr error
	activity []ihk.CPUActivity

	mu    sync.Mutex
	calls map[string]int
}

func (f *fakeIHK) count(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
}

func (f *fakeIHK) Status(context.Context, int) (ihk.Status, error) {
	f.count("status")
	return f.status, nil
}

func (f *fakeIHK) Rusage(context.Context, int) (*ihk.Rusage, error) {
	f.count("rusage")
	if f.rusageEr != nil {
		return nil, f.rusageEr
	}
	r := *f.rusage
	return &r, nil
}

func (f *fakeIHK) DetectHangup(context.Context, int) (ihk.Status, error) {
	f.count("detect_hangup")
	return f.status, nil
}

// RegisterEvent hands out a real eventfd nothing ever signals.
func (f *fakeIHK) RegisterEvent(context.Context, int, ihk.EventType) (ihk.EventFD, error) {
	f.count("register_event")
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return eventFD(fd), nil
}

func (f *fakeIHK) ReadKmsg(context.Context, int) ([]byte, error) {
	f.count("read_kmsg")
	return nil, nil
}
func (f *fakeIHK) Freeze(context.Context, int) error { f.count("freeze"); return nil }
func (f *fakeIHK) Thaw(context.Context, int) error   { f.count("thaw"); return nil }

func (f *fakeIHK) CPUActivity(context.Context, int) ([]ihk.CPUActivity, error) {
	f.count("cpu_activity")
	return f.activity, nil
}

type eventFD int

func (e eventFD) Fd() int               { return int(e) }
func (e eventFD) Read() (uint64, error) { return 0, syscall.EAGAIN }
func (e eventFD) Close() error          { return unix.Close(int(e)) }

// fakeLock is the node lock, free or held by a prolog.
type fakeLock struct{ held bool }

func (l fakeLock) TryLock() (func(), error) {
	if l.held {
		return nil, monitor.ErrLocked
	}
	return func() {}, nil
}

func (l fakeLock) Lock(context.Context) (func(), error) { return l.TryLock() }

// fakeJournals holds journal records in memory.
type fakeJournals map[uint32]*journal.Record

func (j fakeJournals) List() ([]uint32, error) {
	var ids []uint32
	for id := range j {
		ids = append(ids, id)
	}
	return ids, nil
}

func (j fakeJournals) Read(id uint32) (*journal.Record, error) {
	if r, ok := j[id]; ok {
		return r, nil
	}
	return nil, &journal.NotFoundError{JobID: id}
}

// bootedRecord is the journal of a job whose prolog booted os idx and wrote
// its marker.
func bootedRecord(t *testing.T, job uint32, idx int) *journal.Record {
	t.Helper()
	rec := &journal.Record{JobID: job, User: "alice", Created: time.Now().Add(-3 * time.Second), Plan: json.RawMessage(`{"profile":"mck"}`)}
	for _, s := range steps.All {
		var data any
		if s == steps.CreateOS {
			data = steps.OS{OS: idx}
		}
		require.NoError(t, rec.Begin(s, nil))
		require.NoError(t, rec.Done(s, data))
	}
	return rec
}

// TestSamplePass runs one sample pass (Once: find the booted job, register
// it, sample it, read the readiness) against a fake IHK, fixture /proc and
// sysfs trees and in-memory journals, as any user, and checks what the
// snapshot and the metrics then say.
func TestSamplePass(t *testing.T) {
	const job, idx = 21, 3
	ru := &ihk.Rusage{
		MemoryRSSBytes:      [ihk.NumPageSizes]uint64{8 << 20, 64 << 20},
		MemoryMaxUsageBytes: 96 << 20, KmemUsageBytes: 5 << 20,
		SystemTicks: 150, UserTicks: 4200, UserNanoseconds: 42_000_000_000,
		Threads: 14, MaxThreads: 16,
	}
	busy := []ihk.CPUActivity{{State: ihk.MonitorUser, Counter: 9}, {State: ihk.MonitorUser, Counter: 4}, {State: ihk.MonitorIdle, Counter: 1}}
	tests := []struct {
		name   string
		ihk    *fakeIHK
		locked bool
		// want* are what the snapshot and the metrics must show.
		wantRegistered                  bool
		wantRusage                      *ihk.Rusage
		wantStates                      map[monitor.CPUState]int
		wantSamples, wantErrs, wantSkip float64
	}{
		{name: "running lwk", ihk: &fakeIHK{status: ihk.StatusRunning, rusage: ru, activity: busy},
			wantRegistered: true, wantRusage: ru, wantStates: map[monitor.CPUState]int{monitor.CPUUser: 2, monitor.CPUIdle: 1}, wantSamples: 1},
		{name: "rusage fails", ihk: &fakeIHK{status: ihk.StatusRunning, rusageEr: &ihk.Error{Op: "IHK_OS_GETRUSAGE", OS: idx, Errno: syscall.EIO}},
			wantRegistered: true, wantErrs: 1},
		{name: "a prolog holds the node lock", ihk: &fakeIHK{status: ihk.StatusRunning, rusage: ru, activity: busy}, locked: true,
			wantSkip: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			runDir, logDir := filepath.Join(dir, "run"), filepath.Join(dir, "log")
			_, err := jobmarker.Write(runDir, job, idx)
			require.NoError(t, err)
			proc := filepath.Join(dir, "proc")
			require.NoError(t, os.MkdirAll(proc, 0o755))
			// Node 2 with 11 free 4 MiB blocks (4 KiB pages, order 10) and
			// smaller ones that do not count.
			require.NoError(t, os.WriteFile(filepath.Join(proc, "buddyinfo"),
				[]byte("Node 0, zone   Normal  10 5 3 1 0 0 0 0 0 0 2\nNode 2, zone  Movable   7 6 5 4 3 2 1 0 0 0 11\n"), 0o644))
			sp, err := spool.Open(filepath.Join(dir, "spool"), 64<<20, 8<<20)
			require.NoError(t, err)
			var driver float64 = 0.25
			m, err := monitor.New(monitor.Config{
				Node: "n1", DevDir: filepath.Join(dir, "dev"), RunDir: runDir, LogDir: logDir,
				Interval: time.Minute, ReadinessNodes: []int{2},
				SysfsRoot: fixture.Root(t, "paper-e5520-fake12"), Proc: procfs.FS{Root: proc},
				DriverTime: func() time.Duration { return time.Duration(driver * float64(time.Second)) },
			}, monitor.Deps{
				IHK: tc.ihk, Journals: fakeJournals{job: bootedRecord(t, job, idx)}, Lock: fakeLock{held: tc.locked},
				Slurm: &fakeSlurm{}, Proxies: monitor.ProcProxies{Proc: procfs.FS{Root: proc}, CgroupRoot: filepath.Join(dir, "cgroup")},
				Spool: sp, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			require.NoError(t, err)
			m.Once(context.Background())

			s := m.Snapshot()
			require.Len(t, s.Instances, 1)
			in := s.Instances[0]
			require.Equal(t, uint32(job), in.Job)
			require.Equal(t, idx, in.OS)
			require.Equal(t, tc.wantRegistered, in.Registered)
			require.Equal(t, tc.wantRusage, in.Rusage)
			require.Equal(t, tc.wantStates, in.CPUStates)
			require.Equal(t, int(tc.wantSamples), in.Samples)
			require.Equal(t, []monitor.InstanceSnapshot{in}, s.Instances)
			require.NotNil(t, s.SimDriverSeconds)
			require.InDelta(t, 0.25, *s.SimDriverSeconds, 1e-9)
			require.Len(t, s.Readiness, 1)
			require.Equal(t, 2, s.Readiness[0].NUMANode)
			require.Equal(t, uint64(1019340*1024), s.Readiness[0].FreeBytes, "node2/meminfo MemFree")
			require.Equal(t, int64(11*4<<20), s.Readiness[0].FreeRunBytes, "order-10 blocks of node 2 only")
			if tc.wantRegistered {
				require.Equal(t, 2, tc.ihk.calls["register_event"], "OOM and STATUS")
			}

			got := gather(t, m)
			require.Equal(t, 1.0, got[key("lwk_boots_total")])
			require.Equal(t, tc.wantSamples, got[key("lwk_monitor_samples_total")])
			require.Equal(t, tc.wantErrs, got[key("lwk_monitor_sample_errors_total")])
			require.Equal(t, tc.wantSkip, got[key("lwk_monitor_samples_skipped_total")])
			require.Equal(t, float64(job), got[key("lwk_instance_job_id", "os", "3")])
			require.Equal(t, 1.0, got[key("lwk_instance_status", "os", "3", "status", "RUNNING")])
			require.Equal(t, float64(1019340*1024), got[key("lwk_numa_free_bytes", "numa", "2")])
			if tc.wantRusage == nil {
				_, ok := got[key("lwk_threads", "os", "3")]
				require.False(t, ok, "no sample, no usage metrics")
				return
			}
			require.Equal(t, 42.0, got[key("lwk_cpu_seconds_total", "mode", "user", "os", "3")])
			require.Equal(t, 1.5, got[key("lwk_cpu_seconds_total", "mode", "system", "os", "3")])
			require.Equal(t, 14.0, got[key("lwk_threads", "os", "3")])
			require.Equal(t, float64(96<<20), got[key("lwk_memory_max_usage_bytes", "os", "3")])
			require.Equal(t, float64(5<<20), got[key("lwk_kernel_memory_bytes", "os", "3")])
			require.Equal(t, 2.0, got[key("lwk_cpus", "os", "3", "state", "user")])
		})
	}
}

// key names one sample: the metric and its labels as name/value pairs in
// the label names' sorted order.
func key(name string, labels ...string) string {
	k := name
	for i := 0; i+1 < len(labels); i += 2 {
		k += "," + labels[i] + "=" + labels[i+1]
	}
	return k
}

// gather scrapes the monitor's registry into key → value (gauges and
// counters).
func gather(t *testing.T, m *monitor.Monitor) map[string]float64 {
	t.Helper()
	fams, err := metrics.Registry(m).Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName(), l.GetValue())
			}
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = mt.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = mt.GetGauge().GetValue()
			default:
				continue
			}
			out[key(f.GetName(), labels...)] = v
		}
	}
	if len(out) == 0 {
		t.Fatal(errors.New("no metrics"))
	}
	return out
}
