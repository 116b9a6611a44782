package proxycgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"k8s.io/utils/cpuset"
)

const recordVersion = 1

// Record is what the prolog tells the task wrapper: the job's cgroups (v1)
// or the limits to put on Slurm's step cgroup (v2). It lives in RunDir,
// root-only, next to the job's run marker; the wrapper reads nothing else.
type Record struct {
	Version int    `json:"version"`
	JobID   uint32 `json:"job"`
	Mode    Mode   `json:"mode"`
	// Proxies and Batch map controller to directory (v1).
	Proxies map[string]string `json:"proxies,omitempty"`
	Batch   map[string]string `json:"batch,omitempty"`
	Limits  LimitsJSON        `json:"limits"`
}

// LimitsJSON is Limits as recorded; sets in kernel list form.
type LimitsJSON struct {
	CPUs        string `json:"cpus"`
	Mems        string `json:"mems,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes"`
	CPUQuotaUS  int64  `json:"cpu_quota_us"`
	CPUPeriodUS int64  `json:"cpu_period_us"`
	BatchCPUs   string `json:"batch_cpus,omitempty"`
}

func limitsJSONOf(l Limits) LimitsJSON {
	return LimitsJSON{
		CPUs: l.CPUs.String(), Mems: l.Mems.String(), MemoryBytes: l.MemoryBytes,
		CPUQuotaUS: l.CPUQuotaUS, CPUPeriodUS: l.CPUPeriodUS, BatchCPUs: l.BatchCPUs.String(),
	}
}

// limits parses the recorded limits back.
func (j LimitsJSON) limits() (Limits, error) {
	var l Limits
	var err error
	for _, f := range []struct {
		name string
		s    string
		dst  *cpuset.CPUSet
	}{{"cpus", j.CPUs, &l.CPUs}, {"mems", j.Mems, &l.Mems}, {"batch_cpus", j.BatchCPUs, &l.BatchCPUs}} {
		if *f.dst, err = cpuset.Parse(f.s); err != nil {
			return l, fmt.Errorf("limits %s %q: %w", f.name, f.s, err)
		}
	}
	l.MemoryBytes, l.CPUQuotaUS, l.CPUPeriodUS = j.MemoryBytes, j.CPUQuotaUS, j.CPUPeriodUS
	return l, l.Validate()
}

// RecordPath is where a job's record lives.
func RecordPath(runDir string, jobID uint32) string {
	return filepath.Join(runDir, "job-"+strconv.FormatUint(uint64(jobID), 10)+".cgroup")
}

// WriteRecord writes the record (0600) into runDir (created 0700),
// atomically.
func WriteRecord(runDir string, rec *Record) (string, error) {
	path := RecordPath(runDir, rec.JobID)
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return "", fmt.Errorf("create run dir %s: %w", runDir, err)
	}
	tmp, err := os.CreateTemp(runDir, ".cgroup-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err = errors.Join(err, tmp.Close()); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// ReadRecord reads a job's record; it must be a regular file owned by root
// and writable by nobody else, and name the job. fs.ErrNotExist when the job
// has none (a Linux job, or confinement off).
func ReadRecord(runDir string, jobID uint32) (*Record, error) {
	path := RecordPath(runDir, jobID)
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("read %s: not a root-owned regular file writable by root only", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if rec.Version != recordVersion || rec.JobID != jobID {
		return nil, fmt.Errorf("read %s: version %d for job %d, want version %d for job %d", path, rec.Version, rec.JobID, recordVersion, jobID)
	}
	return &rec, nil
}

// RemoveRecord deletes a job's record; a missing one is success.
func RemoveRecord(runDir string, jobID uint32) error {
	path := RecordPath(runDir, jobID)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
