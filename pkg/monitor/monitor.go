package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
	"github.com/slurm-lwk/slurm-lwk/pkg/finalusage"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/readiness"
	"github.com/slurm-lwk/slurm-lwk/pkg/spool"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// Interval bounds.
const (
	// DefaultInterval is the rusage sampling interval (the paper's
	// operation samples every 10 minutes).
	DefaultInterval = 10 * time.Minute
	// MinInterval is the shortest sampling interval allowed in production
	// configuration (tests may go lower through Config.AllowFast).
	MinInterval = time.Second
	// keepFinal bounds the final records kept in memory; older ones are
	// served from the spool.
	keepFinal = 1024
	// maxWait bounds how long a record request waits for a final record.
	maxWait = 2 * time.Minute
	// reactLockWait bounds the wait for the node lock when reacting to an
	// event (reading the kernel log needs the device).
	reactLockWait = 10 * time.Second
	// DefaultRegisterRetry is how soon, at the latest, registering an
	// instance is tried again when the node lock was held (a prolog or
	// epilog runs).
	DefaultRegisterRetry = time.Second
	// firstRegisterRetry is the first retry's delay; each failed try
	// doubles it, up to Config.RegisterRetry. A new LWK is usually seen
	// while its prolog finishes and holds the lock for a few milliseconds
	// more; its OOM eventfd should not wait a second.
	firstRegisterRetry = 5 * time.Millisecond
)

// Config is the monitor's configuration.
type Config struct {
	// Node is this node's Slurm name (for records and drain reasons).
	Node string
	// DevDir holds mcosN; RunDir the job markers; LogDir the epilog's final
	// readings (see package finalusage).
	DevDir, RunDir, LogDir string
	// Interval is the rusage sampling period (MinInterval..; default
	// DefaultInterval).
	Interval time.Duration
	// HangInterval is the DETECT_HUNGUP period; 0 disables hang detection.
	HangInterval time.Duration
	// SuspendInterval is how often the job's proxies are checked for a
	// suspension; 0 disables freeze on suspend.
	SuspendInterval time.Duration
	// RescanInterval is the safety rescan of the journals (inotify normally
	// triggers a rescan once the directories settle, see dirWatch).
	// Default 30s.
	RescanInterval time.Duration
	// RegisterRetry is how soon registering a new instance's eventfds is
	// retried when the node lock was held. Default DefaultRegisterRetry.
	RegisterRetry time.Duration
	// ReadinessNodes are the job NUMA nodes whose readiness is published;
	// SysfsRoot and Proc are where it is read.
	ReadinessNodes []int
	SysfsRoot      string
	Proc           procfs.FS
	// Perf maps a profile name to the counters to program for its jobs.
	Perf map[string][]ihk.PerfAttr
	// DriverTime is the time spent inside the simulated IHK driver so far
	// (reported as SimDriverSeconds); nil with the real driver, whose time
	// is the kernel's.
	DriverTime func() time.Duration
	// AllowFast lets tests sample faster than MinInterval.
	AllowFast bool
}

func (c *Config) check() error {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.RescanInterval <= 0 {
		c.RescanInterval = 30 * time.Second
	}
	if c.RegisterRetry <= 0 {
		c.RegisterRetry = DefaultRegisterRetry
	}
	if !filepath.IsAbs(c.Proc.Root) {
		return fmt.Errorf("monitor: proc root %q is not absolute", c.Proc.Root)
	}
	if c.Interval < MinInterval && !c.AllowFast || c.Interval <= 0 {
		return fmt.Errorf("sampling interval %s: must be at least %s", c.Interval, MinInterval)
	}
	if c.HangInterval < 0 || c.SuspendInterval < 0 {
		return fmt.Errorf("hang interval %s, suspend interval %s: must not be negative", c.HangInterval, c.SuspendInterval)
	}
	if c.Node == "" {
		return errors.New("monitor: node name is empty")
	}
	for _, d := range []string{c.DevDir, c.RunDir, c.LogDir} {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("monitor: directory %q is not absolute", d)
		}
	}
	return nil
}

// Deps are the monitor's collaborators.
type Deps struct {
	IHK      IHK
	Journals Journals
	Lock     Locker
	Slurm    Slurm
	Proxies  Proxies
	Spool    *spool.Spool
	Log      *slog.Logger
}

// Monitor watches the node's LWK instances. Create it with New, run it with
// Run; its read methods (Snapshot, Record) are safe from other goroutines.
type Monitor struct {
	cfg Config
	d   Deps

	mu        sync.Mutex
	jobs      map[uint32]*instance
	finals    map[uint32]*accounting.NodeRecord
	finalList []uint32
	finalSig  chan struct{} // closed and replaced when a final record appears
	counters  Counters
	ready     []readiness.Node
	readyAt   time.Time

	events chan event
	// retryRegister: an instance could not be registered because the
	// node lock was held; Run retries after retryDelay.
	retryRegister bool
	// retryDelay is the next registration retry's delay (see
	// firstRegisterRetry); 0 after a registration.
	retryDelay time.Duration
	// unremovable are the epilog readings finalize used but could not
	// remove, by the reading's time: not to be finalized again.
	unremovable map[finalusage.Key]time.Time
	// oneShot: Once is running; it neither programs nor stops counters
	// (a running daemon owns them).
	oneShot bool
}

// New checks the configuration and returns a monitor.
func New(cfg Config, d Deps) (*Monitor, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if d.IHK == nil || d.Journals == nil || d.Lock == nil || d.Slurm == nil || d.Proxies == nil || d.Spool == nil {
		return nil, errors.New("monitor: missing collaborator")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{
		cfg: cfg, d: d,
		jobs:     map[uint32]*instance{},
		finals:   map[uint32]*accounting.NodeRecord{},
		finalSig: make(chan struct{}),
		counters: newCounters(),
		events:   make(chan event, 16),
	}, nil
}

// instance is one job's LWK as the monitor tracks it. Fields are guarded by
// Monitor.mu except where noted.
type instance struct {
	job     uint32
	os      int
	profile string
	// created is the journal's creation, up when the marker was written.
	created, up time.Time
	// teardown is when the marker disappeared (the epilog began).
	teardown time.Time
	status   ihk.Status
	// registered: eventfds are registered and the watcher runs.
	registered bool
	watch      *watcher
	perfN      int
	perfCodes  []string
	perf       []uint64
	last       *ihk.Rusage
	lastAt     time.Time
	samples    int
	dropped    int
	maxRSS     [ihk.NumPageSizes]uint64
	cpuStates  map[CPUState]int
	events     map[string]int
	reacted    string
	frozen     bool
	// proxies is the cached proxy list for suspend checks.
	proxies   []int
	proxiesAt time.Time
}

func (i *instance) dev(devDir string) string {
	return filepath.Join(devDir, "mcos"+strconv.Itoa(i.os))
}

// Run watches until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	notify, err := newDirWatch(m.cfg.RunDir, journalDirOf(m.d.Journals))
	if err != nil {
		m.d.Log.Warn("no inotify; relying on the periodic rescan", "err", err)
	}
	defer notify.Close()
	defer m.stopAll()
	defer m.stopPerfAll(ctx)

	m.rescan(ctx)
	m.refreshReadiness()
	sample := time.NewTicker(m.cfg.Interval)
	defer sample.Stop()
	rescan := time.NewTicker(m.cfg.RescanInterval)
	defer rescan.Stop()
	hang := tickerOrNil(m.cfg.HangInterval)
	defer hang.Stop()
	susp := tickerOrNil(m.cfg.SuspendInterval)
	defer susp.Stop()
	retry := time.NewTimer(m.cfg.RegisterRetry)
	retry.Stop()
	defer retry.Stop()
	retryArmed := false
	for {
		if !retryArmed {
			if d, ok := m.takeRetry(); ok {
				retry.Reset(d)
				retryArmed = true
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-notify.C():
			m.rescan(ctx)
		case <-rescan.C:
			m.rescan(ctx)
		case <-sample.C:
			m.SampleAll(ctx)
			m.refreshReadiness()
		case <-hang.C():
			m.DetectHangs(ctx)
		case <-susp.C():
			m.CheckSuspend(ctx)
		case <-retry.C:
			retryArmed = false
			m.registerPending(ctx)
		case ev := <-m.events:
			m.handle(ctx, ev)
		}
	}
}

// optTicker is a ticker that may be disabled (nil).
type optTicker struct{ t *time.Ticker }

func tickerOrNil(d time.Duration) optTicker {
	if d <= 0 {
		return optTicker{}
	}
	return optTicker{time.NewTicker(d)}
}

func (o optTicker) C() <-chan time.Time {
	if o.t == nil {
		return nil
	}
	return o.t.C
}

func (o optTicker) Stop() {
	if o.t != nil {
		o.t.Stop()
	}
}

func journalDirOf(j Journals) string {
	if r, ok := j.(*journal.Reader); ok {
		return r.Dir
	}
	return ""
}

// liveOS returns the instance a journal describes as up: the create_os
// index, once write_marker is done.
func liveOS(rec *journal.Record) (int, time.Time, bool) {
	idx, ok := steps.OSIndex(rec)
	if !ok {
		idx = -1
	}
	var up time.Time
	if s, found := rec.Find(steps.WriteMarker); found && s.State == journal.StateDone {
		up = s.At
	}
	return idx, up, ok && idx >= 0 && !up.IsZero()
}

func profileOf(rec *journal.Record) string {
	var p struct {
		Profile string `json:"profile"`
	}
	if len(rec.Plan) > 0 && json.Unmarshal(rec.Plan, &p) == nil {
		return p.Profile
	}
	return ""
}

// rescan compares the journals and markers with what is tracked: new
// booted instances are registered, a vanished marker starts the teardown
// clock, a vanished journal ends the job.
func (m *Monitor) rescan(ctx context.Context) {
	ids, err := m.d.Journals.List()
	if err != nil {
		m.d.Log.Warn("cannot list journals", "err", err)
		return
	}
	now := time.Now()
	seen := map[uint32]bool{}
	for _, id := range ids {
		seen[id] = true
		m.mu.Lock()
		inst := m.jobs[id]
		m.mu.Unlock()
		markerOS, merr := jobmarker.Read(m.cfg.RunDir, id)
		if inst != nil {
			if (merr != nil || markerOS != inst.os) && inst.teardown.IsZero() {
				m.mu.Lock()
				inst.teardown = now
				m.mu.Unlock()
				inst.stopWatch()
				m.d.Log.Info("job teardown began", "job", id, "os", inst.os)
			}
			if !inst.registered && inst.teardown.IsZero() {
				m.register(ctx, inst)
			}
			continue
		}
		if merr != nil {
			continue // not up yet, or already tearing down
		}
		rec, err := m.d.Journals.Read(id)
		if err != nil {
			m.d.Log.Debug("journal not readable", "job", id, "err", err)
			continue
		}
		idx, up, ok := liveOS(rec)
		if !ok || idx != markerOS {
			continue
		}
		inst = &instance{job: id, os: idx, profile: profileOf(rec), created: rec.Created, up: up,
			status: ihk.StatusRunning, events: map[string]int{}}
		m.mu.Lock()
		m.jobs[id] = inst
		m.counters.Boots++
		m.counters.BootSeconds.observe(up.Sub(rec.Created).Seconds())
		m.mu.Unlock()
		m.d.Spool.SetLive(id, true)
		m.d.Log.Info("tracking lwk", "job", id, "os", idx, "boot_seconds", up.Sub(rec.Created).Seconds())
		m.register(ctx, inst)
	}
	m.mu.Lock()
	var gone []*instance
	for id, inst := range m.jobs {
		if !seen[id] {
			gone = append(gone, inst)
		}
	}
	m.mu.Unlock()
	for _, inst := range gone {
		m.finalize(inst, now)
	}
	m.finalizeUntracked(seen)
}

// finalizeUntracked ends the jobs the monitor never tracked whose epilog
// left a reading: a job that ended before a rescan saw its marker (the
// monitor looks once the directories settle, see dirWatch). The journal is
// gone, so the epilog finished, and the reading is the job's whole LWK
// usage: it becomes the job's final record instead of staying in LogDir.
// Its teardown is timed to the reading, taken right before DESTROY_OS (the
// monitor may look much later, e.g. at its first start on the node). A
// one-shot run leaves the readings to the service.
func (m *Monitor) finalizeUntracked(journals map[uint32]bool) {
	if m.oneShot {
		return
	}
	keys, err := finalusage.List(m.cfg.LogDir)
	if err != nil {
		m.d.Log.Warn("cannot list the epilogs' readings", "err", err)
		return
	}
	for _, k := range keys {
		m.mu.Lock()
		_, tracked := m.jobs[k.JobID]
		m.mu.Unlock()
		if tracked || journals[k.JobID] {
			continue
		}
		r, err := finalusage.Read(m.cfg.LogDir, k.JobID, k.OS)
		if err != nil {
			m.d.Log.Warn("removing an unusable reading of an untracked job", "job", k.JobID, "os", k.OS, "err", err)
			if err := finalusage.Remove(m.cfg.LogDir, k.JobID, k.OS); err != nil {
				m.d.Log.Warn("cannot remove the epilog's reading", "job", k.JobID, "err", err)
			}
			continue
		}
		m.mu.Lock()
		at, seen := m.unremovable[k]
		done := seen && at.Equal(r.Time) // finalize could not remove it
		if !done {
			m.counters.Boots++
		}
		m.mu.Unlock()
		if done {
			continue
		}
		m.d.Log.Info("job ended before the monitor saw it running", "job", k.JobID, "os", k.OS)
		m.finalize(&instance{job: k.JobID, os: k.OS, events: map[string]int{}}, r.Time)
	}
}

// register registers the instance's OOM and STATUS eventfds (once per
// boot: the kernel keeps registrations until DESTROY), reads its status and
// programs its profile's performance counters, under the node lock. When
// the lock is held it is retried after firstRegisterRetry, doubling up to
// Config.RegisterRetry (and at every rescan).
func (m *Monitor) register(ctx context.Context, inst *instance) {
	release, err := m.d.Lock.TryLock()
	if err != nil {
		m.mu.Lock()
		m.retryRegister = true
		m.retryDelay = min(max(2*m.retryDelay, firstRegisterRetry), m.cfg.RegisterRetry)
		d := m.retryDelay
		m.mu.Unlock()
		m.d.Log.Debug("node lock held; registering later", "job", inst.job, "err", err, "retry", d)
		return
	}
	defer release()
	m.mu.Lock()
	m.retryDelay = 0
	m.mu.Unlock()
	if !m.markerIs(inst) {
		return
	}
	st, err := m.d.IHK.Status(ctx, inst.os)
	if err != nil {
		m.d.Log.Warn("cannot read lwk status", "job", inst.job, "os", inst.os, "err", err)
		return
	}
	var fds []ihk.EventFD
	for _, t := range []ihk.EventType{ihk.EventOOM, ihk.EventStatus} {
		fd, err := m.d.IHK.RegisterEvent(ctx, inst.os, t)
		if err != nil {
			for _, f := range fds {
				f.Close()
			}
			m.d.Log.Warn("cannot register lwk event", "job", inst.job, "os", inst.os, "type", int(t), "err", err)
			return
		}
		fds = append(fds, fd)
	}
	w, err := startWatch(inst.job, inst.os, fds[0], fds[1], m.events)
	if err != nil {
		for _, f := range fds {
			f.Close()
		}
		m.d.Log.Warn("cannot watch lwk events", "job", inst.job, "os", inst.os, "err", err)
		return
	}
	m.mu.Lock()
	inst.status, inst.registered, inst.watch = st, true, w
	m.mu.Unlock()
	m.startPerf(ctx, inst)
	// A panic before registration raised no event: act on the status read.
	if kind := statusEvent(st); kind != "" {
		m.react(ctx, inst, kind, false)
	}
}

// takeRetry reports and clears a wanted registration retry, with its
// delay.
func (m *Monitor) takeRetry() (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.retryRegister
	m.retryRegister = false
	d := m.retryDelay
	if d <= 0 { // registered meanwhile: retry the others soon
		d = min(firstRegisterRetry, m.cfg.RegisterRetry)
	}
	return d, r
}

// registerPending registers the running instances that are not yet.
func (m *Monitor) registerPending(ctx context.Context) {
	for _, inst := range m.running() {
		m.mu.Lock()
		done := inst.registered
		m.mu.Unlock()
		if !done {
			m.register(ctx, inst)
		}
	}
}

func (m *Monitor) startPerf(ctx context.Context, inst *instance) {
	attrs := m.cfg.Perf[inst.profile]
	p, ok := m.d.IHK.(Perf)
	if len(attrs) == 0 || !ok || m.oneShot {
		return
	}
	n, err := p.PerfSet(ctx, inst.os, attrs)
	if err == nil && n > 0 {
		err = p.PerfControl(ctx, inst.os, ihk.PerfEnable)
	}
	if err != nil || n == 0 {
		m.d.Log.Warn("performance counters not started", "job", inst.job, "os", inst.os, "registered", n, "err", err)
		return
	}
	codes := make([]string, n)
	for i := range n {
		codes[i] = "0x" + strconv.FormatUint(attrs[i].Config, 16)
	}
	m.mu.Lock()
	inst.perfN, inst.perfCodes = n, codes
	m.mu.Unlock()
}

// perfStopWait bounds the wait for the node lock when stopping the
// counters on exit.
const perfStopWait = 5 * time.Second

// stopPerfAll stops the performance counters of every running instance
// (disable, a last read, destroy) when the monitor exits: nobody would read
// them any more. The epilog's DESTROY_OS ends the counters of instances that
// end while the monitor runs.
func (m *Monitor) stopPerfAll(ctx context.Context) {
	p, ok := m.d.IHK.(Perf)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), perfStopWait)
	defer cancel()
	for _, inst := range m.running() {
		m.mu.Lock()
		n := inst.perfN
		m.mu.Unlock()
		if n == 0 {
			continue
		}
		m.stopPerf(ctx, p, inst, n)
	}
}

func (m *Monitor) stopPerf(ctx context.Context, p Perf, inst *instance, n int) {
	release, err := m.d.Lock.Lock(ctx)
	if err != nil {
		m.d.Log.Warn("performance counters left running: node lock not available", "job", inst.job, "os", inst.os, "err", err)
		return
	}
	defer release()
	if !m.markerIs(inst) {
		return
	}
	err = p.PerfControl(ctx, inst.os, ihk.PerfDisable)
	var v []uint64
	if err == nil {
		v, err = p.PerfRead(ctx, inst.os, n)
	}
	err = errors.Join(err, p.PerfControl(ctx, inst.os, ihk.PerfDestroy))
	m.mu.Lock()
	if v != nil {
		inst.perf = v
	}
	inst.perfN = 0
	m.mu.Unlock()
	if err != nil {
		m.d.Log.Warn("cannot stop performance counters", "job", inst.job, "os", inst.os, "err", err)
		return
	}
	m.d.Log.Info("performance counters stopped", "job", inst.job, "os", inst.os, "counters", n)
}

// markerIs reports whether the job's marker still names the instance: the
// job is up and its epilog has not begun. Called under the node lock, it
// guarantees the device is not being destroyed.
func (m *Monitor) markerIs(inst *instance) bool {
	idx, err := jobmarker.Read(m.cfg.RunDir, inst.job)
	return err == nil && idx == inst.os
}

func (i *instance) stopWatch() {
	if i.watch != nil {
		i.watch.stop()
	}
}

func (m *Monitor) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, inst := range m.jobs {
		inst.stopWatch()
	}
}

// running returns the instances that are up and not tearing down.
func (m *Monitor) running() []*instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*instance
	for _, inst := range m.jobs {
		if inst.teardown.IsZero() {
			out = append(out, inst)
		}
	}
	return out
}

// Sample is one rusage sample as the spool keeps it (one JSON line).
type Sample struct {
	Time   time.Time   `json:"time"`
	Job    uint32      `json:"job"`
	OS     int         `json:"os"`
	Rusage *ihk.Rusage `json:"rusage"`
	// CPUStates counts LWK CPUs per monitor-page state, when the backend
	// has the quiet reader.
	CPUStates map[CPUState]int `json:"cpu_states,omitempty"`
	Perf      []uint64         `json:"perf,omitempty"`
}

// SampleAll samples every running instance once.
func (m *Monitor) SampleAll(ctx context.Context) {
	for _, inst := range m.running() {
		m.sample(ctx, inst)
	}
}

func (m *Monitor) sample(ctx context.Context, inst *instance) {
	start := time.Now()
	release, err := m.d.Lock.TryLock()
	if err != nil {
		m.mu.Lock()
		m.counters.SamplesSkipped++
		m.mu.Unlock()
		return
	}
	s, err := m.read(ctx, inst)
	release()
	dur := time.Since(start).Seconds()
	m.mu.Lock()
	m.counters.SampleSeconds.observe(dur)
	if err != nil {
		m.counters.SampleErrors++
		m.mu.Unlock()
		m.d.Log.Warn("sample failed", "job", inst.job, "os", inst.os, "err", err)
		return
	}
	if s == nil {
		m.counters.SamplesSkipped++
		m.mu.Unlock()
		return
	}
	m.counters.Samples++
	inst.samples++
	inst.last, inst.lastAt = s.Rusage, s.Time
	for k, v := range s.Rusage.MemoryRSSBytes {
		inst.maxRSS[k] = max(inst.maxRSS[k], v)
	}
	inst.cpuStates = s.CPUStates
	if s.Perf != nil {
		inst.perf = s.Perf
	}
	m.mu.Unlock()
	line, err := json.Marshal(s)
	if err == nil {
		err = m.d.Spool.AppendSample(inst.job, line)
	}
	if errors.Is(err, spool.ErrJobFull) {
		m.mu.Lock()
		inst.dropped++
		m.mu.Unlock()
	} else if err != nil {
		m.d.Log.Warn("cannot spool sample", "job", inst.job, "err", err)
	}
	if s.CPUStates[CPUPanic] > 0 {
		m.react(ctx, inst, accounting.EventPanic, true)
	}
}

// read takes one sample; the caller holds the node lock. nil, nil when the
// job's marker is gone (the epilog ran since the last check).
func (m *Monitor) read(ctx context.Context, inst *instance) (*Sample, error) {
	if !m.markerIs(inst) {
		return nil, nil
	}
	ru, err := m.d.IHK.Rusage(ctx, inst.os)
	if err != nil {
		return nil, err
	}
	s := &Sample{Time: time.Now().UTC(), Job: inst.job, OS: inst.os, Rusage: ru}
	if a, ok := m.d.IHK.(Activity); ok {
		acts, err := a.CPUActivity(ctx, inst.os)
		if err != nil {
			return nil, err
		}
		s.CPUStates = map[CPUState]int{}
		for _, act := range acts {
			s.CPUStates[CPUState(act.State)]++
		}
	}
	m.mu.Lock()
	n := inst.perfN
	m.mu.Unlock()
	if p, ok := m.d.IHK.(Perf); ok && n > 0 {
		if v, err := p.PerfRead(ctx, inst.os, n); err == nil {
			s.Perf = v
		} else {
			m.d.Log.Warn("cannot read performance counters", "job", inst.job, "os", inst.os, "err", err)
		}
	}
	return s, nil
}

// DetectHangs runs IHK's hang detector once on every running instance.
// DETECT_HUNGUP acts on /dev/mcd0, not on the instance's device.
func (m *Monitor) DetectHangs(ctx context.Context) {
	for _, inst := range m.running() {
		m.mu.Lock()
		done := inst.reacted != ""
		m.mu.Unlock()
		if done {
			continue // the LWK already failed; its job is ending
		}
		st, err := m.d.IHK.DetectHangup(ctx, inst.os)
		if err != nil {
			if !errors.Is(err, ihk.ErrNotFound) {
				m.d.Log.Debug("hang detection failed", "job", inst.job, "os", inst.os, "err", err)
			}
			continue
		}
		if kind := statusEvent(st); kind != "" {
			m.react(ctx, inst, kind, true)
		}
	}
}

func statusEvent(st ihk.Status) string {
	switch st {
	case ihk.StatusFailed:
		return accounting.EventPanic
	case ihk.StatusHungup:
		return accounting.EventHang
	}
	return ""
}

// handle acts on an eventfd wake-up: OOM directly, STATUS after confirming
// the status (one IHK_OS_STATUS per event, under the lock).
func (m *Monitor) handle(ctx context.Context, ev event) {
	m.mu.Lock()
	inst := m.jobs[ev.job]
	m.mu.Unlock()
	if inst == nil || inst.os != ev.os {
		return
	}
	if ev.err != nil {
		m.d.Log.Warn("lwk event watcher stopped", "job", ev.job, "os", ev.os, "err", ev.err)
		return
	}
	if ev.oom {
		m.react(ctx, inst, accounting.EventOOM, true)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, reactLockWait)
	release, err := m.d.Lock.Lock(lctx)
	cancel()
	if err != nil {
		m.d.Log.Warn("status event: node lock not available", "job", ev.job, "os", ev.os, "err", err)
		return
	}
	var st ihk.Status
	if m.markerIs(inst) {
		st, err = m.d.IHK.Status(ctx, inst.os)
	} else {
		err = fmt.Errorf("job %d: teardown began", inst.job)
	}
	release()
	if err != nil {
		m.d.Log.Info("status event ignored", "job", ev.job, "os", ev.os, "err", err)
		return
	}
	m.mu.Lock()
	inst.status = st
	m.mu.Unlock()
	if kind := statusEvent(st); kind != "" {
		m.react(ctx, inst, kind, true)
	}
}

var eventText = map[string]string{
	accounting.EventPanic: "LWK kernel panic",
	accounting.EventHang:  "LWK hang detected",
	accounting.EventOOM:   "LWK out of memory",
}

// react handles a panic, hang or OOM: count it, and the first time for this
// instance save the kernel log, tell the job's tasks, fail the job and
// drain the node. The epilog still tears the LWK down.
func (m *Monitor) react(ctx context.Context, inst *instance, kind string, needLock bool) {
	m.mu.Lock()
	if kind != accounting.EventOOM && inst.events[kind] > 0 {
		// A status stays FAILED or HUNGUP: the same event, seen again.
		m.mu.Unlock()
		return
	}
	inst.events[kind]++
	m.counters.Events[kind]++
	first := inst.reacted == ""
	if first {
		inst.reacted = kind
		switch kind {
		case accounting.EventPanic:
			inst.status = ihk.StatusFailed
		case accounting.EventHang:
			inst.status = ihk.StatusHungup
		}
	}
	m.mu.Unlock()
	if !first {
		return
	}
	log := m.d.Log.With("job", inst.job, "os", inst.os, "event", kind)
	log.Warn("lwk failed: failing the job and draining the node")
	kmsgPath := m.saveKmsg(ctx, inst, kind, needLock)
	reason := fmt.Sprintf("lwk: %s on %s (os %d, job %d)", eventText[kind], m.cfg.Node, inst.os, inst.job)
	if kmsgPath != "" {
		reason += "; kernel log " + kmsgPath
	}
	if pids, err := m.d.Proxies.Holders(inst.dev(m.cfg.DevDir)); err == nil && len(pids) > 0 {
		m.d.Proxies.Notify(pids, reason+"\n")
	}
	if err := m.d.Slurm.DrainNode(ctx, reason); err != nil {
		log.Error("cannot drain the node", "err", err)
	}
	if err := m.d.Slurm.FailJob(ctx, inst.job, reason); err != nil {
		log.Error("cannot fail the job", "err", err)
	}
}

// saveKmsg copies the LWK kernel log into the spool; "" when it cannot.
func (m *Monitor) saveKmsg(ctx context.Context, inst *instance, kind string, needLock bool) string {
	if needLock {
		lctx, cancel := context.WithTimeout(ctx, reactLockWait)
		release, err := m.d.Lock.Lock(lctx)
		cancel()
		if err != nil {
			m.d.Log.Warn("kernel log not saved: node lock not available", "job", inst.job, "err", err)
			return ""
		}
		defer release()
	}
	if !m.markerIs(inst) {
		return ""
	}
	msg, err := m.d.IHK.ReadKmsg(ctx, inst.os)
	if err != nil {
		m.d.Log.Warn("kernel log not saved", "job", inst.job, "err", err)
		return ""
	}
	path := m.d.Spool.KmsgPath(inst.job, inst.os, kind)
	if err := m.d.Spool.WriteFile(path, msg); err != nil {
		m.d.Log.Warn("kernel log not saved", "job", inst.job, "err", err)
		return ""
	}
	return path
}

// finalize ends a job: it builds the node's final record from the epilog's
// reading (or the last sample), spools it and wakes record requests.
func (m *Monitor) finalize(inst *instance, now time.Time) {
	inst.stopWatch()
	rec := m.record(inst, accounting.FinalLastSample)
	if r, err := finalusage.Read(m.cfg.LogDir, inst.job, inst.os); err == nil {
		rec.Final = accounting.FinalEpilog
		applyRusage(rec, r.Rusage)
		// A rescan between the marker's removal and the journal's may
		// not have happened (a fast epilog, a loaded node): the
		// epilog's own start time is then the teardown's start.
		if b := r.TeardownBegan; !b.IsZero() && !b.After(now) && (inst.teardown.IsZero() || b.Before(inst.teardown)) {
			m.mu.Lock()
			inst.teardown = b
			m.mu.Unlock()
		}
		for k, v := range r.Rusage.MemoryRSSBytes {
			if name := pageSizeName(k); name != "" && v > rec.MaxRSSByPageSize[name] {
				if rec.MaxRSSByPageSize == nil {
					rec.MaxRSSByPageSize = map[string]uint64{}
				}
				rec.MaxRSSByPageSize[name] = v
			}
		}
		if err := finalusage.Remove(m.cfg.LogDir, inst.job, inst.os); err != nil {
			m.d.Log.Warn("cannot remove the epilog's reading", "job", inst.job, "err", err)
			m.mu.Lock()
			if m.unremovable == nil {
				m.unremovable = map[finalusage.Key]time.Time{}
			}
			m.unremovable[finalusage.Key{JobID: inst.job, OS: inst.os}] = r.Time
			m.mu.Unlock()
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		m.d.Log.Warn("epilog's reading unusable; using the last sample", "job", inst.job, "err", err)
	}
	if !inst.teardown.IsZero() {
		rec.TeardownSeconds = now.Sub(inst.teardown).Seconds()
	}
	data, err := json.Marshal(rec)
	if err == nil {
		err = m.d.Spool.WriteFile(m.d.Spool.RecordPath(inst.job), data)
	}
	if err != nil {
		m.d.Log.Warn("cannot spool the final record", "job", inst.job, "err", err)
	}
	m.d.Spool.SetLive(inst.job, false)
	m.mu.Lock()
	delete(m.jobs, inst.job)
	m.counters.Teardowns++
	if !inst.teardown.IsZero() {
		m.counters.TeardownSeconds.observe(rec.TeardownSeconds)
	}
	m.finals[inst.job] = rec
	m.finalList = append(m.finalList, inst.job)
	if len(m.finalList) > keepFinal {
		delete(m.finals, m.finalList[0])
		m.finalList = m.finalList[1:]
	}
	close(m.finalSig)
	m.finalSig = make(chan struct{})
	m.mu.Unlock()
	m.d.Log.Info("job ended", "job", inst.job, "os", inst.os, "final", rec.Final,
		"user_seconds", rec.UserSeconds, "samples", rec.Samples, "teardown_seconds", rec.TeardownSeconds)
}

// record builds the instance's record from what the monitor saw.
func (m *Monitor) record(inst *instance, final string) *accounting.NodeRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := &accounting.NodeRecord{
		Version: accounting.NodeRecordVersion, JobID: inst.job, Node: m.cfg.Node, OS: inst.os, Final: final,
		Samples: inst.samples, BootSeconds: inst.up.Sub(inst.created).Seconds(),
	}
	if inst.last != nil {
		applyRusage(rec, inst.last)
	}
	for k, v := range inst.maxRSS {
		if name := pageSizeName(k); name != "" && v > 0 {
			if rec.MaxRSSByPageSize == nil {
				rec.MaxRSSByPageSize = map[string]uint64{}
			}
			rec.MaxRSSByPageSize[name] = v
		}
	}
	for k, v := range inst.events {
		if rec.Events == nil {
			rec.Events = map[string]int{}
		}
		rec.Events[k] = v
	}
	for i, v := range inst.perf {
		if i < len(inst.perfCodes) {
			if rec.Perf == nil {
				rec.Perf = map[string]uint64{}
			}
			rec.Perf[inst.perfCodes[i]] = v
		}
	}
	return rec
}

func applyRusage(rec *accounting.NodeRecord, ru *ihk.Rusage) {
	rec.UserSeconds = float64(ru.UserNanoseconds) / 1e9
	rec.SystemSeconds = float64(ru.SystemTicks) / 100
	rec.MaxMemoryBytes = ru.MemoryMaxUsageBytes
	rec.MaxKernelMemoryBytes = ru.KmemMaxUsageBytes
	rec.MaxThreads = ru.MaxThreads
}

// pageSizeName names the page-size classes McKernel fills.
func pageSizeName(class int) string {
	switch class {
	case ihk.PageSize4K:
		return "4K"
	case ihk.PageSize2M:
		return "2M"
	case ihk.PageSize1G:
		return "1G"
	}
	return ""
}

// CheckSuspend freezes the LWK of a job whose proxies are all stopped
// (scontrol suspend stops them, but a stopped mcexec does not stop the
// program on the LWK) and thaws it once they run again.
func (m *Monitor) CheckSuspend(ctx context.Context) {
	for _, inst := range m.running() {
		m.checkSuspend(ctx, inst)
	}
}

// proxyRescan bounds how long a cached proxy list is trusted.
const proxyRescan = 10 * time.Second

func (m *Monitor) checkSuspend(ctx context.Context, inst *instance) {
	m.mu.Lock()
	reacted, frozen, cached, at := inst.reacted != "", inst.frozen, inst.proxies, inst.proxiesAt
	m.mu.Unlock()
	if reacted {
		return
	}
	dev := inst.dev(m.cfg.DevDir)
	pids := cached
	if len(pids) == 0 || time.Since(at) > proxyRescan {
		var err error
		if pids, err = m.d.Proxies.Holders(dev); err != nil {
			m.d.Log.Debug("cannot list proxies", "job", inst.job, "err", err)
			return
		}
		m.mu.Lock()
		inst.proxies, inst.proxiesAt = pids, time.Now()
		m.mu.Unlock()
	}
	stopped := m.allStopped(pids)
	if stopped == frozen {
		return
	}
	// The state seems to have changed: confirm with a fresh list (a new
	// step may have started, an old one ended).
	pids, err := m.d.Proxies.Holders(dev)
	if err != nil {
		return
	}
	m.mu.Lock()
	inst.proxies, inst.proxiesAt = pids, time.Now()
	m.mu.Unlock()
	if stopped = m.allStopped(pids); stopped == frozen {
		return
	}
	release, err := m.d.Lock.TryLock()
	if err != nil {
		return // the epilog or a prolog runs; try again next tick
	}
	defer release()
	if !m.markerIs(inst) {
		return
	}
	kind := accounting.EventThaw
	if stopped {
		kind = accounting.EventFreeze
		err = m.d.IHK.Freeze(ctx, inst.os)
	} else {
		err = m.d.IHK.Thaw(ctx, inst.os)
	}
	if err != nil {
		m.d.Log.Warn("cannot "+kind+" the lwk", "job", inst.job, "os", inst.os, "err", err)
		return
	}
	m.mu.Lock()
	inst.frozen = stopped
	inst.events[kind]++
	m.counters.Events[kind]++
	if stopped {
		inst.status = ihk.StatusFrozen
	} else {
		inst.status = ihk.StatusRunning
	}
	m.mu.Unlock()
	m.d.Log.Info("job proxies "+map[bool]string{true: "stopped: lwk frozen", false: "resumed: lwk thawed"}[stopped],
		"job", inst.job, "os", inst.os, "proxies", len(pids))
}

// allStopped: at least one proxy, and every one stopped.
func (m *Monitor) allStopped(pids []int) bool {
	n := 0
	for _, p := range pids {
		if !m.d.Proxies.Stopped(p) {
			return false
		}
		n++
	}
	return n > 0
}

func (m *Monitor) refreshReadiness() {
	if len(m.cfg.ReadinessNodes) == 0 {
		return
	}
	r, err := readiness.Read(m.cfg.SysfsRoot, m.cfg.Proc.Root, m.cfg.ReadinessNodes, os.Getpagesize())
	if err != nil {
		m.d.Log.Warn("cannot read readiness", "err", err)
		return
	}
	m.mu.Lock()
	m.ready, m.readyAt = r, time.Now()
	m.mu.Unlock()
}

// Once finds the jobs, samples each once and reads the readiness, without
// watching for events (lwk-monitor --once).
func (m *Monitor) Once(ctx context.Context) {
	m.oneShot = true
	m.rescan(ctx)
	m.SampleAll(ctx)
	m.refreshReadiness()
	m.stopAll()
}
