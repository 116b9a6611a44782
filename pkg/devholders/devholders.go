package devholders

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Target is the identity of the file whose holders are wanted, taken from
// stat(2) of its path once, before the scan. Paths are never compared: the
// kernel shows an fd's path as seen from the holder's mount namespace, so a
// device bind-mounted elsewhere (/mnt/x in a user's private namespace) or a
// second node with the same numbers (mknod in a container's /dev) reads as
// another file.
type Target struct {
	// Path is what the caller named, for messages only.
	Path string
	// Dev and Ino identify the node's inode (st_dev, st_ino). A bind mount
	// shows the same pair.
	Dev, Ino uint64
	// Rdev is the device number (st_rdev) when the target is a character or
	// block device. Every node with that number and type reaches the same
	// driver object, so any of them counts.
	Rdev uint64
	// Mode is the file type bits (S_IFMT) of the target.
	Mode uint32
}

// TargetOf stats path (following symlinks, as open(2) would) and returns its
// identity. path must be absolute.
func TargetOf(path string) (Target, error) {
	if !filepath.IsAbs(path) {
		return Target{}, fmt.Errorf("find holders of %q: path is not absolute", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Target{}, fmt.Errorf("find holders of %s: stat: %w", path, err)
	}
	t := Target{Path: path, Dev: st.Dev, Ino: st.Ino, Mode: st.Mode & unix.S_IFMT}
	if t.isDevice() {
		t.Rdev = st.Rdev
	}
	return t, nil
}

func (t Target) isDevice() bool { return t.Mode == unix.S_IFCHR || t.Mode == unix.S_IFBLK }

// matches reports whether a statx result is the target: the same device
// number and type for a device node, the same inode otherwise.
func (t Target) matches(st *unix.Statx_t) bool {
	if t.isDevice() {
		return uint32(st.Mode)&unix.S_IFMT == t.Mode && unix.Mkdev(st.Rdev_major, st.Rdev_minor) == t.Rdev
	}
	return unix.Mkdev(st.Dev_major, st.Dev_minor) == t.Dev && st.Ino == t.Ino
}

// statLink stats what a /proc magic link (fd/N, map_files/RANGE) refers to.
// AT_STATX_DONT_SYNC makes FUSE and network filesystems answer from their
// cache: a holder's open file on a user's FUSE mount must not be able to
// stall the epilog's scan in a getattr its daemon never answers.
func statLink(path string, st *unix.Statx_t) error {
	return unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE|unix.STATX_INO, st)
}

// sameInode reports whether a maps line's "major:minor inode" pair is the
// target's own inode.
func (t Target) sameInode(major, minor uint32, ino uint64) bool {
	return unix.Major(t.Dev) == major && unix.Minor(t.Dev) == minor && t.Ino == ino
}

// Holder is one process (thread group) that holds the target.
type Holder struct {
	// PID is the thread-group ID, the number kill(2) and pidfd_open(2) take.
	PID int
	// TIDs are the tasks whose file table has the target open, ascending.
	// A thread that called unshare(CLONE_FILES) has its own table, visible
	// only under /proc/PID/task/TID/fd; threads sharing a table all appear.
	TIDs []int
	// Mapped is set when the target is mapped (/proc/PID/map_files, or the
	// inode in /proc/PID/maps): a mapping keeps the device busy after its
	// descriptor is closed.
	Mapped bool
}

// Find returns the PIDs, ascending, of the processes under procRoot
// (normally "/proc") that hold devicePath: have it open in any task's file
// table, or mapped. See Scan.
func Find(procRoot, devicePath string) ([]int, error) {
	hs, err := Scan(procRoot, devicePath)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, h := range hs {
		pids = append(pids, h.PID)
	}
	return pids, nil
}

// Scan returns the holders of devicePath, by ascending PID. devicePath must
// be absolute and exist. Processes that exit during the scan or whose
// directories are not readable are skipped (per-process errors are expected
// while reading a live /proc).
func Scan(procRoot, devicePath string) ([]Holder, error) {
	t, err := TargetOf(devicePath)
	if err != nil {
		return nil, err
	}
	return ScanTarget(procRoot, t)
}

// ScanTarget is Scan for an identity taken earlier (the node may be gone by
// now, removed by DESTROY_OS, while descriptors on it live on).
func ScanTarget(procRoot string, t Target) ([]Holder, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("find holders of %s: %w", t.Path, err)
	}
	s := scanner{t: t, seen: map[mapKey]bool{}, live: isProcfs(procRoot)}
	var out []Holder
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if h, ok := s.process(filepath.Join(procRoot, e.Name()), pid); ok {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b Holder) int { return a.PID - b.PID })
	return out, nil
}

// Holds reports whether process pid still holds the target: the re-check
// made after pinning a process with a pidfd, so that a PID reused since the
// scan is never signalled.
func Holds(procRoot string, t Target, pid int) bool {
	s := scanner{t: t, seen: map[mapKey]bool{}, live: isProcfs(procRoot)}
	_, ok := s.process(filepath.Join(procRoot, strconv.Itoa(pid)), pid)
	return ok
}

// mapKey is a mapped file's identity as /proc/PID/maps shows it.
type mapKey struct {
	major, minor uint32
	ino          uint64
}

// scanner carries what one scan learned about mapped files: most processes
// map the same libraries, so each distinct inode is checked once.
type scanner struct {
	t    Target
	seen map[mapKey]bool // inode → is the target
	// live is set when the root is the kernel's procfs, whose task IDs
	// kcmp(2) can compare (never for a fixture tree).
	live bool
}

// kcmpFiles is KCMP_FILES (linux/kcmp.h): do two tasks share a file table?
const kcmpFiles = 2

// isProcfs reports whether root is a mounted procfs.
func isProcfs(root string) bool {
	var st unix.Statfs_t
	return unix.Statfs(root, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// sameFiles reports whether tasks a and b share one file table (threads
// normally do; one that called unshare(CLONE_FILES) does not). Any error
// (no kcmp in the kernel, a task gone) answers "no", so the table is read.
func sameFiles(a, b int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpFiles, 0, 0, 0)
	return errno == 0 && r == 0
}

func (s *scanner) process(dir string, pid int) (Holder, bool) {
	h := Holder{PID: pid}
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return h, false // gone, or not a process directory
	}
	// Threads that share a file table are read once: a process with
	// hundreds of threads costs one table, not hundreds.
	var tables []int  // a task of each distinct table read so far
	var holding []int // which of those tables holds the target (1) or not (0)
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		known := -1
		if s.live {
			for i, other := range tables {
				if sameFiles(other, tid) {
					known = i
					break
				}
			}
		}
		if known < 0 {
			held := 0
			if s.holdsFD(filepath.Join(dir, "task", task.Name(), "fd")) {
				held = 1
			}
			tables = append(tables, tid)
			holding = append(holding, held)
			known = len(tables) - 1
		}
		if holding[known] == 1 {
			h.TIDs = append(h.TIDs, tid)
		}
	}
	slices.Sort(h.TIDs)
	// Threads of one group share their memory map (CLONE_THREAD requires
	// CLONE_VM), so one task's maps cover the group. The group leader's
	// maps are empty once it has exited while other threads run on, so read
	// the first task whose maps are readable and not empty.
	for _, task := range tasks {
		if mapped, ok := s.maps(filepath.Join(dir, "task", task.Name())); ok {
			h.Mapped = mapped
			break
		}
	}
	return h, len(h.TIDs) > 0 || h.Mapped
}

// holdsFD reports whether any descriptor in fdDir refers to the target.
// stat(2) of /proc/.../fd/N follows the kernel's link to the open file
// itself, whatever mount namespace it was opened in.
func (s *scanner) holdsFD(fdDir string) bool {
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	var st unix.Statx_t
	for _, fd := range fds {
		if err := statLink(filepath.Join(fdDir, fd.Name()), &st); err != nil {
			continue // closed since ReadDir, or a dangling fixture link
		}
		if s.t.matches(&st) {
			return true
		}
	}
	return false
}

// maps reports whether the process maps the target. A mapping of the
// target's own inode (through any bind mount) shows its "major:minor inode"
// in /proc/PID/maps; another node with the same device number has another
// inode and is recognised by stat(2) of /proc/PID/map_files/<range>, which
// needs CAP_SYS_ADMIN (CAP_CHECKPOINT_RESTORE since Linux 5.9): without it
// such a mapping is missed.
//
// ok is false when the task's maps cannot be read or are empty (an exited
// thread, a kernel thread).
func (s *scanner) maps(dir string) (mapped, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "maps"))
	if err != nil || len(b) == 0 {
		return false, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		// address perms offset dev inode [pathname]
		f := strings.Fields(line)
		if len(f) < 5 || f[4] == "0" {
			continue
		}
		key, ok := parseMapKey(f[3], f[4])
		if !ok {
			continue
		}
		if s.t.sameInode(key.major, key.minor, key.ino) {
			return true, true
		}
		if !s.t.isDevice() {
			continue
		}
		is, known := s.seen[key]
		if !known {
			var st unix.Statx_t
			err := statLink(filepath.Join(dir, "map_files", f[0]), &st)
			switch {
			case err == nil:
				is = s.t.matches(&st)
				s.seen[key] = is
			case errors.Is(err, fs.ErrPermission):
				// Not privileged enough: remember as "not the target"
				// rather than retry on every line.
				s.seen[key] = false
			}
		}
		if is {
			return true, true
		}
	}
	return false, true
}

// parseMapKey parses the "major:minor" (hex) and inode (decimal) fields of a
// maps line.
func parseMapKey(dev, ino string) (mapKey, bool) {
	maj, min, ok := strings.Cut(dev, ":")
	if !ok {
		return mapKey{}, false
	}
	ma, err1 := strconv.ParseUint(maj, 16, 32)
	mi, err2 := strconv.ParseUint(min, 16, 32)
	in, err3 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return mapKey{}, false
	}
	return mapKey{major: uint32(ma), minor: uint32(mi), ino: in}, true
}
