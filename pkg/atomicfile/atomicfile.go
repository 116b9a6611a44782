package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Options says how Write creates the file.
type Options struct {
	// Perm is the file's mode, set explicitly after creation. 0 means 0600.
	Perm os.FileMode
	// TempPrefix starts the temp file's name (a random suffix follows). It
	// must not be empty or contain a path separator; choose one the
	// directory's readers ignore, such as ".tmp-".
	TempPrefix string
	// Durable fsyncs the file before the rename and the directory after it.
	// Without it the replacement is atomic against a killed process but not
	// against a power loss.
	Durable bool
}

// ErrDirSync is wrapped by the error Write returns when only the directory
// fsync failed: the rename has happened, so the new content is in place but
// may not survive a power loss.
var ErrDirSync = errors.New("fsync directory after rename")

// Write replaces dir/name with data. On any error before the rename the old
// file is left as it was; in every case the temp file is gone when Write
// returns. Errors name the temp or directory path; callers add the target.
func Write(dir, name string, data []byte, opt Options) error {
	if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return fmt.Errorf("atomic write in %s: bad file name %q", dir, name)
	}
	if opt.TempPrefix == "" || strings.ContainsRune(opt.TempPrefix, '/') {
		return fmt.Errorf("atomic write of %s: bad temp prefix %q", filepath.Join(dir, name), opt.TempPrefix)
	}
	perm := opt.Perm
	if perm == 0 {
		perm = 0o600
	}
	tmp, err := writeTemp(dir, opt.TempPrefix, data, perm, opt.Durable)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if opt.Durable {
		if err := SyncDir(dir); err != nil {
			return fmt.Errorf("%w: %w", ErrDirSync, err)
		}
	}
	return nil
}

// writeTemp creates a fresh temp file in dir holding data, closed (and
// fsynced if durable), and returns its path. On error nothing is left.
func writeTemp(dir, prefix string, data []byte, perm os.FileMode, durable bool) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("temp name in %s: %w", dir, err)
	}
	path := filepath.Join(dir, prefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return "", err
	}
	// The umask can only remove bits from the creation mode; set it
	// explicitly so the file has exactly perm.
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return path, nil
}

// SyncDir fsyncs a directory so that a rename or unlink in it is durable.
func SyncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("close dir %s: %w", dir, err)
	}
	return nil
}
