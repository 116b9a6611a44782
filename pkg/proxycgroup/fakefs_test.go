package proxycgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// fakeFS emulates the parts of cgroupfs the confinement relies on, over a
// temp dir: mkdir fills a cgroup with its controller's files; cpuset.cpus
// must stay inside the parent's (v1); a task joins one cgroup per hierarchy
// and cannot join a v1 cpuset without CPUs; rmdir of a cgroup with tasks is
// EBUSY; v2 control files exist only where the parent enables the
// controller, which it may only do when its own parent does.
type fakeFS struct {
	t        *testing.T
	procRoot string
	// v1 maps a hierarchy's mount point to its controller; unified is the
	// cgroup2 mount.
	v1      map[string]string
	unified string
	// busy makes Remove answer EBUSY that many times first.
	busy int
}

var fakeV1Files = map[string]map[string]string{
	"cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.effective_cpus": ""},
	"memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "9223372036854771712",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "memory.max_usage_in_bytes": "0", "memory.failcnt": "0"},
	"cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
}

var fakeV2Files = map[string]map[string]string{
	"cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
	"memory": {"memory.max": "max", "memory.swap.max": "max"},
	"cpu":    {"cpu.max": "max 100000"},
}

// newFakeV1 makes a hybrid node like the CI machine: cpuset, memory and cpu
// hierarchies (root cpuset cpus, mems) and an empty cgroup2.
func newFakeV1(t *testing.T, cpus, mems string) (*fakeFS, Layout) {
	root := t.TempDir()
	f := &fakeFS{t: t, procRoot: filepath.Join(root, "proc"), v1: map[string]string{}}
	var mounts strings.Builder
	for _, c := range Controllers {
		mnt := filepath.Join(root, "sys/fs/cgroup", c)
		f.v1[mnt] = c
		f.populate(mnt, fakeV1Files[c])
		fmt.Fprintf(&mounts, "cgroup %s cgroup rw,nosuid,nodev,noexec,relatime,%s 0 0\n", mnt, c)
	}
	f.set(filepath.Join(root, "sys/fs/cgroup/cpuset"), "cpuset.cpus", cpus)
	f.set(filepath.Join(root, "sys/fs/cgroup/cpuset"), "cpuset.mems", mems)
	uni := filepath.Join(root, "sys/fs/cgroup/unified")
	f.populate(uni, map[string]string{"cgroup.controllers": "", "cgroup.subtree_control": ""})
	fmt.Fprintf(&mounts, "cgroup2 %s cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n", uni)
	f.writeProc("self/mounts", mounts.String())
	l, err := Detect(procfs.FS{Root: f.procRoot})
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

// newFakeV2 makes a pure cgroup v2 node with Slurm's step tree for one job
// (named by a SLUID, as Slurm 26.05 does) holding task pid in task_0.
func newFakeV2(t *testing.T) (*fakeFS, Layout) {
	root := t.TempDir()
	uni := filepath.Join(root, "sys/fs/cgroup")
	f := &fakeFS{t: t, procRoot: filepath.Join(root, "proc"), unified: uni}
	f.populate(uni, map[string]string{"cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc", "cgroup.subtree_control": "memory pids"})
	f.writeProc("self/mounts", fmt.Sprintf("sysfs /sys sysfs rw 0 0\ncgroup2 %s cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0\n", uni))
	l, err := Detect(procfs.FS{Root: f.procRoot})
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

func (f *fakeFS) populate(dir string, files map[string]string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	files = mergeFiles(files, map[string]string{"cgroup.procs": ""})
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

func mergeFiles(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func (f *fakeFS) set(dir, file, v string) {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeFS) get(dir, file string) string {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func (f *fakeFS) writeProc(rel, content string) {
	p := filepath.Join(f.procRoot, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// hierarchy returns the v1 mount and controller a path is in.
func (f *fakeFS) hierarchy(p string) (string, string) {
	for mnt, c := range f.v1 {
		if p == mnt || strings.HasPrefix(p, mnt+"/") {
			return mnt, c
		}
	}
	return "", ""
}

func (f *fakeFS) Mkdir(p string) error {
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Dir(p)); err != nil {
		return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOENT}
	}
	if f.unified != "" {
		files := map[string]string{"cgroup.subtree_control": ""}
		for _, c := range Controllers {
			files = mergeFiles(files, fakeV2Files[c])
		}
		f.populate(p, files)
		return nil
	}
	_, c := f.hierarchy(p)
	if c == "" {
		f.t.Fatalf("mkdir %s: outside every fake hierarchy", p)
	}
	f.populate(p, fakeV1Files[c])
	return nil
}

func (f *fakeFS) v2Visible(dir, file string) bool {
	ctrl, _, _ := strings.Cut(file, ".")
	if !slices.Contains(Controllers, ctrl) || dir == f.unified {
		return true
	}
	return slices.Contains(strings.Fields(f.get(filepath.Dir(dir), "cgroup.subtree_control")), ctrl)
}

func (f *fakeFS) Read(dir, file string) (string, error) {
	if f.unified != "" && !f.v2Visible(dir, file) {
		return "", &fs.PathError{Op: "open", Path: filepath.Join(dir, file), Err: syscall.ENOENT}
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	return string(b), err
}

func (f *fakeFS) Write(dir, file, data string) error {
	p := filepath.Join(dir, file)
	einval := &fs.PathError{Op: "write", Path: p, Err: syscall.EINVAL}
	if _, err := os.Stat(p); err != nil || (f.unified != "" && !f.v2Visible(dir, file)) {
		return &fs.PathError{Op: "open", Path: p, Err: syscall.ENOENT}
	}
	switch {
	case file == "cgroup.subtree_control":
		on := strings.Fields(f.get(dir, file))
		for _, w := range strings.Fields(data) {
			c := strings.TrimPrefix(w, "+")
			if dir != f.unified && !slices.Contains(strings.Fields(f.get(filepath.Dir(dir), file)), c) {
				return &fs.PathError{Op: "write", Path: p, Err: syscall.ENOENT}
			}
			if !slices.Contains(on, c) {
				on = append(on, c)
			}
		}
		data = strings.Join(on, " ")
	case file == "cpuset.cpus" || file == "cpuset.mems":
		set, err := cpuset.Parse(data)
		if err != nil {
			return einval
		}
		if f.unified == "" {
			mnt, _ := f.hierarchy(dir)
			if dir != mnt {
				parent, _ := cpuset.Parse(strings.TrimSpace(f.get(filepath.Dir(dir), file)))
				if !set.IsSubsetOf(parent) {
					return einval
				}
			}
		}
	case strings.HasSuffix(file, "_us") || strings.HasSuffix(file, "_in_bytes"):
		if _, err := strconv.ParseInt(data, 10, 64); err != nil {
			return einval
		}
	}
	return os.WriteFile(p, []byte(data), 0o644)
}

func (f *fakeFS) Attach(dir string, pid int) error {
	mnt, c := f.hierarchy(dir)
	if c == "cpuset" && strings.TrimSpace(f.get(dir, "cpuset.cpus")) == "" {
		return &fs.PathError{Op: "write", Path: filepath.Join(dir, "cgroup.procs"), Err: syscall.ENOSPC}
	}
	// Leave the old cgroup of this hierarchy.
	_ = filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "cgroup.procs" {
			var keep []string
			for _, s := range strings.Fields(f.get(filepath.Dir(p), "cgroup.procs")) {
				if s != strconv.Itoa(pid) {
					keep = append(keep, s)
				}
			}
			f.set(filepath.Dir(p), "cgroup.procs", strings.Join(keep, "\n"))
		}
		return nil
	})
	f.set(dir, "cgroup.procs", strings.TrimSpace(f.get(dir, "cgroup.procs")+"\n"+strconv.Itoa(pid)))
	// And /proc/<pid>/cgroup follows.
	cg := filepath.Join(f.procRoot, strconv.Itoa(pid), "cgroup")
	b, _ := os.ReadFile(cg)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if parts := strings.SplitN(l, ":", 3); len(parts) == 3 && parts[1] != c {
			lines = append(lines, l)
		}
	}
	rel := strings.TrimPrefix(dir, mnt)
	lines = append(lines, fmt.Sprintf("9:%s:%s", c, rel))
	f.writeProc(filepath.Join(strconv.Itoa(pid), "cgroup"), strings.Join(lines, "\n")+"\n")
	return nil
}

func (f *fakeFS) Remove(p string) error {
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := f.Remove(filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
	}
	if f.busy > 0 {
		f.busy--
		return &fs.PathError{Op: "rmdir", Path: p, Err: syscall.EBUSY}
	}
	if strings.TrimSpace(f.get(p, "cgroup.procs")) != "" {
		return &fs.PathError{Op: "rmdir", Path: p, Err: syscall.EBUSY}
	}
	return os.RemoveAll(p)
}
