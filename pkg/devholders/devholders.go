package devholders

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Find returns the PIDs, ascending, of the processes under procRoot (normally
// "/proc") that have devicePath open. devicePath must be absolute; it is
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
		if holdsFile(filepath.Join(procRoot, e.Name(), "fd"), want) {
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
