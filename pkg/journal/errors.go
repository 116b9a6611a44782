package journal

import (
	"errors"
	"fmt"
	"io/fs"
)

// Sentinels matched by the typed errors below, for callers that only branch
// (teardown falls back to live-state recovery on any of them).
var (
	// ErrNotFound: the job has no journal on this node.
	ErrNotFound = errors.New("journal not found")
	// ErrCorrupt: the journal exists but cannot be trusted.
	ErrCorrupt = errors.New("journal corrupt")
	// ErrVersion: the journal was written in another format version.
	ErrVersion = errors.New("journal version mismatch")
)

// NotFoundError reports that a job has no journal file. It matches
// ErrNotFound and fs.ErrNotExist.
type NotFoundError struct {
	// Path is the journal file that does not exist.
	Path string
	// JobID is the job whose journal was asked for.
	JobID uint32
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("journal %s not found", e.Path)
}

// Is matches ErrNotFound and fs.ErrNotExist.
func (e *NotFoundError) Is(target error) bool {
	return target == ErrNotFound || target == fs.ErrNotExist
}

// CorruptError reports a journal file that exists but cannot be trusted:
// truncated, checksum mismatch, bad header, bad JSON, or a record for another
// job. It matches ErrCorrupt.
type CorruptError struct {
	// Path is the journal file.
	Path string
	// JobID is the job the file name says it belongs to.
	JobID uint32
	// Reason says what is wrong, e.g. "checksum mismatch".
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal %s is corrupt (%s): run `lwkctl cleanup --job %d` to recover from live state, then remove the file",
		e.Path, e.Reason, e.JobID)
}

// Is matches ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// VersionError reports a journal written in a format version this build does
// not read. It matches ErrVersion.
type VersionError struct {
	// Path is the journal file.
	Path string
	// JobID is the job the file name says it belongs to.
	JobID uint32
	// Got is the version found in the file; Want is Version.
	Got, Want int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("journal %s has format version %d but this slurm-lwk reads version %d: finish the job with the slurm-lwk that wrote it, or run `lwkctl cleanup --job %d` to recover from live state, then remove the file",
		e.Path, e.Got, e.Want, e.JobID)
}

// Is matches ErrVersion.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }
