package devholders

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Find returns the PIDs, ascending, of the processes under procRoot (normally
// "/proc") that have devicePath open or mapped (a mapping keeps the device
// busy after its descriptor is closed). devicePath must be absolute; it is
// compared with each fd link target both as given and with symlinks
// resolved, because the kernel reports the resolved path. Processes that
// exit during the scan or whose fd directory is not readable are skipped.
func Find(procRoot, devicePath string) ([]int, error) {
	if !filepath.IsAbs(devicePath) {
		return nil, fmt.Errorf("find holders of %q: path is not absolute", devicePath)
	}
	want := map[string]bool{filepath.Clean(devicePath): true}
	if resolved, err := filepath.EvalSymlinks(devicePath); err == nil {
		want[resolved] = true
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("find holders of %s: %w", devicePath, err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		if holdsFile(filepath.Join(dir, "fd"), want) || mapsFile(filepath.Join(dir, "maps"), want) {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// holdsFile reports whether any link in fdDir points to one of want. A
// process that vanished, is a zombie or whose directory is not readable
// (another user's process when not root) counts as "no": per-process errors
// are expected during a scan of a live /proc.
func holdsFile(fdDir string, want map[string]bool) bool {
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err != nil {
			// The fd was closed between ReadDir and Readlink.
			continue
		}
		if want[target] {
			return true
		}
	}
	return false
}

// mapsFile reports whether /proc/<pid>/maps names one of want as the
// pathname of a mapping (the last field of a line).
func mapsFile(maps string, want map[string]bool) bool {
	b, err := os.ReadFile(maps)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		// address perms offset dev inode pathname
		f := strings.Fields(line)
		if len(f) == 6 && want[f[5]] {
			return true
		}
	}
	return false
}
