package sysfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"k8s.io/utils/cpuset"
)

// CPUTopology is the content of cpuN/topology/ for one online CPU.
type CPUTopology struct {
	// PhysicalPackageID is physical_package_id (the socket).
	PhysicalPackageID int
	// CoreID is core_id: unique within a package only, possibly sparse.
	CoreID int
	// ThreadSiblings is thread_siblings_list: the CPUs sharing the core,
	// this one included.
	ThreadSiblings cpuset.CPUSet
}

// PossibleCPUs reads cpu/possible.
func (f FS) PossibleCPUs() (cpuset.CPUSet, error) { return f.readList(CPUDir, "possible") }

// PresentCPUs reads cpu/present.
func (f FS) PresentCPUs() (cpuset.CPUSet, error) { return f.readList(CPUDir, "present") }

// OnlineCPUs reads cpu/online.
func (f FS) OnlineCPUs() (cpuset.CPUSet, error) { return f.readList(CPUDir, "online") }

// OfflineCPUs reads cpu/offline (possible CPUs that are not online).
func (f FS) OfflineCPUs() (cpuset.CPUSet, error) { return f.readList(CPUDir, "offline") }

// CPUIDs lists the cpuN directories, ascending. The kernel creates one for
// every present CPU, online or not.
func (f FS) CPUIDs() ([]int, error) { return f.numberedEntries(CPUDir, "cpu") }

// CPUOnline reads cpuN/online. The file is absent for CPUs that cannot be
// hot-unplugged (cpu0 on most x86 kernels); ok is false then and the caller
// should use OnlineCPUs.
func (f FS) CPUOnline(cpu int) (online, ok bool, err error) {
	v, err := f.readInt(CPUDir, cpuName(cpu), "online")
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	switch v {
	case 0:
		return false, true, nil
	case 1:
		return true, true, nil
	}
	return false, false, &ParseError{Path: f.Path(CPUDir, cpuName(cpu), "online"), Content: fmt.Sprint(v), Err: errors.New("want 0 or 1")}
}

// CPUTopology reads cpuN/topology/. The kernel removes the directory while
// a CPU is offline; ok is false then.
func (f FS) CPUTopology(cpu int) (t CPUTopology, ok bool, err error) {
	dir := filepath.Join(CPUDir, cpuName(cpu), "topology")
	present, err := f.exists(dir)
	if err != nil || !present {
		return CPUTopology{}, false, err
	}
	if t.PhysicalPackageID, err = f.readInt(dir, "physical_package_id"); err != nil {
		return CPUTopology{}, false, err
	}
	if t.CoreID, err = f.readInt(dir, "core_id"); err != nil {
		return CPUTopology{}, false, err
	}
	if t.ThreadSiblings, err = f.readList(dir, "thread_siblings_list"); err != nil {
		return CPUTopology{}, false, err
	}
	if !t.ThreadSiblings.Contains(cpu) {
		return CPUTopology{}, false, &ParseError{
			Path: f.Path(dir, "thread_siblings_list"), Content: t.ThreadSiblings.String(),
			Err: fmt.Errorf("does not contain cpu %d", cpu),
		}
	}
	return t, true, nil
}

// CPUNode returns K of the cpuN/nodeK link (the kernel's cpu_to_node). The
// link stays while the CPU is offline. ok is false when there is none
// (kernels without NUMA).
func (f FS) CPUNode(cpu int) (node int, ok bool, err error) {
	ids, err := f.numberedEntries(filepath.Join(CPUDir, cpuName(cpu)), "node")
	if err != nil {
		return 0, false, err
	}
	switch len(ids) {
	case 0:
		return 0, false, nil
	case 1:
		return ids[0], true, nil
	}
	return 0, false, &ParseError{Path: f.Path(CPUDir, cpuName(cpu)), Content: fmt.Sprint(ids), Err: errors.New("cpu linked to several nodes")}
}

func cpuName(cpu int) string { return fmt.Sprintf("cpu%d", cpu) }
