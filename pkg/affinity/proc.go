package affinity

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// pfKthread is PF_KTHREAD in /proc/PID/stat's flags field.
const pfKthread = 0x00200000

// Process is one /proc/PID.
type Process struct {
	// PID is the process ID.
	PID int
	// Comm is the command name from stat.
	Comm string
	// Kernel is set for kernel threads.
	Kernel bool
	// CPUs is Cpus_allowed_list; Mems is Mems_allowed_list.
	CPUs, Mems cpuset.CPUSet
}

// ReadProcesses reads every /proc/PID below root, ascending. Processes
// that exit while being read are skipped.
func ReadProcesses(root string) ([]Process, error) {
	dir := filepath.Join(root, "proc")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, err := ReadProcess(root, pid)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// ReadProcess reads /proc/PID below root.
func ReadProcess(root string, pid int) (Process, error) {
	base := filepath.Join(root, "proc", strconv.Itoa(pid))
	p := Process{PID: pid, CPUs: cpuset.New(), Mems: cpuset.New()}
	stat, err := os.ReadFile(filepath.Join(base, "stat"))
	if err != nil {
		return Process{}, err
	}
	// "PID (comm) S ppid ..." where comm may hold spaces and parentheses:
	// it ends at the last ')'.
	s := string(stat)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return Process{}, fmt.Errorf("parse %s/stat: no (comm)", base)
	}
	p.Comm = s[open+1 : closing]
	rest := strings.Fields(s[closing+1:])
	// rest[0] is state; flags is field 9 of stat, rest[6].
	if len(rest) < 7 {
		return Process{}, fmt.Errorf("parse %s/stat: %d fields after comm", base, len(rest))
	}
	flags, err := strconv.ParseUint(rest[6], 10, 64)
	if err != nil {
		return Process{}, fmt.Errorf("parse %s/stat flags: %w", base, err)
	}
	p.Kernel = flags&pfKthread != 0
	status, err := os.Open(filepath.Join(base, "status"))
	if err != nil {
		return Process{}, err
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
			return Process{}, fmt.Errorf("parse %s/status %s: %w", base, key, err)
		}
		*dst = set
	}
	if err := sc.Err(); err != nil {
		return Process{}, fmt.Errorf("read %s/status: %w", base, err)
	}
	if !haveCPUs {
		return Process{}, fmt.Errorf("parse %s/status: no Cpus_allowed_list", base)
	}
	return p, nil
}
