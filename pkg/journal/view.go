package journal

import (
	"errors"
	"io/fs"
	"os"
)

// View reads the journals in Dir and never writes: it creates no directory
// and removes nothing. Read-only commands (lwkctl status) use it; writers
// use Store.
type View struct {
	Dir string
}

// OpenView returns a read-only view of the journals in dir. A missing dir is
// an empty view (no job has run yet); an existing one must pass the checks
// Open makes (absolute, a directory, not writable by group or others, owned
// by the effective user), so that nobody else's files are shown as journals.
func OpenView(dir string) (*View, error) {
	if err := checkDirPath(dir); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return &View{Dir: dir}, nil
	}
	if err := checkDirSafe(dir); err != nil {
		return nil, err
	}
	return &View{Dir: dir}, nil
}

// Read returns the journal of job jobID, with Store.Read's errors.
func (v *View) Read(jobID uint32) (*Record, error) { return readJournal(v.Dir, jobID) }

// List returns the job IDs that have a journal, ascending; none when Dir
// does not exist.
func (v *View) List() ([]uint32, error) {
	if _, err := os.Lstat(v.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return listJournals(v.Dir)
}
