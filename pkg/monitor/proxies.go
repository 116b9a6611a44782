package monitor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/devholders"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// ProcProxies finds proxies through procfs and reads their stop state from
// /proc/<pid>/stat and their cgroup's freezer.
type ProcProxies struct {
	// Proc is the proc file system.
	Proc procfs.FS
	// CgroupRoot is the cgroup mount (/sys/fs/cgroup; v1 controllers below
	// it by name, v2 at it or at its "unified" child).
	CgroupRoot string
}

// Holders implements Proxies: the processes other than this one that hold
// dev open or mapped.
func (p ProcProxies) Holders(dev string) ([]int, error) {
	pids, err := devholders.Find(p.Proc.Root, dev)
	if err != nil {
		return nil, err
	}
	out := pids[:0]
	for _, pid := range pids {
		if pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Stopped implements Proxies. A process is stopped when its state is T
// (SIGSTOP, as Slurm's proctrack/linuxproc suspends) or its freezer cgroup
// is frozen (proctrack/cgroup suspends with the cgroup v1 freezer; cgroup
// v2 with cgroup.freeze).
func (p ProcProxies) Stopped(pid int) bool {
	st, err := p.Proc.Stat(pid)
	if err != nil {
		return false
	}
	switch st.State {
	case 'T', 't':
		return true
	case 'Z', 'X':
		return false
	}
	return p.frozen(pid)
}

func (p ProcProxies) frozen(pid int) bool {
	lines, err := p.Proc.CgroupLines(pid)
	if err != nil {
		return false
	}
	for _, l := range lines {
		if strings.Contains(l.Path, "..") {
			continue
		}
		switch {
		case slices.Contains(l.Controllers, "freezer"):
			b, err := os.ReadFile(filepath.Join(p.CgroupRoot, "freezer", l.Path, "freezer.state"))
			if err == nil && strings.TrimSpace(string(b)) == "FROZEN" {
				return true
			}
		case l.V2():
			for _, root := range []string{p.CgroupRoot, filepath.Join(p.CgroupRoot, "unified")} {
				b, err := os.ReadFile(filepath.Join(root, l.Path, "cgroup.events"))
				if err == nil && strings.Contains(string(b), "frozen 1") {
					return true
				}
			}
		}
	}
	return false
}

// Notify implements Proxies: it duplicates each process's descriptor 2
// with pidfd_getfd(2) and writes msg to it. The duplicate has the access
// the process itself had; a path reopened as root would not.
func (p ProcProxies) Notify(pids []int, msg string) {
	for _, pid := range pids {
		pfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		fd, err := unix.PidfdGetfd(pfd, 2, 0)
		unix.Close(pfd)
		if err != nil {
			continue
		}
		// O_NONBLOCK would change the process's own file description:
		// write only when poll says a short message fits (a pipe write of
		// at most PIPE_BUF bytes is then atomic and does not block).
		pfds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, err := unix.Poll(pfds, 0); err == nil && n == 1 && pfds[0].Revents&unix.POLLOUT != 0 && len(msg) <= 4096 {
			_, _ = unix.Write(fd, []byte(msg))
		}
		unix.Close(fd)
	}
}
