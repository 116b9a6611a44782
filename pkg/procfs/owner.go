package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UIDs reads a process's real and effective UID from /proc/<pid>/status.
func (fs FS) UIDs(pid int) (real, effective int, err error) {
	path := fs.Path(strconv.Itoa(pid), "status")
	data, err := readSmall(path)
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		r, err1 := strconv.Atoi(f[0])
		e, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("parse %s: uids %q", path, rest)
		}
		return r, e, nil
	}
	return 0, 0, fmt.Errorf("parse %s: no Uid: line", path)
}

// Comm reads a process's command name (/proc/<pid>/comm).
func (fs FS) Comm(pid int) (string, error) {
	data, err := readSmall(fs.Path(strconv.Itoa(pid), "comm"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// Cgroups reads a process's cgroup paths, one per hierarchy, from
// /proc/<pid>/cgroup.
func (fs FS) Cgroups(pid int) ([]string, error) {
	lines, err := fs.CgroupLines(pid)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Path
	}
	return out, nil
}

// CgroupLine is one line of /proc/<pid>/cgroup,
// "hierarchy-ID:controllers:path". cgroup v2 has one line "0::path".
type CgroupLine struct {
	Hierarchy string
	// Controllers are the v1 hierarchy's controllers (and "name=..."
	// entries); none for cgroup v2.
	Controllers []string
	// Path is the cgroup, relative to the hierarchy's root.
	Path string
}

// V2 reports whether the line is the cgroup2 hierarchy's.
func (l CgroupLine) V2() bool { return l.Hierarchy == "0" && len(l.Controllers) == 0 }

// CgroupLines reads /proc/<pid>/cgroup, one entry per hierarchy.
func (fs FS) CgroupLines(pid int) ([]CgroupLine, error) {
	path := fs.Path(strconv.Itoa(pid), "cgroup")
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	var out []CgroupLine
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("parse %s: line %q", path, line)
		}
		l := CgroupLine{Hierarchy: parts[0], Path: parts[2]}
		if parts[1] != "" {
			l.Controllers = strings.Split(parts[1], ",")
		}
		out = append(out, l)
	}
	return out, nil
}

// Lock is one line of /proc/locks.
type Lock struct {
	// Class is FLOCK, POSIX, OFDLCK, DELEG or LEASE.
	Class string
	// PID is the process that took the lock (-1 for OFD locks).
	PID int
	// Major and Minor are the locked file's device (its st_dev); Inode its
	// inode number.
	Major, Minor uint32
	Inode        uint64
}

// Locks reads the file locks the kernel holds (/proc/locks): one read,
// where finding who has a file open would scan every process.
func (fs FS) Locks() ([]Lock, error) {
	path := fs.Path("locks")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Lock
	for line := range strings.SplitSeq(string(data), "\n") {
		// "1: FLOCK  ADVISORY  READ  1234 fe:00:5615264 0 EOF"; blocked
		// waiters have " ->" after the number.
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "->" {
			f = append(f[:1], f[2:]...)
		}
		if len(f) < 6 {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		id := strings.Split(f[5], ":")
		if len(id) != 3 {
			continue
		}
		ma, err1 := strconv.ParseUint(id[0], 16, 32)
		mi, err2 := strconv.ParseUint(id[1], 16, 32)
		ino, err3 := strconv.ParseUint(id[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, Lock{Class: f[1], PID: pid, Major: uint32(ma), Minor: uint32(mi), Inode: ino})
	}
	return out, nil
}
