package finalusage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// maxBytes bounds a reading file (an rusage with 1024 CPUs is ~30 KB).
const maxBytes = 256 << 10

// Reading is the epilog's last reading of an instance.
type Reading struct {
	JobID uint32    `json:"job"`
	OS    int       `json:"os"`
	Time  time.Time `json:"time"`
	// TeardownBegan is when the epilog removed the job's marker; zero
	// when an older epilog wrote the reading.
	TeardownBegan time.Time   `json:"teardown_began,omitzero"`
	Rusage        *ihk.Rusage `json:"rusage"`
}

// Path names the reading of a job's instance.
func Path(logDir string, jobID uint32, os int) string {
	return filepath.Join(logDir, fmt.Sprintf("job-%d.os%d.rusage.json", jobID, os))
}

// Write stores r (0600, never through a symlink, replaced atomically).
func Write(logDir string, r Reading) error {
	path := Path(logDir, r.JobID, r.OS)
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(logDir, ".rusage-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Read returns the reading of a job's instance; an error wrapping
// fs.ErrNotExist when the epilog left none.
func Read(logDir string, jobID uint32, os int) (*Reading, error) {
	path := Path(logDir, jobID, os)
	f, err := openNoFollow(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxBytes)
	}
	var r Reading
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if r.JobID != jobID || r.OS != os || r.Rusage == nil {
		return nil, fmt.Errorf("read %s: holds job %d os %d", path, r.JobID, r.OS)
	}
	return &r, nil
}

// Key names one reading: a job and its instance.
type Key struct {
	JobID uint32
	OS    int
}

// List returns the readings in logDir, by the names Path gives them;
// other files are ignored. A missing logDir has none.
func List(logDir string) ([]Key, error) {
	ents, err := os.ReadDir(logDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list readings in %s: %w", logDir, err)
	}
	var keys []Key
	for _, e := range ents {
		if k, ok := parseName(e.Name()); ok && e.Type().IsRegular() {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// parseName is the inverse of Path's file name: job-<id>.os<n>.rusage.json
// with canonical decimal numbers.
func parseName(name string) (Key, bool) {
	rest, ok := strings.CutPrefix(name, "job-")
	if !ok {
		return Key{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".rusage.json")
	if !ok {
		return Key{}, false
	}
	job, osIdx, ok := strings.Cut(rest, ".os")
	if !ok {
		return Key{}, false
	}
	j, err := strconv.ParseUint(job, 10, 32)
	if err != nil || j == 0 || strconv.FormatUint(j, 10) != job {
		return Key{}, false
	}
	n, err := strconv.Atoi(osIdx)
	if err != nil || n < 0 || strconv.Itoa(n) != osIdx {
		return Key{}, false
	}
	return Key{JobID: uint32(j), OS: n}, true
}

// Remove deletes the reading; a missing one is success.
func Remove(logDir string, jobID uint32, os int) error {
	err := removeFile(Path(logDir, jobID, os))
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

func removeFile(path string) error { return os.Remove(path) }
