package sysconfine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/affinity"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// Mode is how system processes are confined.
type Mode string

// Modes.
const (
	ModeSystemd Mode = "systemd"
	ModeCgroup2 Mode = "cgroup2"
	ModeCgroup1 Mode = "cgroup1"
	ModeNone    Mode = "none"
)

// Names of what this package creates.
const (
	DropInName = "50-slurm-lwk-nodeprep.conf"
	GroupName  = "slurm-lwk-system"
)

// excluded are units never confined: Slurm's daemon and its job scope.
var excluded = map[string]bool{"slurmd.service": true, "slurmstepd.scope": true}

// Detect picks the mode for the tree below root.
func Detect(root string) Mode {
	if isDir(filepath.Join(root, "run/systemd/system")) {
		return ModeSystemd
	}
	if isFile(filepath.Join(root, "sys/fs/cgroup/cgroup.controllers")) {
		return ModeCgroup2
	}
	if isFile(filepath.Join(root, "sys/fs/cgroup/cpuset/cpuset.cpus")) {
		return ModeCgroup1
	}
	return ModeNone
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// SystemdUnits lists the units to confine: user.slice and machine.slice
// when they exist and the services below system.slice, found in the cgroup
// tree (v2 root, the hybrid "unified" mount, or the v1 "systemd" one),
// sorted, Slurm's excluded.
func SystemdUnits(root string) []string {
	var units []string
	for _, base := range []string{"sys/fs/cgroup", "sys/fs/cgroup/unified", "sys/fs/cgroup/systemd"} {
		dir := filepath.Join(root, base)
		if !isDir(filepath.Join(dir, "system.slice")) {
			continue
		}
		for _, s := range []string{"user.slice", "machine.slice"} {
			if isDir(filepath.Join(dir, s)) {
				units = append(units, s)
			}
		}
		ents, _ := os.ReadDir(filepath.Join(dir, "system.slice"))
		for _, e := range ents {
			if e.IsDir() && strings.HasSuffix(e.Name(), ".service") && !excluded[e.Name()] {
				units = append(units, e.Name())
			}
		}
		break
	}
	sort.Strings(units)
	return units
}

// DropInPath is where the drop-in for unit lives below root.
func DropInPath(root, unit string) (string, error) {
	if unit == "" || strings.ContainsAny(unit, "/\x00") || unit == "." || unit == ".." {
		return "", fmt.Errorf("unit name %q: not a plain unit name", unit)
	}
	return filepath.Join(root, "etc/systemd/system", unit+".d", DropInName), nil
}

// DropIn is the drop-in's content for a unit.
func DropIn(unit string, cpus, mems cpuset.CPUSet) string {
	section := "Service"
	if strings.HasSuffix(unit, ".slice") {
		section = "Slice"
	} else if strings.HasSuffix(unit, ".scope") {
		section = "Scope"
	}
	return fmt.Sprintf("# Written by lwkctl node apply; removed by lwkctl node apply --undo.\n[%s]\nAllowedCPUs=%s\nAllowedMemoryNodes=%s\n", section, cpus, mems)
}

// WriteDropIn writes the drop-in for unit (0644, directory 0755) and
// returns the content it replaced ("" and false when there was none).
func WriteDropIn(root, unit, content string) (before string, existed bool, err error) {
	p, err := DropInPath(root, unit)
	if err != nil {
		return "", false, err
	}
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		before, existed = string(b), true
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", false, fmt.Errorf("drop-in for %s: %w", unit, err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return "", false, fmt.Errorf("drop-in for %s: %w", unit, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", false, fmt.Errorf("drop-in for %s: %w", unit, err)
	}
	return before, existed, nil
}

// RemoveDropIn removes the drop-in of unit (absent is fine) and its
// directory when that is left empty.
func RemoveDropIn(root, unit string) error {
	p, err := DropInPath(root, unit)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove drop-in of %s: %w", unit, err)
	}
	_ = os.Remove(filepath.Dir(p)) // only succeeds when empty
	return nil
}

// Group is the cpuset cgroup system processes are moved into.
type Group struct {
	// Mode is ModeCgroup2 or ModeCgroup1.
	Mode Mode
	// Parent is the hierarchy's root directory; Dir the group's.
	Parent, Dir string
}

// NewGroup returns the group for mode below root.
func NewGroup(root string, mode Mode) (Group, error) {
	var parent string
	switch mode {
	case ModeCgroup2:
		parent = filepath.Join(root, "sys/fs/cgroup")
	case ModeCgroup1:
		parent = filepath.Join(root, "sys/fs/cgroup/cpuset")
	default:
		return Group{}, fmt.Errorf("cpuset confinement: mode %q has no cpuset hierarchy", mode)
	}
	return Group{Mode: mode, Parent: parent, Dir: filepath.Join(parent, GroupName)}, nil
}

// file names a cpuset interface file; v1 and v2 spell cpus and mems alike.
func (g Group) file(name string) string { return "cpuset." + name }

// Create makes the group with cpus and mems (and, on v2, enables the
// cpuset controller for the root's children). It reports whether it
// created the directory and whether it enabled the controller.
func (g Group) Create(cpus, mems cpuset.CPUSet) (created, enabled bool, err error) {
	if g.Mode == ModeCgroup2 {
		ctl, err := os.ReadFile(filepath.Join(g.Parent, "cgroup.subtree_control"))
		if err != nil {
			return false, false, fmt.Errorf("cgroup %s: %w", g.Parent, err)
		}
		if !contains(strings.Fields(string(ctl)), "cpuset") {
			if err := write(filepath.Join(g.Parent, "cgroup.subtree_control"), "+cpuset"); err != nil {
				return false, false, err
			}
			enabled = true
		}
	}
	if err := os.Mkdir(g.Dir, 0o755); err == nil {
		created = true
	} else if !errors.Is(err, fs.ErrExist) {
		return false, enabled, fmt.Errorf("cgroup %s: %w", g.Dir, err)
	}
	// v1 needs mems before any task; order cpus, mems for both.
	if err := write(filepath.Join(g.Dir, g.file("cpus")), cpus.String()); err != nil {
		return created, enabled, err
	}
	if err := write(filepath.Join(g.Dir, g.file("mems")), mems.String()); err != nil {
		return created, enabled, err
	}
	return created, enabled, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// MoveSystemProcesses moves every user-space process of the hierarchy's
// root cgroup into the group (procRoot is where /proc is read, normally
// the same root). It returns the PIDs moved; processes that exit meanwhile
// are skipped.
func (g Group) MoveSystemProcesses(procRoot string) ([]int, error) {
	pids, err := readPIDs(filepath.Join(g.Parent, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var moved []int
	var errs []error
	for _, pid := range pids {
		p, err := affinity.ReadProcess(procRoot, pid)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.Kernel || underSlurmstepd(procRoot, pid, p.Comm) {
			continue
		}
		if err := write(filepath.Join(g.Dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				continue
			}
			errs = append(errs, err)
			continue
		}
		moved = append(moved, pid)
	}
	return moved, errors.Join(errs...)
}

// underSlurmstepd reports whether pid is a slurmstepd or runs below one: a
// running job's step and tasks, which must keep the CPUs Slurm gave them
// (with task/affinity and no cgroup constraint they sit in the hierarchy's
// root). The parent chain is read from <root>/proc/PID/stat.
func underSlurmstepd(root string, pid int, comm string) bool {
	proc, err := procfs.NewFS(filepath.Join(root, "proc"))
	if err != nil {
		return false
	}
	for depth := 0; depth < 64 && pid > 1; depth++ {
		if comm == "slurmstepd" {
			return true
		}
		st, err := proc.Stat(pid)
		if err != nil {
			return false
		}
		pid = st.PPID
		p, err := affinity.ReadProcess(root, pid)
		if err != nil {
			return false
		}
		comm = p.Comm
	}
	return false
}

// Remove moves the group's processes back to the hierarchy's root and
// removes the group; a missing group is fine.
func (g Group) Remove() error {
	pids, err := readPIDs(filepath.Join(g.Dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		if err := write(filepath.Join(g.Parent, "cgroup.procs"), strconv.Itoa(pid)); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, err)
		}
	}
	if err := removeGroupDir(g.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", g.Dir, err))
	}
	return errors.Join(errs...)
}

// Magic numbers of the cgroup file systems (linux/magic.h).
const (
	cgroupSuperMagic  = 0x27e0eb
	cgroup2SuperMagic = 0x63677270
)

// removeGroupDir removes a cgroup directory. A cgroup file system lets
// rmdir remove a directory with its interface files; a plain directory
// (a fixture tree) needs its files removed first, which a cgroup file
// system would refuse.
func removeGroupDir(dir string) error {
	err := os.Remove(dir)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var st syscall.Statfs_t
	if !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	if serr := syscall.Statfs(dir, &st); serr != nil || st.Type == cgroupSuperMagic || st.Type == cgroup2SuperMagic {
		return err
	}
	ents, rerr := os.ReadDir(dir)
	if rerr != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return os.Remove(dir)
}

// DisableController undoes Create's enabling of the cpuset controller on
// v2; the kernel refuses (EBUSY) while other children use it.
func (g Group) DisableController() error {
	return write(filepath.Join(g.Parent, "cgroup.subtree_control"), "-cpuset")
}

func readPIDs(p string) ([]int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("parse %s: %q", p, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// write writes a cgroup file; in a real hierarchy the files exist, in a
// fixture tree they are created.
func write(p, v string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", v, p, err)
	}
	_, err = f.WriteString(v + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", v, p, err)
	}
	return nil
}
