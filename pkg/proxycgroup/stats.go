package proxycgroup

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats is what the kernel counted for a job's proxies (v1).
type Stats struct {
	// Periods and Throttled count CFS periods with activity, and those in
	// which the quota ran out (cpu.stat nr_periods, nr_throttled).
	Periods, Throttled uint64
	// ThrottledTime is how long the proxies were held back (cpu.stat
	// throttled_time).
	ThrottledTime time.Duration
	// Usage is the CPU time of the proxies alive now, all threads
	// (/proc/<pid>/task/*/schedstat; v1 cpu.stat has no usage).
	Usage time.Duration
	// MemoryMaxBytes is the high-water mark of their memory (bytes);
	// Failcnt counts hits of the limit; OOMKills counts processes the
	// kernel killed for it (memory.oom_control oom_kill).
	MemoryMaxBytes, Failcnt, OOMKills uint64
}

// Stats reads the counters of a job's proxies (v1 only: on v2 Slurm's
// step cgroup holds them, and Slurm reports its OOM kills itself).
func (m Manager) Stats(jobID uint32) (Stats, error) {
	var st Stats
	if m.Layout.Mode != V1 {
		return st, fmt.Errorf("proxy stats of job %d: only kept for cgroup v1", jobID)
	}
	cpu := filepath.Join(m.jobDir("cpu", jobID), string(Proxy))
	kv, err := m.keyValues(cpu, "cpu.stat")
	if err != nil {
		return st, err
	}
	st.Periods, st.Throttled = kv["nr_periods"], kv["nr_throttled"]
	st.ThrottledTime = time.Duration(kv["throttled_time"])
	mem := filepath.Join(m.jobDir("memory", jobID), string(Proxy))
	if kv, err = m.keyValues(mem, "memory.oom_control"); err != nil {
		return st, err
	}
	st.OOMKills = kv["oom_kill"]
	for _, f := range []struct {
		file string
		dst  *uint64
	}{{"memory.max_usage_in_bytes", &st.MemoryMaxBytes}, {"memory.failcnt", &st.Failcnt}} {
		s, err := m.FS.Read(mem, f.file)
		if err != nil {
			return st, err
		}
		if *f.dst, err = strconv.ParseUint(strings.TrimSpace(s), 10, 64); err != nil {
			return st, fmt.Errorf("%s: %w", filepath.Join(mem, f.file), err)
		}
	}
	procs, err := m.FS.Read(cpu, "cgroup.procs")
	if err != nil {
		return st, err
	}
	for f := range strings.FieldsSeq(procs) {
		if pid, err := strconv.Atoi(f); err == nil {
			st.Usage += m.Layout.Proc.RunTime(pid)
		}
	}
	return st, nil
}

func (m Manager) keyValues(dir, file string) (map[string]uint64, error) {
	s, err := m.FS.Read(dir, file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", filepath.Join(dir, file), line, err)
		}
		out[f[0]] = v
	}
	return out, nil
}
