package metrics

import (
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
)

// Source is what the collector reads: the monitor's snapshot.
type Source interface {
	Snapshot() monitor.Snapshot
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("lwk_"+name, help, labels, nil)
}

var (
	descInstanceStatus = desc("instance_status", "1 for the current IHK status of each LWK instance.", "os", "status")
	descInstanceJob    = desc("instance_job_id", "Slurm job ID of the job the LWK instance runs.", "os")
	descFrozen         = desc("instance_frozen", "1 when the monitor froze the instance because its job was suspended.", "os")
	descCPU            = desc("cpu_seconds_total", "LWK CPU time summed over LWK CPUs since the instance booted.", "os", "mode")
	descRSS            = desc("memory_rss_bytes", "Anonymous LWK user memory mapped now, by page size.", "os", "page_size")
	descMaxMem         = desc("memory_max_usage_bytes", "Peak LWK user memory since boot.", "os")
	descKmem           = desc("kernel_memory_bytes", "LWK kernel memory in use.", "os")
	descThreads        = desc("threads", "LWK threads now.", "os")
	descCPUState       = desc("cpus", "LWK CPUs per monitor-page state (real IHK driver only).", "os", "state")
	descLastSample     = desc("last_sample_timestamp_seconds", "Time of the instance's last rusage sample.", "os")
	descBoots          = desc("boots_total", "LWK instances seen booted since the monitor started.")
	descTeardowns      = desc("teardowns_total", "LWK instances seen torn down since the monitor started.")
	descBootDur        = desc("boot_duration_seconds", "Prolog time from its journal's creation to the LWK being up.")
	descTeardownDur    = desc("teardown_duration_seconds", "Epilog time from marker removal to journal removal, as observed.")
	descEvents         = desc("events_total", "LWK events: panic, hang, oom, freeze, thaw.", "kind")
	descFree           = desc("numa_free_bytes", "Free memory of a job NUMA node.", "numa")
	descFreeRuns       = desc("numa_free_reservable_bytes", "Free memory of a job NUMA node in runs of at least 4 MiB (what IHK can reserve).", "numa")
	descSamples        = desc("monitor_samples_total", "Rusage samples taken.")
	descSampleErr      = desc("monitor_sample_errors_total", "Rusage samples that failed.")
	descSampleSkip     = desc("monitor_samples_skipped_total", "Samples skipped because a prolog or epilog held the node lock or the job was ending.")
	descSampleDur      = desc("monitor_sample_duration_seconds", "Time per sample, node lock included.")
	descSpool          = desc("monitor_spool_bytes", "Size of the monitor's spool directory.")
	descCollectDur     = desc("monitor_collector_duration_seconds", "Time this scrape took to build the metrics from the cache.")
	descCollectOK      = desc("monitor_collector_success", "1 when this scrape's collector succeeded.")
)

// pageSizes names the page-size classes McKernel fills.
var pageSizes = map[int]string{ihk.PageSize4K: "4096", ihk.PageSize2M: "2097152", ihk.PageSize1G: "1073741824"}

var cpuStateNames = map[monitor.CPUState]string{
	monitor.CPUIdle: "idle", monitor.CPUUser: "user", monitor.CPUKernel: "kernel", monitor.CPUPanic: "panic",
}

// Collector is a prometheus.Collector over a Source.
type Collector struct{ src Source }

// New returns the collector.
func New(src Source) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInstanceStatus, descInstanceJob, descFrozen, descCPU, descRSS, descMaxMem,
		descKmem, descThreads, descCPUState, descLastSample, descBoots, descTeardowns, descBootDur, descTeardownDur,
		descEvents, descFree, descFreeRuns, descSamples, descSampleErr, descSampleSkip, descSampleDur, descSpool,
		descCollectDur, descCollectOK} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	s := c.src.Snapshot()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	ctr := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	for _, in := range s.Instances {
		os := strconv.Itoa(in.OS)
		g(descInstanceStatus, 1, os, in.Status.String())
		g(descInstanceJob, float64(in.Job), os)
		g(descFrozen, b2f(in.Frozen), os)
		if ru := in.Rusage; ru != nil {
			ctr(descCPU, float64(ru.UserNanoseconds)/1e9, os, "user")
			ctr(descCPU, float64(ru.SystemTicks)/100, os, "system")
			for class, name := range pageSizes {
				g(descRSS, float64(ru.MemoryRSSBytes[class]), os, name)
			}
			g(descMaxMem, float64(ru.MemoryMaxUsageBytes), os)
			g(descKmem, float64(ru.KmemUsageBytes), os)
			g(descThreads, float64(ru.Threads), os)
			g(descLastSample, float64(in.LastSample.UnixNano())/1e9, os)
		}
		for st, n := range in.CPUStates {
			name, ok := cpuStateNames[st]
			if !ok {
				name = "other"
			}
			g(descCPUState, float64(n), os, name)
		}
	}
	k := s.Counters
	ctr(descBoots, float64(k.Boots))
	ctr(descTeardowns, float64(k.Teardowns))
	hist(ch, descBootDur, k.BootSeconds)
	hist(ch, descTeardownDur, k.TeardownSeconds)
	kinds := make([]string, 0, len(k.Events))
	for kind := range k.Events {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		ctr(descEvents, float64(k.Events[kind]), kind)
	}
	for _, r := range s.Readiness {
		n := strconv.Itoa(r.NUMANode)
		g(descFree, float64(r.FreeBytes), n)
		if r.FreeRunBytes >= 0 {
			g(descFreeRuns, float64(r.FreeRunBytes), n)
		}
	}
	ctr(descSamples, float64(k.Samples))
	ctr(descSampleErr, float64(k.SampleErrors))
	ctr(descSampleSkip, float64(k.SamplesSkipped))
	hist(ch, descSampleDur, k.SampleSeconds)
	g(descSpool, float64(s.SpoolBytes))
	g(descCollectDur, time.Since(start).Seconds())
	g(descCollectOK, 1)
}

func hist(ch chan<- prometheus.Metric, d *prometheus.Desc, h monitor.Histogram) {
	b := make(map[float64]uint64, len(h.Bounds))
	for i, bound := range h.Bounds {
		b[bound] = h.Counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, b)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Registry returns a registry with the collector and the Go and process
// collectors (the monitor's own CPU and memory).
func Registry(src Source) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(New(src))
	r.MustRegister(collectors.NewGoCollector())
	r.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
