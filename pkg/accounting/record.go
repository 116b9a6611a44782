package accounting

import (
	"math"
	"sort"
)

// NodeRecordVersion is the version of NodeRecord's JSON form.
const NodeRecordVersion = 1

// Event kinds counted in NodeRecord.Events and JobRecord.Events.
const (
	EventPanic  = "panic"
	EventHang   = "hang"
	EventOOM    = "oom"
	EventFreeze = "freeze"
	EventThaw   = "thaw"
)

// Final sources: where a NodeRecord's last reading came from.
const (
	// FinalEpilog: lwk-epilog read the rusage under the node lock right
	// before DESTROY_OS; nothing of the job's LWK usage is missing.
	FinalEpilog = "epilog"
	// FinalLastSample: no epilog reading; the record holds the monitor's
	// last periodic sample and may miss up to one sampling interval.
	FinalLastSample = "last_sample"
	// FinalRunning: the job still runs on this node; a partial record.
	FinalRunning = "running"
)

// NodeRecord is one node's LWK usage for one job, as lwk-monitor serves it
// at /v1/jobs/<id>/record. Counters are IHK's, cumulative since the LWK
// booted, which slurm-lwk does once per job.
type NodeRecord struct {
	Version int    `json:"v"`
	JobID   uint32 `json:"job"`
	Node    string `json:"node"`
	OS      int    `json:"os"`
	// Final says where the last reading came from (Final* constants).
	Final string `json:"final"`
	// UserSeconds is LWK user CPU time summed over LWK CPUs (cpuacct_usage).
	UserSeconds float64 `json:"user_s"`
	// SystemSeconds is LWK system CPU time (cpuacct_stat_system, 10 ms ticks).
	SystemSeconds float64 `json:"sys_s"`
	// MaxMemoryBytes is the peak user RSS since boot (memory_max_usage).
	MaxMemoryBytes uint64 `json:"max_mem"`
	// MaxKernelMemoryBytes is the peak LWK kernel memory.
	MaxKernelMemoryBytes uint64 `json:"max_kmem,omitempty"`
	// MaxRSSByPageSize is the largest anonymous RSS seen in any sample per
	// page-size class IHK reports ("4K", "2M", "1G"); IHK keeps no per-size
	// peak, so this is the peak over the samples taken. Units: bytes.
	MaxRSSByPageSize map[string]uint64 `json:"max_rss_pgsz,omitempty"`
	// MaxThreads is the peak LWK thread count since boot.
	MaxThreads int32 `json:"max_threads"`
	// Samples is how many rusage samples the monitor took.
	Samples int `json:"samples"`
	// BootSeconds is the prolog's time from its journal's creation to the
	// LWK being up; TeardownSeconds the epilog's, as the monitor observed it
	// (marker removed to journal removed).
	BootSeconds     float64 `json:"boot_s"`
	TeardownSeconds float64 `json:"teardown_s,omitempty"`
	// Events counts abnormal and operational events (Event* kinds).
	Events map[string]int `json:"events,omitempty"`
	// Perf are the CPU performance counter values by raw event code (hex),
	// summed over LWK CPUs, when the profile programs counters.
	Perf map[string]uint64 `json:"perf,omitempty"`
}

// Summary is a quantity over many nodes: min, median, max and the nodes
// holding the extremes.
type Summary struct {
	Min    float64 `json:"min"`
	Median float64 `json:"med"`
	Max    float64 `json:"max"`
	// Low and High are the OutlierNodes nodes with the smallest and largest
	// values, extremes first.
	Low  []NodeValue `json:"low,omitempty"`
	High []NodeValue `json:"high,omitempty"`
}

// NodeValue is one node's value of a summarised quantity.
type NodeValue struct {
	Node  string  `json:"n"`
	Value float64 `json:"v"`
}

// summarize builds a Summary of vals (not modified); nil for none.
func summarize(vals []NodeValue, outliers int) *Summary {
	if len(vals) == 0 {
		return nil
	}
	s := append([]NodeValue(nil), vals...)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Value != s[j].Value {
			return s[i].Value < s[j].Value
		}
		return s[i].Node < s[j].Node
	})
	n := len(s)
	med := s[n/2].Value
	if n%2 == 0 {
		med = (s[n/2-1].Value + s[n/2].Value) / 2
	}
	out := &Summary{Min: s[0].Value, Median: round(med), Max: s[n-1].Value}
	k := min(outliers, n/2)
	for i := 0; i < k; i++ {
		out.Low = append(out.Low, s[i])
		out.High = append(out.High, s[n-1-i])
	}
	return out
}

// round keeps 4 significant decimals, enough for seconds and bytes alike,
// so that the JSON stays short.
func round(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	return math.Round(v*1e3) / 1e3
}
