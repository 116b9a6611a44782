// Package jobmarker writes and reads the per-job marker files in the run
// directory (RunDir, /run/slurm-lwk by default). lwk-prolog writes
// <RunDir>/job-<id> once the job's LWK is RUNNING; the SPANK plugin checks
// for it (as root, in remote init_post_opt and task_init_privileged) before
// running the batch script or any task, and lwk-epilog removes it.
//
// The content is one "key=value" line per field, "os=<N>" first:
//
//	os=0
//	attempt=1
//	cpus=12
//	oversubscribe=0
//
// attempt is the job's restart count when the prolog booted the LWK
// (SLURM_JOB_RESTART_COUNT): the plugin compares it with the step's
// SLURM_RESTART_COUNT, so a requeued job whose new attempt got no prolog
// (Slurm 22.05 can skip it, see spank/lwk.c) is never taken for booted.
// cpus is the LWK's CPU count and oversubscribe whether McKernel was booted
// with allow_oversubscribe: the plugin refuses a step with more local tasks
// than LWK CPUs unless it is set. lwk_numa, written only when known, is how
// the LWK numbers its NUMA nodes ("lwk_numa=0:0,1:1,4:2": Linux node 4 is
// LWK node 2), for the plugin to export to the job's tasks as LWK_NUMA_MAP.
// Readers ignore keys they do not know.
package jobmarker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/atomicfile"
)

// Path returns the marker path of a job.
func Path(runDir string, jobID uint32) string {
	return filepath.Join(runDir, fmt.Sprintf("job-%d", jobID))
}

// Marker is a marker's content.
type Marker struct {
	// OS is the instance's index.
	OS int
	// Attempt is the job's restart count the LWK was booted for.
	Attempt uint32
	// CPUs is the number of LWK CPUs; 0 when unknown.
	CPUs int
	// Oversubscribe is whether McKernel runs more processes than CPUs
	// (kernel argument allow_oversubscribe).
	Oversubscribe bool
	// LWKNUMA is the LWK's NUMA numbering, "<linux>:<lwk>,..." (digits,
	// ':' and ',' only); empty when not known.
	LWKNUMA string
}

func (m Marker) encode() string {
	over := 0
	if m.Oversubscribe {
		over = 1
	}
	s := fmt.Sprintf("os=%d\nattempt=%d\ncpus=%d\noversubscribe=%d\n", m.OS, m.Attempt, m.CPUs, over)
	if m.LWKNUMA != "" {
		s += "lwk_numa=" + m.LWKNUMA + "\n"
	}
	return s
}

// Write creates the marker of the first attempt (0600) in runDir (created
// 0700 if missing), atomically.
func Write(runDir string, jobID uint32, osIndex int) (string, error) {
	return WriteMarker(runDir, jobID, Marker{OS: osIndex})
}

// WriteMarker creates the marker m (0600) in runDir (created 0700 if
// missing), atomically.
func WriteMarker(runDir string, jobID uint32, m Marker) (string, error) {
	if !validNUMAMap(m.LWKNUMA) {
		return "", fmt.Errorf("write marker of job %d: bad lwk numa map %q", jobID, m.LWKNUMA)
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return "", fmt.Errorf("create run dir %s: %w", runDir, err)
	}
	path := Path(runDir, jobID)
	// The temp name starts with ".job-", which List does not take for a
	// marker. /run does not survive a reboot, so no fsync.
	data := []byte(m.encode())
	opt := atomicfile.Options{Perm: 0o600, TempPrefix: ".job-"}
	if err := atomicfile.Write(runDir, filepath.Base(path), data, opt); err != nil {
		return "", fmt.Errorf("write marker %s: %w", path, err)
	}
	return path, nil
}

// Read returns the OS index a job's marker names; fs.ErrNotExist when there
// is no marker.
func Read(runDir string, jobID uint32) (int, error) {
	m, err := ReadMarker(runDir, jobID)
	return m.OS, err
}

// ReadMarker returns a job's marker; fs.ErrNotExist when there is none.
func ReadMarker(runDir string, jobID uint32) (Marker, error) {
	path := Path(runDir, jobID)
	b, err := os.ReadFile(path)
	if err != nil {
		return Marker{OS: -1}, fmt.Errorf("read marker %s: %w", path, err)
	}
	m, err := parse(string(b))
	if err != nil {
		return Marker{OS: -1}, fmt.Errorf("marker %s: %w", path, err)
	}
	return m, nil
}

func parse(s string) (Marker, error) {
	m := Marker{OS: -1}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, line := range lines {
		k, v, ok := strings.Cut(line, "=")
		if ok && k == "lwk_numa" && i > 0 {
			if !validNUMAMap(v) {
				return Marker{OS: -1}, fmt.Errorf("malformed content %q", s)
			}
			m.LWKNUMA = v
			continue
		}
		n, err := strconv.ParseUint(v, 10, 31)
		if !ok || err != nil || (i == 0) != (k == "os") {
			return Marker{OS: -1}, fmt.Errorf("malformed content %q", s)
		}
		switch k {
		case "os":
			m.OS = int(n)
		case "attempt":
			m.Attempt = uint32(n)
		case "cpus":
			m.CPUs = int(n)
		case "oversubscribe":
			m.Oversubscribe = n != 0
		}
	}
	return m, nil
}

// List returns the job IDs that have markers.
func List(runDir string) ([]uint32, error) {
	ents, err := os.ReadDir(runDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list markers in %s: %w", runDir, err)
	}
	var ids []uint32
	for _, e := range ents {
		if id, ok := IDOf(e.Name()); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// IDOf returns the job ID of a marker's file name (Path's job-<id>), and
// false for any other name.
func IDOf(name string) (uint32, bool) {
	v, ok := strings.CutPrefix(name, "job-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(v, 10, 32)
	return uint32(id), err == nil
}

// Remove deletes a job's marker; a missing marker is success.
func Remove(runDir string, jobID uint32) error {
	path := Path(runDir, jobID)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove marker %s: %w", path, err)
	}
	return nil
}

// MaxNUMAMap is the longest lwk_numa value the plugin reads (spank/lwk.c
// LWK_NUMA_MAX less its NUL): 64 nodes numbered up to 999 take 511.
const MaxNUMAMap = 1023

// validNUMAMap reports whether s holds only what a NUMA map may: digits,
// ':' and ',', at most MaxNUMAMap bytes. The plugin exports it to the job's
// environment as is.
func validNUMAMap(s string) bool {
	return len(s) <= MaxNUMAMap && strings.Trim(s, "0123456789:,") == ""
}
