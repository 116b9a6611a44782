package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Defaults.
const (
	DefaultMaxTotalBytes = 256 << 20
	DefaultMaxJobBytes   = 4 << 20
)

// ErrJobFull marks a sample not appended because the job's log is full.
var ErrJobFull = errors.New("job sample log full")

// Spool is an opened spool directory. It is safe for concurrent use.
type Spool struct {
	Dir           string
	MaxTotalBytes int64
	MaxJobBytes   int64

	mu    sync.Mutex
	total int64
	// live are jobs whose files must not be evicted.
	live map[uint32]bool
}

// Open creates dir (0700) if needed, checks that it is a directory owned by
// the caller and private, and sums the size of what it holds.
func Open(dir string, maxTotal, maxJob int64) (*Spool, error) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return nil, fmt.Errorf("spool %q: must be a clean absolute path", dir)
	}
	if maxTotal <= 0 || maxJob <= 0 || maxJob > maxTotal {
		return nil, fmt.Errorf("spool %s: bounds total %d, per job %d: want 0 < per job <= total", dir, maxTotal, maxJob)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("check spool %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("spool %s: not a directory owned by uid %d", dir, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("make spool %s private: %w", dir, err)
		}
	}
	s := &Spool{Dir: dir, MaxTotalBytes: maxTotal, MaxJobBytes: maxJob, live: map[uint32]bool{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool %s: %w", dir, err)
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			s.total += info.Size()
		}
	}
	return s, nil
}

// SetLive marks a job's files as not evictable (live true) or evictable.
func (s *Spool) SetLive(jobID uint32, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if live {
		s.live[jobID] = true
	} else {
		delete(s.live, jobID)
	}
}

// Total is the bytes the spool holds, as tracked.
func (s *Spool) Total() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// SamplesPath, RecordPath and KmsgPath name a job's files.
func (s *Spool) SamplesPath(jobID uint32) string {
	return filepath.Join(s.Dir, fmt.Sprintf("job-%d.samples", jobID))
}

// RecordPath is the job's final per-node record.
func (s *Spool) RecordPath(jobID uint32) string {
	return filepath.Join(s.Dir, fmt.Sprintf("job-%d.record", jobID))
}

// KmsgPath is a saved LWK kernel log; kind says why it was saved.
func (s *Spool) KmsgPath(jobID uint32, os int, kind string) string {
	return filepath.Join(s.Dir, fmt.Sprintf("job-%d.os%d.%s.kmsg", jobID, os, kind))
}

// AppendSample appends one line (a newline is added) to the job's sample
// log; ErrJobFull once the log would pass MaxJobBytes.
func (s *Spool) AppendSample(jobID uint32, line []byte) error {
	path := s.SamplesPath(jobID)
	n := int64(len(line) + 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	size := int64(0)
	if fi, err := os.Lstat(path); err == nil {
		size = fi.Size()
	}
	if size+n > s.MaxJobBytes {
		return fmt.Errorf("append to %s: %w (%d bytes)", path, ErrJobFull, s.MaxJobBytes)
	}
	if err := s.makeRoomLocked(n); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	s.total += n
	return nil
}

// WriteFile replaces path (inside the spool) with data, atomically; data
// larger than MaxJobBytes is cut to its last MaxJobBytes bytes (a kernel
// log's newest messages are the ones that matter).
func (s *Spool) WriteFile(path string, data []byte) error {
	if filepath.Dir(path) != s.Dir {
		return fmt.Errorf("spool write %s: outside %s", path, s.Dir)
	}
	if int64(len(data)) > s.MaxJobBytes {
		data = data[int64(len(data))-s.MaxJobBytes:]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := int64(0)
	if fi, err := os.Lstat(path); err == nil {
		old = fi.Size()
	}
	if err := s.makeRoomLocked(int64(len(data)) - old); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("spool write %s: %w", path, err)
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
		return fmt.Errorf("spool write %s: %w", path, err)
	}
	s.total += int64(len(data)) - old
	return nil
}

// ReadFile reads a spool file (at most MaxJobBytes).
func (s *Spool) ReadFile(path string) ([]byte, error) {
	if filepath.Dir(path) != s.Dir {
		return nil, fmt.Errorf("spool read %s: outside %s", path, s.Dir)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, s.MaxJobBytes+1)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("spool read %s: %w", path, err)
	}
	return buf[:n], nil
}

// makeRoomLocked removes the oldest files of jobs that are not live until
// n more bytes fit in MaxTotalBytes. It fails if they cannot.
func (s *Spool) makeRoomLocked(n int64) error {
	if s.total+n <= s.MaxTotalBytes {
		return nil
	}
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.Dir, err)
	}
	type file struct {
		path string
		size int64
		mod  int64
	}
	var files []file
	var total int64
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		total += info.Size()
		if id, ok := jobOf(e.Name()); ok && s.live[id] {
			continue
		}
		files = append(files, file{filepath.Join(s.Dir, e.Name()), info.Size(), info.ModTime().UnixNano()})
	}
	s.total = total
	sort.Slice(files, func(i, j int) bool { return files[i].mod < files[j].mod })
	for _, f := range files {
		if s.total+n <= s.MaxTotalBytes {
			break
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool evict %s: %w", f.path, err)
		}
		s.total -= f.size
	}
	if s.total+n > s.MaxTotalBytes {
		return fmt.Errorf("spool %s: %d bytes do not fit in %d (live jobs hold %d)", s.Dir, n, s.MaxTotalBytes, s.total)
	}
	return nil
}

// jobOf returns the job ID of a spool file name "job-<id>.*".
func jobOf(name string) (uint32, bool) {
	rest, ok := strings.CutPrefix(name, "job-")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ".")
	id, err := strconv.ParseUint(num, 10, 32)
	return uint32(id), err == nil
}
