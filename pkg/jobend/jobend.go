package jobend

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Key is one attempt of one job.
type Key struct {
	// JobID is the Slurm job ID.
	JobID uint32
	// Attempt is the job's restart count, 0 for its first run.
	Attempt uint32
}

func (k Key) name() string { return fmt.Sprintf("job-%d.%d", k.JobID, k.Attempt) }

// parseName is the inverse of name.
func parseName(s string) (Key, bool) {
	rest, ok := strings.CutPrefix(s, "job-")
	if !ok {
		return Key{}, false
	}
	id, att, ok := strings.Cut(rest, ".")
	if !ok {
		return Key{}, false
	}
	j, err1 := strconv.ParseUint(id, 10, 32)
	a, err2 := strconv.ParseUint(att, 10, 32)
	if err1 != nil || err2 != nil || j == 0 {
		return Key{}, false
	}
	return Key{JobID: uint32(j), Attempt: uint32(a)}, true
}

// Store is the directory of records.
type Store struct {
	dir string
}

// Dir returns the record directory under stateDir.
func Dir(stateDir string) string { return filepath.Join(stateDir, "ended") }

// Open returns the store in dir; the directory is created (0700) by the
// first Record.
func Open(dir string) *Store { return &Store{dir: dir} }

// Record notes that the epilog of k has run. Recording twice is harmless.
func (s *Store) Record(k Key) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("record end of job %d: %w", k.JobID, err)
	}
	path := filepath.Join(s.dir, k.name())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("record end of job %d: %w", k.JobID, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record end of job %d: %w", k.JobID, err)
	}
	// A record written again (a second epilog) restarts its age.
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		return fmt.Errorf("record end of job %d: %w", k.JobID, err)
	}
	return nil
}

// Ended reports whether the epilog of k has run. An unreadable directory
// is an error: the caller must not guess.
func (s *Store) Ended(k Key) (bool, error) {
	_, err := os.Lstat(filepath.Join(s.dir, k.name()))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("check end of job %d: %w", k.JobID, err)
}

// Prune removes the records older than age and returns how many it
// removed. age must exceed the longest a prolog can wait between its start
// and the node lock (the Slurm calls before the lock plus LockTimeout).
func (s *Store) Prune(age time.Duration, now time.Time) (int, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune job end records in %s: %w", s.dir, err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if _, ok := parseName(e.Name()); !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < age {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
