// Package devperm gives a job's user read-write access to its OS instance's
// device node (/dev/mcosN) and takes it back. mcexec opens /dev/mcosN
// O_RDWR, so the job's user needs rw on it; nobody else may have any access,
// because the device's whitelisted ioctls include IHK_OS_READ_KADDR, which
// reads arbitrary kernel memory (see the IHK ABI notes).
package devperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Owner is a file's ownership and permission bits.
type Owner struct {
	UID  int
	GID  int
	Mode fs.FileMode
}

// Current returns path's ownership without following symlinks.
func Current(path string) (Owner, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return Owner{}, fmt.Errorf("stat device %s: %w", path, err)
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid), Mode: fs.FileMode(st.Mode & 0o7777)}, nil
}

// Grant makes path owned by uid:gid with mode 0600. It refuses symlinks and
// anything that is not a character device or (for the simulated backend's
// stand-ins) a regular file.
func Grant(path string, uid, gid int) error {
	if err := check(path); err != nil {
		return err
	}
	// Mode first: between the two calls nobody gains access.
	if err := unix.Fchmodat(unix.AT_FDCWD, path, 0o600, 0); err != nil {
		return fmt.Errorf("chmod device %s: %w", path, err)
	}
	if err := unix.Lchown(path, uid, gid); err != nil {
		return fmt.Errorf("chown device %s to %d:%d: %w", path, uid, gid, err)
	}
	return nil
}

// Restore sets path back to o. A missing path is success: the device node
// goes away with its OS instance.
func Restore(path string, o Owner) error {
	if err := check(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := unix.Lchown(path, o.UID, o.GID); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return fmt.Errorf("chown device %s to %d:%d: %w", path, o.UID, o.GID, err)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, uint32(o.Mode.Perm()), 0); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("chmod device %s: %w", path, err)
	}
	return nil
}

func check(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("device %s: %w", path, err)
	}
	if m := fi.Mode(); m&fs.ModeCharDevice == 0 && !m.IsRegular() {
		return fmt.Errorf("device %s: not a character device (mode %s)", path, m)
	}
	return nil
}
