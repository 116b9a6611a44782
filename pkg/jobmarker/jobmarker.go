// Package jobmarker writes and reads the per-job marker files in the run
// directory (RunDir, /run/slurm-lwk by default). lwk-prolog writes
// <RunDir>/job-<id> once the job's LWK is RUNNING; the SPANK plugin checks
// for it (as root, in task_init_privileged) before running tasks through
// mcexec, and lwk-epilog removes it. The content is "os=<N>\n", optionally
// followed by "lwk_numa=<linux>:<lwk>,...\n": how the LWK numbers its NUMA
// nodes, for the plugin to export to the job's tasks as LWK_NUMA_MAP.
package jobmarker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Path returns the marker path of a job.
func Path(runDir string, jobID uint32) string {
	return filepath.Join(runDir, fmt.Sprintf("job-%d", jobID))
}

// Write creates the marker (0600) in runDir (created 0700 if missing),
// atomically.
func Write(runDir string, jobID uint32, osIndex int) (string, error) {
	return WriteNUMA(runDir, jobID, osIndex, "")
}

// WriteNUMA is Write with the LWK's NUMA numbering ("0:0,1:1,4:2"; empty
// writes none). It may hold only digits, ':' and ','.
func WriteNUMA(runDir string, jobID uint32, osIndex int, lwkNUMA string) (string, error) {
	if strings.Trim(lwkNUMA, "0123456789:,") != "" {
		return "", fmt.Errorf("write marker of job %d: bad lwk numa map %q", jobID, lwkNUMA)
	}
	content := fmt.Sprintf("os=%d\n", osIndex)
	if lwkNUMA != "" {
		content += "lwk_numa=" + lwkNUMA + "\n"
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return "", fmt.Errorf("create run dir %s: %w", runDir, err)
	}
	path := Path(runDir, jobID)
	tmp, err := os.CreateTemp(runDir, ".job-*")
	if err != nil {
		return "", fmt.Errorf("write marker %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write marker %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write marker %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write marker %s: %w", path, err)
	}
	return path, nil
}

// Read returns the OS index a job's marker names; fs.ErrNotExist when there
// is no marker.
func Read(runDir string, jobID uint32) (int, error) {
	path := Path(runDir, jobID)
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, fmt.Errorf("read marker %s: %w", path, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "os=")
	n, err := strconv.Atoi(v)
	if !ok || err != nil || n < 0 {
		return -1, fmt.Errorf("marker %s: malformed content %q", path, b)
	}
	return n, nil
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
		v, ok := strings.CutPrefix(e.Name(), "job-")
		if !ok {
			continue
		}
		if id, err := strconv.ParseUint(v, 10, 32); err == nil {
			ids = append(ids, uint32(id))
		}
	}
	return ids, nil
}

// Remove deletes a job's marker; a missing marker is success.
func Remove(runDir string, jobID uint32) error {
	path := Path(runDir, jobID)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove marker %s: %w", path, err)
	}
	return nil
}
