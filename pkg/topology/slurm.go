package topology

import (
	"fmt"
	"sort"

	"k8s.io/utils/cpuset"
)

// SlurmNumbering is how slurmd numbers a node's CPUs "abstractly". Slurm
// reports and accepts abstract IDs in `scontrol show job -d` (CPU_IDs),
// SPANK's S_JOB_ALLOC_CORES and slurm.conf's CpuSpecList, not Linux CPU
// numbers.
//
// slurmd builds the map once at start from hwloc (xcpuinfo_hwloc_topo_get
// in src/slurmd/common/xcpuinfo.c; xcpuinfo_abs_to_mac and
// xcpuinfo_mac_to_abs apply it):
//
//   - Sockets are hwloc Package objects that contain cores, in hwloc's
//     logical order, which sorts siblings by their CPU sets, so by lowest
//     Linux CPU ID. Cores within a socket and threads within a core follow
//     the same order. (SlurmdParameters=l3cache_as_socket or
//     numa_node_as_socket, and hwloc 1.x on machines with NUMA nodes inside
//     a package, make other objects "sockets"; this implementation follows
//     the default, Package.)
//   - Only online CPUs exist for hwloc; offline CPUs get no abstract ID.
//   - ThreadsPerCore = online CPUs / cores and CoresPerSocket = cores /
//     sockets (integer division). Counting cores across sockets, abstract
//     = core_index*ThreadsPerCore + thread_index; for a uniform machine
//     this is (socket*CoresPerSocket + core)*ThreadsPerCore + thread.
//   - slurmd skips any CPU whose Linux ID or abstract ID is not below the
//     number of online CPUs, and leaves the skipped abstract IDs mapped to
//     themselves. Machines with sparse online CPU IDs (offline CPUs in the
//     middle, or A64FX's 12-59) therefore get an inconsistent map from
//     slurmd. The mapping functions below refuse such IDs with an error
//     instead of repeating slurmd's identity fallback.
type SlurmNumbering struct {
	// Sockets, CoresPerSocket and ThreadsPerCore are what slurmd reports
	// (slurmd -C).
	Sockets, CoresPerSocket, ThreadsPerCore int
	// Machine[a] is the Linux CPU of abstract CPU a, -1 where slurmd's
	// block map has no entry of its own (it then falls back to a).
	Machine []int
	// Abstract maps a Linux CPU to its abstract ID.
	Abstract map[int]int
}

// SlurmNumbering computes slurmd's abstract CPU numbering for the
// topology's online CPUs.
func (t *Topology) SlurmNumbering() SlurmNumbering {
	type core struct{ pus []int }
	type socket struct {
		id    int
		first int
		cores map[int]*core
	}
	sockets := map[int]*socket{}
	nPU := 0
	for _, c := range t.CPUs { // ascending ID
		if !c.Online {
			continue
		}
		nPU++
		s, ok := sockets[c.Socket]
		if !ok {
			s = &socket{id: c.Socket, first: c.ID, cores: map[int]*core{}}
			sockets[c.Socket] = s
		}
		coreKey := c.Core
		if coreKey < 0 { // online without topology/: its own core
			coreKey = c.ID
		}
		k, ok := s.cores[coreKey]
		if !ok {
			k = &core{}
			s.cores[coreKey] = k
		}
		k.pus = append(k.pus, c.ID)
	}
	ordered := make([]*socket, 0, len(sockets))
	nCores := 0
	for _, s := range sockets {
		ordered = append(ordered, s)
		nCores += len(s.cores)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].first < ordered[j].first })

	n := SlurmNumbering{Machine: make([]int, nPU), Abstract: map[int]int{}}
	for i := range n.Machine {
		n.Machine[i] = -1
	}
	if nPU == 0 {
		return n
	}
	n.Sockets = len(ordered)
	n.ThreadsPerCore = nPU / nCores
	n.CoresPerSocket = nCores / n.Sockets
	coreIdx := -1
	for _, s := range ordered {
		cores := make([]*core, 0, len(s.cores))
		for _, k := range s.cores {
			cores = append(cores, k)
		}
		sort.Slice(cores, func(i, j int) bool { return cores[i].pus[0] < cores[j].pus[0] })
		for _, k := range cores {
			coreIdx++
			for thread, mac := range k.pus {
				if thread >= n.ThreadsPerCore {
					break // hwloc_get_obj_below_array_by_type asks for threads < ThreadsPerCore only
				}
				abs := coreIdx*n.ThreadsPerCore + thread
				if mac >= nPU || abs >= nPU {
					continue // slurmd: "physical or logical ID are out of range"
				}
				n.Machine[abs] = mac
				n.Abstract[mac] = abs
			}
		}
	}
	return n
}

// SlurmAbstractToMachine converts Slurm abstract CPU IDs into Linux CPU
// IDs (slurmd's xcpuinfo_abs_to_mac). An ID outside 0..online CPUs-1, or
// one slurmd's map leaves to its identity fallback, is an error.
func (t *Topology) SlurmAbstractToMachine(abstract cpuset.CPUSet) (cpuset.CPUSet, error) {
	return t.SlurmAbstractToMachineIn(t.SlurmNumbering(), abstract)
}

// SlurmAbstractToMachineIn is SlurmAbstractToMachine with the numbering
// t.SlurmNumbering() returned, for a caller that has it already (it is
// rebuilt from every CPU of the layout).
func (t *Topology) SlurmAbstractToMachineIn(n SlurmNumbering, abstract cpuset.CPUSet) (cpuset.CPUSet, error) {
	out := make([]int, 0, abstract.Size())
	for _, a := range abstract.List() {
		if a < 0 || a >= len(n.Machine) {
			return cpuset.New(), fmt.Errorf("slurm abstract cpu %d: out of range, slurm numbers %d online cpus (0-%d)",
				a, len(n.Machine), len(n.Machine)-1)
		}
		if n.Machine[a] < 0 {
			return cpuset.New(), fmt.Errorf("slurm abstract cpu %d: slurmd has no machine cpu for it on this topology "+
				"(it would fall back to cpu %d); online cpus %s are not numbered densely as %d sockets x %d cores x %d threads",
				a, a, t.OnlineCPUs().String(), n.Sockets, n.CoresPerSocket, n.ThreadsPerCore)
		}
		out = append(out, n.Machine[a])
	}
	return cpuset.New(out...), nil
}

// MachineToSlurmAbstract converts Linux CPU IDs into Slurm abstract IDs
// (slurmd's xcpuinfo_mac_to_abs). Offline CPUs have no abstract ID, nor do
// CPUs slurmd skips (see SlurmNumbering): both are errors.
func (t *Topology) MachineToSlurmAbstract(cpus cpuset.CPUSet) (cpuset.CPUSet, error) {
	n := t.SlurmNumbering()
	out := make([]int, 0, cpus.Size())
	for _, m := range cpus.List() {
		c, ok := t.CPU(m)
		switch {
		case !ok:
			return cpuset.New(), fmt.Errorf("cpu %d: not in topology (cpus %s)", m, t.AllCPUs().String())
		case !c.Online:
			return cpuset.New(), fmt.Errorf("cpu %d: offline, slurm numbers online cpus only", m)
		}
		a, ok := n.Abstract[m]
		if !ok {
			return cpuset.New(), fmt.Errorf("cpu %d: slurmd gives it no abstract id (ids must be below the %d online cpus, "+
				"at most %d threads per core)", m, len(n.Machine), n.ThreadsPerCore)
		}
		out = append(out, a)
	}
	return cpuset.New(out...), nil
}
