package procfs

import (
	"fmt"
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
// /proc/<pid>/cgroup ("hierarchy-ID:controllers:path" lines; cgroup v2 has
// one line "0::path").
func (fs FS) Cgroups(pid int) ([]string, error) {
	path := fs.Path(strconv.Itoa(pid), "cgroup")
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("parse %s: line %q", path, line)
		}
		out = append(out, parts[2])
	}
	return out, nil
}
