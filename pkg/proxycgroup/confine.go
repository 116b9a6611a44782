package proxycgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// DefaultPrefix is the directory under each v1 hierarchy's root that holds
// the jobs' cgroups. It is created once and kept: concurrent prologs share it.
const DefaultPrefix = "slurm-lwk"

// Role says which part of a job's Linux side a task is.
type Role string

// The roles.
const (
	// Proxy is a task of a normal step: an mcexec proxy and its threads.
	Proxy Role = "proxies"
	// Batch is the batch step: the job script, srun, and what it runs on
	// Linux itself.
	Batch Role = "batch"
)

// Limits is the confinement of one job, from its plan.
type Limits struct {
	// CPUs are the proxies' CPUs: the OS cores. They must be online.
	CPUs cpuset.CPUSet
	// Mems are the NUMA nodes the proxies allocate from (the system NUMA
	// nodes on a split node), as far as the hierarchy root allows them;
	// empty, or none allowed: the root's.
	Mems cpuset.CPUSet
	// MemoryBytes caps the memory of all the job's proxies together (swap
	// included where the kernel accounts it). Units: bytes.
	MemoryBytes uint64
	// CPUQuotaUS per CPUPeriodUS is the proxies' CFS bandwidth, all CPUs
	// together. Units: µs.
	CPUQuotaUS, CPUPeriodUS int64
	// BatchCPUs are the CPUs of the batch step: the job's CPUs the LWK does
	// not take, or the OS cores when it takes them all. Those that are not
	// online are dropped; when none is, the batch step gets CPUs.
	BatchCPUs cpuset.CPUSet
}

// Validate checks the limits before anything is written.
func (l Limits) Validate() error {
	switch {
	case l.CPUs.IsEmpty():
		return errors.New("proxy cpus: empty")
	case l.MemoryBytes < 4<<20:
		return fmt.Errorf("proxy memory %d bytes: below 4 MiB", l.MemoryBytes)
	case l.CPUPeriodUS < 1000 || l.CPUPeriodUS > 1000000:
		return fmt.Errorf("proxy cpu period %dµs: outside 1ms-1s", l.CPUPeriodUS)
	case l.CPUQuotaUS < 1000:
		return fmt.Errorf("proxy cpu quota %dµs: below the kernel's 1ms minimum", l.CPUQuotaUS)
	}
	return nil
}

// Manager creates, joins and removes confinements in one layout.
type Manager struct {
	Layout Layout
	FS     FS
	// Prefix replaces DefaultPrefix (tests on a real node use their own).
	Prefix string
}

// Mode returns the cgroup version in use.
func (m Manager) Mode() Mode { return m.Layout.Mode }

func (m Manager) prefix() string {
	if m.Prefix == "" {
		return DefaultPrefix
	}
	return m.Prefix
}

// jobDir is the job's directory in one v1 hierarchy.
func (m Manager) jobDir(ctrl string, jobID uint32) string {
	return filepath.Join(m.Layout.V1[ctrl], m.prefix(), "job-"+strconv.FormatUint(uint64(jobID), 10))
}

// JobDirs returns the job's directories, one per v1 hierarchy (nil on v2,
// where nothing of ours exists).
func (m Manager) JobDirs(jobID uint32) map[string]string {
	if m.Layout.Mode != V1 {
		return nil
	}
	out := map[string]string{}
	for _, c := range Controllers {
		out[c] = m.jobDir(c, jobID)
	}
	return out
}

// Create makes the job's confinement and returns the record the task
// wrapper joins by. v1: <mount>/slurm-lwk/job-<id>/proxies in the cpuset,
// memory and cpu hierarchies and .../batch in cpuset, with the limits
// written before any task can join. v2: nothing is created (see the package
// doc); the record carries the limits. Create is idempotent: the prolog may
// repeat it after a crash.
func (m Manager) Create(jobID uint32, l Limits) (*Record, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("confine job %d: %w", jobID, err)
	}
	rec := &Record{Version: recordVersion, JobID: jobID, Mode: m.Layout.Mode}
	switch m.Layout.Mode {
	case V2:
		rec.Limits = limitsJSONOf(l)
		return rec, nil
	case V1:
	default:
		return nil, fmt.Errorf("confine job %d: unknown cgroup mode %q", jobID, m.Layout.Mode)
	}
	root := m.Layout.V1["cpuset"]
	rootCPUs, err := m.readSet(root, "cpuset.cpus")
	if err != nil {
		return nil, fmt.Errorf("confine job %d: %w", jobID, err)
	}
	rootMems, err := m.readSet(root, "cpuset.mems")
	if err != nil {
		return nil, fmt.Errorf("confine job %d: %w", jobID, err)
	}
	if !l.CPUs.IsSubsetOf(rootCPUs) {
		return nil, fmt.Errorf("confine job %d: proxy cpus %s are not all online (cgroup root has %s)", jobID, l.CPUs, rootCPUs)
	}
	mems := l.Mems.Intersection(rootMems)
	if mems.IsEmpty() {
		mems = rootMems
	}
	batch := l.BatchCPUs.Intersection(rootCPUs)
	if batch.IsEmpty() {
		batch = l.CPUs
	}
	l.Mems, l.BatchCPUs = mems, batch
	rec.Limits = limitsJSONOf(l)
	rec.Proxies = map[string]string{}
	rec.Batch = map[string]string{}

	// The shared parent: a v1 cpuset starts with empty cpus and mems and
	// takes no children's values until it has its own.
	for _, c := range Controllers {
		if err := m.FS.Mkdir(filepath.Join(m.Layout.V1[c], m.prefix())); err != nil {
			return nil, fmt.Errorf("confine job %d: %w", jobID, err)
		}
	}
	parent := filepath.Join(root, m.prefix())
	if err := m.fillCpuset(parent, rootCPUs, rootMems); err != nil {
		return nil, fmt.Errorf("confine job %d: %w", jobID, err)
	}

	type write struct{ file, value string }
	plan := []struct {
		ctrl, sub string
		writes    []write
	}{
		{"cpuset", "", []write{{"cpuset.cpus", l.CPUs.Union(batch).String()}, {"cpuset.mems", mems.String()}}},
		{"cpuset", string(Proxy), []write{{"cpuset.cpus", l.CPUs.String()}, {"cpuset.mems", mems.String()}}},
		{"cpuset", string(Batch), []write{{"cpuset.cpus", batch.String()}, {"cpuset.mems", mems.String()}}},
		{"memory", "", nil},
		{"memory", string(Proxy), []write{{"memory.limit_in_bytes", strconv.FormatUint(l.MemoryBytes, 10)}}},
		{"cpu", "", nil},
		// Period before quota: the kernel checks the quota against it.
		{"cpu", string(Proxy), []write{
			{"cpu.cfs_period_us", strconv.FormatInt(l.CPUPeriodUS, 10)},
			{"cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuotaUS, 10)},
		}},
	}
	for _, s := range plan {
		dir := m.jobDir(s.ctrl, jobID)
		if s.sub != "" {
			dir = filepath.Join(dir, s.sub)
		}
		if err := m.FS.Mkdir(dir); err != nil {
			return nil, fmt.Errorf("confine job %d: %w", jobID, err)
		}
		for _, w := range s.writes {
			if err := m.FS.Write(dir, w.file, w.value); err != nil {
				return nil, fmt.Errorf("confine job %d: %w", jobID, err)
			}
		}
		if s.ctrl == "memory" && s.sub == string(Proxy) {
			// Swap counts against the same cap where it is accounted
			// (memsw exists only with swap accounting on).
			if _, err := m.FS.Read(dir, "memory.memsw.limit_in_bytes"); err == nil {
				if err := m.FS.Write(dir, "memory.memsw.limit_in_bytes", strconv.FormatUint(l.MemoryBytes, 10)); err != nil {
					return nil, fmt.Errorf("confine job %d: %w", jobID, err)
				}
			}
		}
		switch s.sub {
		case string(Proxy):
			rec.Proxies[s.ctrl] = dir
		case string(Batch):
			rec.Batch[s.ctrl] = dir
		}
	}
	return rec, nil
}

// fillCpuset gives a fresh v1 cpuset the root's CPUs and nodes; one that
// already has them keeps them (narrowing it under live children would fail).
func (m Manager) fillCpuset(dir string, cpus, mems cpuset.CPUSet) error {
	for _, f := range []struct {
		file string
		set  cpuset.CPUSet
	}{{"cpuset.cpus", cpus}, {"cpuset.mems", mems}} {
		cur, err := m.FS.Read(dir, f.file)
		if err != nil {
			return err
		}
		if strings.TrimSpace(cur) != "" {
			continue
		}
		if err := m.FS.Write(dir, f.file, f.set.String()); err != nil {
			return err
		}
	}
	return nil
}

func (m Manager) readSet(dir, file string) (cpuset.CPUSet, error) {
	s, err := m.FS.Read(dir, file)
	if err != nil {
		return cpuset.CPUSet{}, err
	}
	set, err := cpuset.Parse(strings.TrimSpace(s))
	if err != nil {
		return cpuset.CPUSet{}, fmt.Errorf("%s: %w", filepath.Join(dir, file), err)
	}
	return set, nil
}

// Members returns the processes in the job's cgroups (v1; none on v2, where
// Slurm's cgroups hold them).
func (m Manager) Members(jobID uint32) ([]int, error) {
	if m.Layout.Mode != V1 {
		return nil, nil
	}
	var pids []int
	for _, c := range Controllers {
		for _, sub := range []string{"", string(Proxy), string(Batch)} {
			dir := filepath.Join(m.jobDir(c, jobID), sub)
			s, err := m.FS.Read(dir, "cgroup.procs")
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for f := range strings.FieldsSeq(s) {
				pid, err := strconv.Atoi(f)
				if err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// Remove removes the job's cgroups; the caller has ended their processes
// (see Members). Missing cgroups are success, EBUSY is retried with backoff.
// On v2 there is nothing of ours: Slurm removes its step cgroups with the
// limits written onto them.
func (m Manager) Remove(jobID uint32) error {
	if m.Layout.Mode != V1 {
		return nil
	}
	var errs []error
	for _, c := range Controllers {
		if err := m.FS.Remove(m.jobDir(c, jobID)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove confinement of job %d: %w", jobID, err)
	}
	return nil
}

// Leftovers returns the jobs that have cgroups of ours on the node (v1).
func (m Manager) Leftovers() ([]uint32, error) {
	if m.Layout.Mode != V1 {
		return nil, nil
	}
	var ids []uint32
	for _, c := range Controllers {
		dir := filepath.Join(m.Layout.V1[c], m.prefix())
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range ents {
			v, ok := strings.CutPrefix(e.Name(), "job-")
			if !ok || !e.IsDir() {
				continue
			}
			if id, err := strconv.ParseUint(v, 10, 32); err == nil && !slices.Contains(ids, uint32(id)) {
				ids = append(ids, uint32(id))
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}
