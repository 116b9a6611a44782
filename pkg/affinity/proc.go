package affinity

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sort"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
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
	pids, err := procfs.FS{Root: filepath.Join(root, "proc")}.PIDs()
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, pid := range pids {
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

// ReadProcess reads /proc/PID below root (through package procfs).
func ReadProcess(root string, pid int) (Process, error) {
	pl, err := procfs.FS{Root: filepath.Join(root, "proc")}.Placement(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{PID: pid, Comm: pl.Comm, Kernel: pl.Flags&pfKthread != 0, CPUs: pl.CPUs, Mems: pl.Mems}, nil
}
