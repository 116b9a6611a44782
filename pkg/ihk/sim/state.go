package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/slurm-lwk/slurm-lwk/pkg/atomicfile"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodelock"
)

// stateFile is the simulated driver's state in the state directory; "lock"
// beside it is package nodelock's lock file.
const stateFile = "state.json"

// stateVersion is the version of the state file format.
const stateVersion = 1

// state is the whole simulated driver, persisted in stateFile.
type state struct {
	Version int `json:"version"`
	// ReservedCPUs are all CPUs taken from Linux (assigned or not),
	// ascending. To Linux (in the simulation) they are offline.
	ReservedCPUs []int `json:"reserved_cpus"`
	// FreeChunks are the reserved, unassigned memory chunks, in the order
	// the driver would list them.
	FreeChunks []ihk.MemChunk `json:"free_chunks"`
	// BootedOS is the instance holding the device-wide boot flag, if any.
	BootedOS *int `json:"booted_os,omitempty"`
	// OS are the instances, ascending index.
	OS []*osState `json:"os_instances"`
}

type osState struct {
	Index  int            `json:"index"`
	CPUs   []int          `json:"cpus"`
	Memory []ihk.MemChunk `json:"memory"`
	Image  string         `json:"image,omitempty"`
	Kargs  string         `json:"kargs,omitempty"`
	// IKC maps an assigned CPU to the Linux CPU its IKC interrupts go to;
	// a CPU without an entry uses Linux CPU 0, as in the driver.
	IKC map[int]int `json:"ikc_map,omitempty"`
	// Boot is nil while the instance is INITIAL (NOT_BOOTED).
	Boot *bootState `json:"boot,omitempty"`
	// Events are the registered eventfds; kept until DestroyOS.
	Events []eventReg `json:"events,omitempty"`
}

type bootState struct {
	ID       string      `json:"id"`
	Timeline Timeline    `json:"timeline"`
	Kmsg     []kmsgEntry `json:"kmsg"`
	// HangPending makes the next DetectHangup find a hang (InjectHang).
	HangPending bool      `json:"hang_pending,omitempty"`
	Perf        perfState `json:"perf"`
	// PeakThreads and PeakRSSBytes are the highest values Rusage saw.
	PeakThreads  int32  `json:"peak_threads"`
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`
}

type kmsgEntry struct {
	AtNS int64  `json:"at_ns"`
	Text string `json:"text"`
}

type perfState struct {
	// Attrs are the registered counters (at most perfCounters).
	Attrs   []ihk.PerfAttr `json:"attrs,omitempty"`
	Enabled bool           `json:"enabled,omitempty"`
	// BaseUserNS and BaseSystemNS are the instance's CPU time when the
	// counters were last enabled. Units: ns.
	BaseUserNS   uint64 `json:"base_user_ns,omitempty"`
	BaseSystemNS uint64 `json:"base_system_ns,omitempty"`
	// Values are the counts accumulated while enabled, before the current
	// enabled period.
	Values []uint64 `json:"values,omitempty"`
}

// eventReg identifies a registered eventfd in the registering process, so
// that any process can signal it later through pidfd_getfd(2).
type eventReg struct {
	Type ihk.EventType `json:"type"`
	PID  int           `json:"pid"`
	FD   int           `json:"fd"`
	// StartTicks is the process's start time (field 22 of /proc/<pid>/stat),
	// guarding against PID reuse.
	StartTicks uint64 `json:"start_ticks"`
	// EventfdID is the fd's "eventfd-id" from fdinfo, guarding against fd
	// number reuse; 0 if the kernel does not report one.
	EventfdID uint64 `json:"eventfd_id,omitempty"`
}

func newState() *state { return &state{Version: stateVersion} }

func (s *state) os(i int) *osState {
	for _, o := range s.OS {
		if o.Index == i {
			return o
		}
	}
	return nil
}

// assignedCPUs returns every CPU assigned to some instance.
func (s *state) assignedCPUs() map[int]int {
	m := map[int]int{}
	for _, o := range s.OS {
		for _, c := range o.CPUs {
			m[c] = o.Index
		}
	}
	return m
}

// availableCPUs returns reserved, unassigned CPUs, ascending.
func (s *state) availableCPUs() []int {
	assigned := s.assignedCPUs()
	out := []int{}
	for _, c := range s.ReservedCPUs {
		if _, ok := assigned[c]; !ok {
			out = append(out, c)
		}
	}
	return out
}

// reservedBytes is all memory reserved on a NUMA node, assigned or not.
func (s *state) reservedBytes(node int) uint64 {
	var sum uint64
	for _, c := range s.FreeChunks {
		if c.NUMANode == node {
			sum += c.Bytes
		}
	}
	for _, o := range s.OS {
		for _, c := range o.Memory {
			if c.NUMANode == node {
				sum += c.Bytes
			}
		}
	}
	return sum
}

func (s *state) sortOS() {
	sort.Slice(s.OS, func(i, j int) bool { return s.OS[i].Index < s.OS[j].Index })
}

// store is the locked state directory.
type store struct {
	dir string
}

// lock takes the state lock (the flock protocol of package nodelock on
// <dir>/lock), polling so that ctx can cancel the wait.
func (st *store) lock(ctx context.Context) (*nodelock.Lock, error) {
	l, err := nodelock.Acquire(ctx, st.dir)
	if err != nil {
		return nil, fmt.Errorf("lock simulator state: %w", err)
	}
	return l, nil
}

func (st *store) load() (*state, []byte, error) {
	path := filepath.Join(st.dir, stateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read simulator state %s: %w", path, err)
	}
	s := newState()
	if err := json.Unmarshal(data, s); err != nil {
		return nil, nil, fmt.Errorf("read simulator state %s: corrupt: %w", path, err)
	}
	if s.Version != stateVersion {
		return nil, nil, fmt.Errorf("read simulator state %s: version %d, want %d", path, s.Version, stateVersion)
	}
	return s, data, nil
}

// save writes the state atomically: temp file, rename. There is no fsync:
// the simulated driver's state, like the real driver's, does not survive a
// reboot, so it needs atomicity against a killed process (which the rename
// gives), not durability against a power loss. Leaving the fsyncs out keeps
// the simulator from adding disk flushes to the lifecycle timings that a
// real IHK ioctl would not cost.
func (st *store) save(s *state) ([]byte, error) {
	data, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	path := filepath.Join(st.dir, stateFile)
	if err := atomicfile.Write(st.dir, stateFile, data, atomicfile.Options{Perm: 0o600, TempPrefix: stateFile + ".tmp"}); err != nil {
		return nil, fmt.Errorf("write simulator state %s: %w", path, err)
	}
	return data, nil
}
