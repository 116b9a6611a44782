package procfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/cpuset"
)

// Placement is where a process may run, with what identifies it: the comm
// and flags of /proc/<pid>/stat and the Cpus_allowed_list and
// Mems_allowed_list of /proc/<pid>/status.
type Placement struct {
	Comm string
	// Flags are the kernel's PF_* flags (PF_KTHREAD marks kernel threads).
	Flags uint64
	// CPUs is Cpus_allowed_list; Mems is Mems_allowed_list (empty when the
	// kernel does not show it).
	CPUs, Mems cpuset.CPUSet
}

// Placement reads a process's placement. It needs only the stat fields up to
// flags, so it also reads the short stat lines of hand-written fixtures.
func (fs FS) Placement(pid int) (Placement, error) {
	statPath := fs.Path(strconv.Itoa(pid), "stat")
	data, err := readSmall(statPath)
	if err != nil {
		return Placement{}, err
	}
	comm, f, err := splitStat(string(data), 7)
	if err != nil {
		return Placement{}, fmt.Errorf("parse %s: %w", statPath, err)
	}
	flags, err := strconv.ParseUint(f[9-3], 10, 64)
	if err != nil {
		return Placement{}, fmt.Errorf("parse %s flags: %w", statPath, err)
	}
	p := Placement{Comm: comm, Flags: flags, CPUs: cpuset.New(), Mems: cpuset.New()}

	statusPath := fs.Path(strconv.Itoa(pid), "status")
	status, err := os.Open(statusPath)
	if err != nil {
		return Placement{}, err
	}
	defer status.Close()
	var haveCPUs bool
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *cpuset.CPUSet
		switch key {
		case "Cpus_allowed_list":
			dst, haveCPUs = &p.CPUs, true
		case "Mems_allowed_list":
			dst = &p.Mems
		default:
			continue
		}
		set, err := cpuset.Parse(strings.TrimSpace(val))
		if err != nil {
			return Placement{}, fmt.Errorf("parse %s %s: %w", statusPath, key, err)
		}
		*dst = set
	}
	if err := sc.Err(); err != nil {
		return Placement{}, fmt.Errorf("read %s: %w", statusPath, err)
	}
	if !haveCPUs {
		return Placement{}, fmt.Errorf("parse %s: no Cpus_allowed_list", statusPath)
	}
	return p, nil
}

// RunTime sums the time a process's threads have spent on a CPU, from the
// first field of each /proc/<pid>/task/<tid>/schedstat (nanoseconds). A
// process or thread that is gone counts nothing.
func (fs FS) RunTime(pid int) time.Duration {
	tasks, _ := filepath.Glob(fs.Path(strconv.Itoa(pid), "task", "*", "schedstat"))
	var sum time.Duration
	for _, t := range tasks {
		b, err := readSmall(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				sum += time.Duration(ns)
			}
		}
	}
	return sum
}
