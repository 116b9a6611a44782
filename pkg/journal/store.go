package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/atomicfile"
)

const (
	filePrefix = "job-"
	fileSuffix = ".journal"
	// tempPrefix starts the names of files being written; List ignores them.
	tempPrefix = ".tmp-"
)

// Store reads and writes the journals in Dir. Writers (lwk-prolog,
// lwk-epilog, lwkctl cleanup) must serialise writes to one job's journal
// themselves (they hold the node lock); reads need no lock.
type Store struct {
	// Dir is the journal directory, absolute, root-only.
	Dir string
}

// Open returns the store in dir, creating dir with mode 0700 if it is
// missing (missing parents are created 0755, as any system directory). It
// refuses a dir that is not absolute, not a directory, writable by group or
// others, or not owned by the effective user.
func Open(dir string) (*Store, error) {
	if err := checkDirPath(dir); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("create parent of journal dir %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create journal dir %s: %w", dir, err)
		}
		// Mkdir is subject to the umask; 0700 only ever loses bits, but say
		// it explicitly.
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("chmod journal dir %s: %w", dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("stat journal dir %s: %w", dir, err)
	}
	if err := checkDirSafe(dir); err != nil {
		return nil, err
	}
	return &Store{Dir: dir}, nil
}

func checkDirPath(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("journal dir %q: must be a clean absolute path", dir)
	}
	return nil
}

// checkDirSafe refuses a journal directory someone other than us could plant
// or swap files in.
func checkDirSafe(dir string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return fmt.Errorf("stat journal dir %s: %w", dir, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("journal dir %s: not a directory (symbolic links are refused)", dir)
	}
	if euid := uint32(os.Geteuid()); st.Uid != euid {
		return fmt.Errorf("journal dir %s: owned by uid %d, not by uid %d running slurm-lwk", dir, st.Uid, euid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("journal dir %s: mode %04o is writable by group or others; want 0700", dir, st.Mode&0o7777)
	}
	return nil
}

// Path returns the journal file of job jobID.
func (s *Store) Path(jobID uint32) string { return journalPath(s.Dir, jobID) }

func journalPath(dir string, jobID uint32) string {
	return filepath.Join(dir, filePrefix+strconv.FormatUint(uint64(jobID), 10)+fileSuffix)
}

// Write replaces the journal of rec.JobID with rec, atomically and durably:
// temp file (O_EXCL, 0600) in Dir, write, fsync, rename over the journal,
// fsync Dir. On any error the old journal is left as it was (or, if the
// directory fsync failed, possibly already replaced) and the error is
// returned; the temp file is removed.
func (s *Store) Write(rec *Record) error {
	if rec == nil {
		return errors.New("write journal: nil record")
	}
	data, err := Encode(rec)
	if err != nil {
		return err
	}
	rec.Version = Version
	final := s.Path(rec.JobID)
	prefix := tempPrefix + filePrefix + strconv.FormatUint(uint64(rec.JobID), 10) + "-"
	err = atomicfile.Write(s.Dir, filepath.Base(final), data, atomicfile.Options{Perm: 0o600, TempPrefix: prefix, Durable: true})
	if err != nil {
		return fmt.Errorf("write journal %s: %w", final, err)
	}
	return nil
}

// Read returns the journal of job jobID. It takes no lock. Errors:
// *NotFoundError, *CorruptError, *VersionError, or a wrapped I/O error.
func (s *Store) Read(jobID uint32) (*Record, error) { return readJournal(s.Dir, jobID) }

// List returns the job IDs that have a journal in Dir, ascending.
func (s *Store) List() ([]uint32, error) { return listJournals(s.Dir) }

// Remove deletes the journal of job jobID and fsyncs Dir. A missing journal
// is success.
func (s *Store) Remove(jobID uint32) error {
	p := s.Path(jobID)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove journal %s: %w", p, err)
	}
	if err := atomicfile.SyncDir(s.Dir); err != nil {
		return fmt.Errorf("remove journal %s: %w", p, err)
	}
	return nil
}

// RemoveStaleTemps removes temp files left in Dir by writers that were killed
// between creating and renaming them, if they are older than minAge (pass a
// generous age, e.g. a minute, so a concurrent writer's file is never taken).
// It returns how many it removed.
func (s *Store) RemoveStaleTemps(minAge time.Duration) (int, error) {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return 0, fmt.Errorf("list journal dir %s: %w", s.Dir, err)
	}
	var errs []error
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if time.Since(info.ModTime()) < minAge {
			continue
		}
		p := filepath.Join(s.Dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale temp %s: %w", p, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Reader is the read-only view of a journal directory, for lwk-monitor and
// lwkctl status. It never creates, changes or locks anything.
type Reader struct {
	// Dir is the journal directory.
	Dir string
}

// OpenReader returns a read-only view of dir. A missing dir is not an error
// (a node that never ran an LWK job has none): List then returns no jobs and
// Read returns *NotFoundError. An existing dir must pass the same checks as
// in Open, so a reader never trusts files others could have planted.
func OpenReader(dir string) (*Reader, error) {
	if err := checkDirPath(dir); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &Reader{Dir: dir}, nil
		}
		return nil, fmt.Errorf("stat journal dir %s: %w", dir, err)
	}
	if err := checkDirSafe(dir); err != nil {
		return nil, err
	}
	return &Reader{Dir: dir}, nil
}

// Read returns the journal of job jobID; see Store.Read.
func (r *Reader) Read(jobID uint32) (*Record, error) { return readJournal(r.Dir, jobID) }

// List returns the job IDs that have a journal, ascending; none if the
// directory does not exist.
func (r *Reader) List() ([]uint32, error) {
	ids, err := listJournals(r.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return ids, err
}

// Reader returns the read-only view of the store's directory.
func (s *Store) Reader() *Reader { return &Reader{Dir: s.Dir} }

func readJournal(dir string, jobID uint32) (*Record, error) {
	p := journalPath(dir, jobID)
	if jobID == 0 {
		return nil, fmt.Errorf("read journal %s: job ID 0", p)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &NotFoundError{Path: p, JobID: jobID}
		}
		if errors.Is(err, syscall.ELOOP) {
			return nil, &CorruptError{Path: p, JobID: jobID, Reason: "is a symbolic link"}
		}
		return nil, fmt.Errorf("read journal %s: %w", p, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", p, err)
	}
	if !info.Mode().IsRegular() {
		return nil, &CorruptError{Path: p, JobID: jobID, Reason: "not a regular file"}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxHeaderBytes+MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", p, err)
	}
	if len(data) > maxHeaderBytes+MaxBodyBytes {
		return nil, &CorruptError{Path: p, JobID: jobID, Reason: fmt.Sprintf("larger than %d bytes", maxHeaderBytes+MaxBodyBytes)}
	}
	return Decode(p, jobID, data)
}

func listJournals(dir string) ([]uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list journal dir %s: %w", dir, err)
	}
	var ids []uint32
	for _, e := range entries {
		if id, ok := parseFileName(e.Name()); ok && !e.IsDir() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// parseFileName accepts exactly "job-<id>.journal" with id a canonical
// decimal job ID (no sign, no leading zero, 1..2^32-1).
func parseFileName(name string) (uint32, bool) {
	num, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	num, ok = strings.CutSuffix(num, fileSuffix)
	if !ok || num == "" || num[0] == '0' {
		return 0, false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(id), true
}
