package metrics_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/metrics"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/readiness"
)

// snapshot is a source whose snapshot is fixed: the collector can only read
// it, there is no IHK client it could call.
type snapshot monitor.Snapshot

func (s snapshot) Snapshot() monitor.Snapshot { return monitor.Snapshot(s) }

func busyNode() snapshot {
	ru := &ihk.Rusage{UserNanoseconds: 12_500_000_000, SystemTicks: 150, MemoryMaxUsageBytes: 3 << 30,
		KmemUsageBytes: 64 << 20, Threads: 17, MaxThreads: 17}
	ru.MemoryRSSBytes[ihk.PageSize2M] = 2 << 30
	s := snapshot{
		Node: "n1",
		Instances: []monitor.InstanceSnapshot{{Job: 4242, OS: 0, Status: ihk.StatusRunning, Rusage: ru,
			LastSample: time.Unix(1_700_000_000, 0), Samples: 9,
			CPUStates: map[monitor.CPUState]int{monitor.CPUUser: 10, monitor.CPUIdle: 2}}},
		Readiness:  []readiness.Node{{NUMANode: 2, FreeBytes: 1 << 30, FreeRunBytes: 900 << 20}, {NUMANode: 3, FreeBytes: 1 << 30, FreeRunBytes: -1}},
		SpoolBytes: 12345,
	}
	s.Counters.Boots, s.Counters.Samples = 3, 9
	s.Counters.Events = map[string]uint64{"panic": 0, "hang": 0, "oom": 1, "freeze": 2, "thaw": 2}
	s.Counters.BootSeconds = monitor.Histogram{Bounds: []float64{1, 5}, Counts: []uint64{1, 3}, Count: 3, Sum: 7.5}
	s.Counters.TeardownSeconds = monitor.Histogram{Bounds: []float64{1, 5}, Counts: []uint64{2, 2}, Count: 2, Sum: 1.1}
	s.Counters.SampleSeconds = monitor.Histogram{Bounds: []float64{0.001}, Counts: []uint64{9}, Count: 9, Sum: 0.002}
	return s
}

func TestMetricsValues(t *testing.T) {
	c := metrics.New(busyNode())
	want := `
# HELP lwk_cpu_seconds_total LWK CPU time summed over LWK CPUs since the instance booted.
# TYPE lwk_cpu_seconds_total counter
lwk_cpu_seconds_total{mode="system",os="0"} 1.5
lwk_cpu_seconds_total{mode="user",os="0"} 12.5
# HELP lwk_numa_free_reservable_bytes Free memory of a job NUMA node in runs of at least 4 MiB (what IHK can reserve).
# TYPE lwk_numa_free_reservable_bytes gauge
lwk_numa_free_reservable_bytes{numa="2"} 9.437184e+08
# HELP lwk_instance_status 1 for the current IHK status of each LWK instance.
# TYPE lwk_instance_status gauge
lwk_instance_status{os="0",status="RUNNING"} 1
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"lwk_cpu_seconds_total", "lwk_numa_free_reservable_bytes", "lwk_instance_status"))
	for _, name := range []string{"lwk_memory_rss_bytes", "lwk_events_total", "lwk_boot_duration_seconds", "lwk_monitor_samples_total"} {
		require.Positive(t, testutil.CollectAndCount(c, name), name)
	}
}

// TestPromtoolCheckMetrics runs `promtool check metrics` (Debian package
// prometheus) over a scrape of a busy node, with the Go and process
// collectors the daemon registers.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (apt-get install prometheus; make deps does)")
		}
		t.Skip("promtool not installed (apt-get install prometheus): cannot lint the exposition")
	}
	var buf bytes.Buffer
	reg := metrics.Registry(busyNode())
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		_, err := writeText(&buf, mf)
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "promtool reported problems")
}
