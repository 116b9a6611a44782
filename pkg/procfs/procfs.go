package procfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultMountPoint is where the kernel's proc file system is mounted.
const DefaultMountPoint = "/proc"

// UserHZ is the unit of the CPU and start times in /proc/<pid>/stat
// (USER_HZ, 100 on every Linux architecture slurm-lwk supports).
const UserHZ = 100

// FS is a proc file system mounted at Root.
type FS struct {
	Root string
}

// NewFS returns the proc file system mounted at root, which must be an
// absolute, clean path.
func NewFS(root string) (FS, error) {
	if root == "" || !filepath.IsAbs(root) || filepath.Clean(root) != root {
		return FS{}, fmt.Errorf("proc root %q: must be an absolute, clean path", root)
	}
	return FS{Root: root}, nil
}

// Path joins elements below the root, e.g. Path("self", "fdinfo", "3").
func (fs FS) Path(elem ...string) string {
	return filepath.Join(append([]string{fs.Root}, elem...)...)
}

// PIDs lists the processes, in directory order.
func (fs FS) PIDs() ([]int, error) {
	entries, err := os.ReadDir(fs.Root)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", fs.Root, err)
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Stat is the part of /proc/<pid>/stat slurm-lwk uses.
type Stat struct {
	// Comm is the command name (field 2, without its parentheses).
	Comm string
	// State is the one-letter state (field 3: R, S, D, T, t, Z, X, ...).
	State byte
	PPID  int
	// Flags are the kernel's PF_* flags (field 9).
	Flags uint64
	// UserTicks and SystemTicks include waited-for children (utime+cutime,
	// stime+cstime). Units: 1/UserHZ s.
	UserTicks, SystemTicks uint64
	Threads                int32
	// StartTicks is the start time after boot. Units: 1/UserHZ s.
	StartTicks uint64
	// RSSPages is the resident set. Units: pages.
	RSSPages uint64
}

// Stat reads /proc/<pid>/stat.
func (fs FS) Stat(pid int) (Stat, error) {
	path := fs.Path(strconv.Itoa(pid), "stat")
	data, err := readSmall(path)
	if err != nil {
		return Stat{}, err
	}
	st, err := parseStat(string(data))
	if err != nil {
		return Stat{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return st, nil
}

// splitStat splits /proc/<pid>/stat into comm and the fields after it, of
// which it wants at least min. comm (field 2) may contain spaces and
// parentheses, so it ends at the last ')'; f[0] is field 3 (state), field k
// is f[k-3].
func splitStat(data string, min int) (comm string, f []string, err error) {
	open, end := strings.IndexByte(data, '('), strings.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return "", nil, errors.New("no (comm) field")
	}
	f = strings.Fields(data[end+1:])
	if len(f) < min {
		return "", nil, fmt.Errorf("%d fields after comm", len(f))
	}
	return data[open+1 : end], f, nil
}

// parseStat parses /proc/<pid>/stat.
func parseStat(data string) (Stat, error) {
	comm, f, err := splitStat(data, 22)
	if err != nil {
		return Stat{}, err
	}
	num := func(k int) uint64 {
		v, _ := strconv.ParseUint(f[k-3], 10, 64)
		return v
	}
	ppid, err := strconv.Atoi(f[4-3])
	if err != nil {
		return Stat{}, fmt.Errorf("ppid: %w", err)
	}
	flags, err := strconv.ParseUint(f[9-3], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("flags: %w", err)
	}
	return Stat{
		Comm:        comm,
		State:       f[0][0],
		Flags:       flags,
		PPID:        ppid,
		UserTicks:   num(14) + num(16),
		SystemTicks: num(15) + num(17),
		Threads:     int32(num(20)),
		StartTicks:  num(22),
		RSSPages:    num(24),
	}, nil
}

// RealUID reads a process's real UID from /proc/<pid>/status. The owner of
// /proc/<pid> is no substitute: the kernel shows root for any process that
// made itself non-dumpable (prctl PR_SET_DUMPABLE 0).
func (fs FS) RealUID(pid int) (int, error) {
	path := fs.Path(strconv.Itoa(pid), "status")
	data, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			uid, err := strconv.Atoi(f[0])
			if err != nil {
				return 0, fmt.Errorf("parse %s: uid %q: %w", path, f[0], err)
			}
			return uid, nil
		}
	}
	return 0, fmt.Errorf("parse %s: no Uid: line", path)
}

// readSmall reads at most 64 KiB: every file read here is far smaller.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// Default is the proc file system at DefaultMountPoint.
func Default() FS { return FS{Root: DefaultMountPoint} }
