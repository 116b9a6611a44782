// Package devperm gives a job's user read-write access to its OS instance's
// device node (/dev/mcosN) and takes it back. mcexec opens /dev/mcosN
// O_RDWR, so the job's user needs rw on it; nobody else may have any access,
// because the device's whitelisted ioctls include IHK_OS_READ_KADDR, which
// reads arbitrary kernel memory (IHK linux/core/host_driver.c).
//
// The device stays owned by root with mode 0600 and the user gets an entry in
// its POSIX access ACL (the system.posix_acl_access extended attribute;
// devtmpfs supports it where the kernel has CONFIG_TMPFS_POSIX_ACL, as
// Debian's and RHEL's do). Making the user the owner instead would let them
// chmod the device open to everyone; an ACL only the owner can change.
package devperm

import (
	"encoding/binary"
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

// aclXattr is the extended attribute that holds a file's access ACL.
const aclXattr = "system.posix_acl_access"

// POSIX ACL xattr encoding (include/uapi/linux/posix_acl_xattr.h): a
// little-endian u32 version 2, then entries of u16 tag, u16 perm, u32 id,
// sorted by tag and id.
const (
	aclVersion    = 2
	aclUserObj    = 0x01
	aclUser       = 0x02
	aclGroupObj   = 0x04
	aclMask       = 0x10
	aclOther      = 0x20
	aclUndefined  = 0xffffffff
	aclPermRW     = 0x06
	aclEntryBytes = 8
)

// Current returns path's ownership without following symlinks.
func Current(path string) (Owner, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return Owner{}, fmt.Errorf("stat device %s: %w", path, err)
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid), Mode: fs.FileMode(st.Mode & 0o7777)}, nil
}

// Grant leaves path owned by root with mode 0600 and gives uid read-write
// access through an ACL entry. It refuses symlinks and anything that is not a
// character device or (for the simulated backend's stand-ins) a regular file.
func Grant(path string, uid int) error {
	if err := check(path); err != nil {
		return err
	}
	if uid < 0 || uid >= aclUndefined {
		return fmt.Errorf("device %s: bad uid %d", path, uid)
	}
	// Ownership and mode first: between the calls nobody gains access.
	if err := unix.Fchmodat(unix.AT_FDCWD, path, 0o600, 0); err != nil {
		return fmt.Errorf("chmod device %s: %w", path, err)
	}
	if err := unix.Lchown(path, 0, 0); err != nil {
		return fmt.Errorf("chown device %s to root: %w", path, err)
	}
	if err := unix.Lsetxattr(path, aclXattr, encodeACL(uid), 0); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("grant uid %d access to device %s: the filesystem has no POSIX ACLs: %w", uid, path, err)
		}
		return fmt.Errorf("grant uid %d access to device %s: %w", uid, path, err)
	}
	return nil
}

// Granted returns the users the device's ACL gives access to.
func Granted(path string) ([]int, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, aclXattr, buf)
	if errors.Is(err, unix.ENODATA) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read acl of %s: %w", path, err)
	}
	buf = buf[:n]
	if len(buf) < 4 || binary.LittleEndian.Uint32(buf) != aclVersion || (len(buf)-4)%aclEntryBytes != 0 {
		return nil, fmt.Errorf("read acl of %s: malformed (%d bytes)", path, len(buf))
	}
	var uids []int
	for off := 4; off < len(buf); off += aclEntryBytes {
		if binary.LittleEndian.Uint16(buf[off:]) == aclUser {
			uids = append(uids, int(binary.LittleEndian.Uint32(buf[off+4:])))
		}
	}
	return uids, nil
}

// Restore removes the ACL and sets path back to o. A missing path is
// success: the device node goes away with its OS instance.
func Restore(path string, o Owner) error {
	if err := check(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	// Take the user's access away before anything else.
	if err := unix.Lremovexattr(path, aclXattr); err != nil &&
		!errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove acl of device %s: %w", path, err)
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

// encodeACL is owner rw, uid rw, group none, mask rw, others none.
func encodeACL(uid int) []byte {
	entries := []struct {
		tag, perm uint16
		id        uint32
	}{
		{aclUserObj, aclPermRW, aclUndefined},
		{aclUser, aclPermRW, uint32(uid)},
		{aclGroupObj, 0, aclUndefined},
		{aclMask, aclPermRW, aclUndefined},
		{aclOther, 0, aclUndefined},
	}
	b := make([]byte, 4, 4+len(entries)*aclEntryBytes)
	binary.LittleEndian.PutUint32(b, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
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
