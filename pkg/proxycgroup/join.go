package proxycgroup

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// Join confines a task by the record, as root, before the task execs:
//
//   - v1: moves pid into the job's cgroup of its role (proxies: cpuset,
//     memory and cpu; batch: cpuset) and checks /proc/<pid>/cgroup. The
//     directories must be the ones this layout gives the record's job: the
//     record is root-only, and even so a path in it is never trusted.
//   - v2: leaves pid where Slurm put it and writes the limits onto the
//     step's "user" cgroup, the parent of Slurm's task leaves, found from
//     /proc/<pid>/cgroup (the task is still in step_*/slurm when the forked
//     child runs this, or already in step_*/user/task_*). All tasks of a
//     step write the same values.
//
// Under v1, a TaskPlugin that also places tasks in the cpuset or memory
// hierarchy (task/cgroup with ConstrainCores or ConstrainRAMSpace) would move
// the task again from slurmstepd; LWK nodes run task/affinity (see
// cgroup.conf.example), and the check below catches a move made before it.
func (m Manager) Join(rec *Record, pid int, role Role) error {
	if rec.Mode != m.Layout.Mode {
		return fmt.Errorf("confine pid %d: record of job %d is for cgroup %s, node uses %s", pid, rec.JobID, rec.Mode, m.Layout.Mode)
	}
	if role != Proxy && role != Batch {
		return fmt.Errorf("confine pid %d: unknown role %q", pid, role)
	}
	if m.Layout.Mode == V2 {
		return m.joinV2(rec, pid, role)
	}
	dirs := rec.Proxies
	ctrls := Controllers
	if role == Batch {
		dirs, ctrls = rec.Batch, []string{"cpuset"}
	}
	for _, c := range ctrls {
		want := filepath.Join(m.jobDir(c, rec.JobID), string(role))
		if dirs[c] != want {
			return fmt.Errorf("confine pid %d: record of job %d names %s cgroup %q, expected %s", pid, rec.JobID, c, dirs[c], want)
		}
		if err := m.FS.Attach(want, pid); err != nil {
			return fmt.Errorf("confine pid %d (job %d): %w", pid, rec.JobID, err)
		}
	}
	cur, err := m.cgroupsOf(pid)
	if err != nil {
		return err
	}
	for _, c := range ctrls {
		rel := "/" + path.Join(m.prefix(), "job-"+strconv.FormatUint(uint64(rec.JobID), 10), string(role))
		if cur[c] != rel {
			return fmt.Errorf("confine pid %d (job %d): /proc says %s:%s, want %s", pid, rec.JobID, c, cur[c], rel)
		}
	}
	return nil
}

// cgroupsOf reads /proc/<pid>/cgroup: controller (v1) or "" (v2) to path.
func (m Manager) cgroupsOf(pid int) (map[string]string, error) {
	lines, err := m.Layout.Proc.CgroupLines(pid)
	if err != nil {
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	out := map[string]string{}
	for _, l := range lines {
		if len(l.Controllers) == 0 {
			out[""] = l.Path
		}
		for _, c := range l.Controllers {
			out[c] = l.Path
		}
	}
	return out, nil
}

// isTaskLeaf reports whether name is a Slurm task cgroup's: task_N (N
// decimal digits) or task_special. A function, not a regexp: compiling one
// at package initialisation cost every lwk-prolog and lwk-epilog start
// 0.3-1.0 ms.
func isTaskLeaf(name string) bool {
	n, ok := strings.CutPrefix(name, "task_")
	if !ok || n == "" {
		return false
	}
	if n == "special" {
		return true
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// StepUserCgroup returns Slurm's step "user" cgroup (relative to the
// cgroup2 root) for a process in a step's slurm/ or user/task_* cgroup.
func StepUserCgroup(cg string) (string, error) {
	cg = path.Clean(cg)
	var user string
	switch base := path.Base(cg); {
	case isTaskLeaf(base) && path.Base(path.Dir(cg)) == "user":
		user = path.Dir(cg)
	case base == "slurm":
		user = path.Join(path.Dir(cg), "user")
	default:
		return "", fmt.Errorf("cgroup %s is not a Slurm step's slurm/ or user/task_* cgroup", cg)
	}
	if !strings.HasPrefix(path.Base(path.Dir(user)), "step_") {
		return "", fmt.Errorf("cgroup %s: %s is not inside a step_* cgroup", cg, user)
	}
	return user, nil
}

func (m Manager) joinV2(rec *Record, pid int, role Role) error {
	l, err := rec.Limits.limits()
	if err != nil {
		return fmt.Errorf("confine pid %d (job %d): %w", pid, rec.JobID, err)
	}
	cur, err := m.cgroupsOf(pid)
	if err != nil {
		return err
	}
	rel, err := StepUserCgroup(cur[""])
	if err != nil {
		return fmt.Errorf("confine pid %d (job %d): %w", pid, rec.JobID, err)
	}
	// The controllers must be enabled on every ancestor of user/ for its
	// control files to exist; Slurm enables what its own plugins need.
	dir := m.Layout.Unified
	for _, elem := range strings.Split(strings.Trim(path.Dir(rel), "/"), "/") {
		if err := m.enable(dir); err != nil {
			return fmt.Errorf("confine pid %d (job %d): %w", pid, rec.JobID, err)
		}
		dir = filepath.Join(dir, elem)
	}
	if err := m.enable(dir); err != nil {
		return fmt.Errorf("confine pid %d (job %d): %w", pid, rec.JobID, err)
	}
	user := filepath.Join(m.Layout.Unified, filepath.FromSlash(rel))
	cpus := l.CPUs
	if role == Batch {
		cpus = l.BatchCPUs
	}
	// Slurm's job and step cpusets (ConstrainCores) hold the job's CPUs,
	// not the OS cores (CpuSpecList keeps jobs off them), and a v2 child's
	// effective CPUs are only those its ancestors have: widen the job's and
	// the step's cpuset.cpus by the CPUs the proxies need, or the kernel
	// would fall back to the parent's (the job's CPUs, which IHK offlined).
	step := path.Dir(rel)
	for _, d := range []string{path.Dir(step), step} {
		dir := filepath.Join(m.Layout.Unified, filepath.FromSlash(d))
		if err := m.widen(dir, cpus); err != nil {
			return fmt.Errorf("confine pid %d (job %d): %w", pid, rec.JobID, err)
		}
	}
	writes := [][2]string{{"cpuset.cpus", cpus.String()}}
	if !l.Mems.IsEmpty() {
		writes = append(writes, [2]string{"cpuset.mems", l.Mems.String()})
	}
	if role == Proxy {
		writes = append(writes,
			[2]string{"memory.max", strconv.FormatUint(l.MemoryBytes, 10)},
			[2]string{"cpu.max", strconv.FormatInt(l.CPUQuotaUS, 10) + " " + strconv.FormatInt(l.CPUPeriodUS, 10)})
		if _, err := m.FS.Read(user, "memory.swap.max"); err == nil {
			writes = append(writes, [2]string{"memory.swap.max", "0"})
		}
	}
	for _, w := range writes {
		if err := m.FS.Write(user, w[0], w[1]); err != nil {
			return fmt.Errorf("confine pid %d (job %d): %w", pid, rec.JobID, err)
		}
	}
	return nil
}

// widen adds cpus to a cgroup's cpuset.cpus when it sets one (empty means
// the parent's, which is left alone).
func (m Manager) widen(dir string, cpus cpuset.CPUSet) error {
	s, err := m.FS.Read(dir, "cpuset.cpus")
	if err != nil {
		return err
	}
	cur, err := cpuset.Parse(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "cpuset.cpus"), err)
	}
	if cur.IsEmpty() || cpus.IsSubsetOf(cur) {
		return nil
	}
	return m.FS.Write(dir, "cpuset.cpus", cur.Union(cpus).String())
}

// enable turns cpuset, cpu and memory on in a cgroup's subtree_control
// where they are not already.
func (m Manager) enable(dir string) error {
	s, err := m.FS.Read(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	on := strings.Fields(s)
	var add []string
	for _, c := range Controllers {
		if !slices.Contains(on, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return m.FS.Write(dir, "cgroup.subtree_control", strings.Join(add, " "))
}
