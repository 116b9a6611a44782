package monitor

import (
	"sort"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/readiness"
)

// Histogram is a cumulative histogram of observations in seconds.
type Histogram struct {
	// Bounds are the upper bounds of the buckets; Counts[i] counts the
	// observations <= Bounds[i].
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

func newHistogram(bounds ...float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
}

func (h *Histogram) observe(v float64) {
	h.Count++
	h.Sum += v
	for i, b := range h.Bounds {
		if v <= b {
			h.Counts[i]++
		}
	}
}

func (h Histogram) clone() Histogram {
	h.Bounds = append([]float64(nil), h.Bounds...)
	h.Counts = append([]uint64(nil), h.Counts...)
	return h
}

// Counters are the monitor's cumulative counts since it started.
type Counters struct {
	Boots, Teardowns             uint64
	BootSeconds, TeardownSeconds Histogram
	// Events counts by kind (accounting.Event*).
	Events                                map[string]uint64
	Samples, SampleErrors, SamplesSkipped uint64
	SampleSeconds                         Histogram
}

func newCounters() Counters {
	ev := map[string]uint64{}
	for _, k := range []string{accounting.EventPanic, accounting.EventHang, accounting.EventOOM, accounting.EventFreeze, accounting.EventThaw} {
		ev[k] = 0
	}
	return Counters{
		BootSeconds:     newHistogram(0.5, 1, 2, 5, 10, 30, 60, 120),
		TeardownSeconds: newHistogram(0.5, 1, 2, 5, 10, 30, 60, 120),
		SampleSeconds:   newHistogram(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1),
		Events:          ev,
	}
}

// InstanceSnapshot is one tracked instance.
type InstanceSnapshot struct {
	Job     uint32     `json:"job"`
	OS      int        `json:"os"`
	Status  ihk.Status `json:"status"`
	Frozen  bool       `json:"frozen"`
	Tearing bool       `json:"tearing_down"`
	// Registered: its OOM and STATUS eventfds are registered and watched.
	Registered bool `json:"registered"`
	// Rusage is the last sample (nil before the first); LastSample its time.
	Rusage     *ihk.Rusage      `json:"rusage,omitempty"`
	LastSample time.Time        `json:"last_sample,omitzero"`
	Samples    int              `json:"samples"`
	CPUStates  map[CPUState]int `json:"cpu_states,omitempty"`
	Events     map[string]int   `json:"events,omitempty"`
}

// Snapshot is a copy of what the monitor knows; metrics and the HTTP
// endpoint read only this, never IHK.
type Snapshot struct {
	Node      string             `json:"node"`
	Instances []InstanceSnapshot `json:"instances"`
	Readiness []readiness.Node   `json:"readiness"`
	Counters  Counters           `json:"-"`
	// SpoolBytes is the spool's size.
	SpoolBytes int64 `json:"spool_bytes"`
	// SimDriverSeconds is the time spent inside the simulated IHK driver
	// (its state file and /proc scans), which the real driver's ioctls do
	// not cost; absent with the real driver.
	SimDriverSeconds *float64 `json:"sim_driver_seconds,omitempty"`
}

// Snapshot returns a copy of the monitor's cache.
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Node: m.cfg.Node, Readiness: append([]readiness.Node(nil), m.ready...), SpoolBytes: m.d.Spool.Total()}
	for _, inst := range m.jobs {
		is := InstanceSnapshot{Job: inst.job, OS: inst.os, Status: inst.status, Frozen: inst.frozen,
			Tearing: !inst.teardown.IsZero(), Registered: inst.registered, LastSample: inst.lastAt, Samples: inst.samples}
		if inst.last != nil {
			ru := *inst.last
			is.Rusage = &ru
		}
		if len(inst.cpuStates) > 0 {
			is.CPUStates = map[CPUState]int{}
			for k, v := range inst.cpuStates {
				is.CPUStates[k] = v
			}
		}
		if len(inst.events) > 0 {
			is.Events = map[string]int{}
			for k, v := range inst.events {
				is.Events[k] = v
			}
		}
		s.Instances = append(s.Instances, is)
	}
	sort.Slice(s.Instances, func(i, j int) bool { return s.Instances[i].OS < s.Instances[j].OS })
	c := m.counters
	c.BootSeconds, c.TeardownSeconds, c.SampleSeconds = c.BootSeconds.clone(), c.TeardownSeconds.clone(), c.SampleSeconds.clone()
	c.Events = map[string]uint64{}
	for k, v := range m.counters.Events {
		c.Events[k] = v
	}
	s.Counters = c
	if m.cfg.DriverTime != nil {
		v := m.cfg.DriverTime().Seconds()
		s.SimDriverSeconds = &v
	}
	return s
}
