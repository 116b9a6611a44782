package nodeprep

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RecordName is the record's file name in the state directory.
const RecordName = "nodeprep.json"

// recordVersion is the record format version.
const recordVersion = 1

// Change kinds.
const (
	KindBlockZone   = "block-zone"
	KindIRQ         = "irq-affinity"
	KindDropIn      = "systemd-drop-in"
	KindCgroup      = "cpuset-cgroup"
	KindCgroupCtl   = "cpuset-controller"
	StatusIntent    = "intent"
	StatusDone      = "done"
	recordFileMode  = 0o600
	recordDirectory = 0o700
)

// Change is one recorded change.
type Change struct {
	// Kind is one of the Kind* constants; Object what was changed (memory
	// block index, IRQ number, unit name, cgroup directory).
	Kind   string `json:"kind"`
	Object string `json:"object"`
	// Before and After are the values before and after (zone, CPU list,
	// drop-in content); Existed says whether a drop-in existed before.
	Before  string `json:"before"`
	After   string `json:"after"`
	Existed bool   `json:"existed,omitempty"`
	// Status is "intent" until the change is known to be made.
	Status string `json:"status"`
}

// CorruptRecordError reports a record that does not verify.
type CorruptRecordError struct {
	Path string
	Err  error
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("node preparation record %s is corrupt (%v): check the node by hand (lwkctl node report), then remove the file", e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *CorruptRecordError) Unwrap() error { return e.Err }

type recordFile struct {
	Version int             `json:"version"`
	SHA256  string          `json:"sha256"`
	Changes json.RawMessage `json:"changes"`
}

// store keeps the record in one directory.
type store struct {
	path string
}

func newStore(stateDir string) (store, error) {
	if stateDir == "" || !filepath.IsAbs(stateDir) {
		return store{}, fmt.Errorf("node preparation state directory %q: not an absolute path", stateDir)
	}
	return store{path: filepath.Join(stateDir, RecordName)}, nil
}

// load returns the recorded changes (none when there is no record).
func (s store) load() ([]Change, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f recordFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, &CorruptRecordError{Path: s.path, Err: err}
	}
	if f.Version != recordVersion {
		return nil, &CorruptRecordError{Path: s.path, Err: fmt.Errorf("version %d, want %d", f.Version, recordVersion)}
	}
	// MarshalIndent re-indented the changes: the checksum is over their
	// compact form, as save computed it.
	var compact bytes.Buffer
	if err := json.Compact(&compact, f.Changes); err != nil {
		return nil, &CorruptRecordError{Path: s.path, Err: err}
	}
	sum := sha256.Sum256(compact.Bytes())
	if hex.EncodeToString(sum[:]) != f.SHA256 {
		return nil, &CorruptRecordError{Path: s.path, Err: errors.New("checksum mismatch")}
	}
	var cs []Change
	if err := json.Unmarshal(f.Changes, &cs); err != nil {
		return nil, &CorruptRecordError{Path: s.path, Err: err}
	}
	return cs, nil
}

// save writes the changes atomically (temp file, fsync, rename, fsync of
// the directory); no changes removes the record.
func (s store) save(cs []Change) error {
	dir := filepath.Dir(s.path)
	if len(cs) == 0 {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", s.path, err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, recordDirectory); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	body, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	out, err := json.MarshalIndent(recordFile{Version: recordVersion, SHA256: hex.EncodeToString(sum[:]), Changes: body}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, RecordName+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(recordFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
