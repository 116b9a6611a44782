package topology

import (
	"fmt"
	"sort"

	"k8s.io/utils/cpuset"
)

// CPU is one logical CPU (hardware thread) as Linux numbers it.
type CPU struct {
	// ID is the Linux logical CPU number (cpuN).
	ID int `json:"id"`
	// Core is the core's index on the node, unique across sockets: CPUs with
	// the same Core are hyper-thread siblings. It is derived from
	// thread_siblings_list (the lowest sibling's ID), not from core_id, which
	// is only unique within a socket and may be sparse.
	Core int `json:"core"`
	// Socket is topology/physical_package_id.
	Socket int `json:"socket"`
	// NUMANode is the CPU's node link (cpuN/nodeK). With numa=fake several
	// nodes' cpulists hold the CPU; the link names the first of them.
	NUMANode int `json:"numa_node"`
	// Online reports whether Linux runs on the CPU now. Offline CPUs are kept
	// in the model (their topology may be unknown: Socket and Core are then
	// -1) but are never planned.
	Online bool `json:"online"`
}

// NUMANode is one NUMA node. Memory-only nodes (no CPUs) are normal:
// numa=fake and HBM/CXL nodes produce them.
type NUMANode struct {
	ID int `json:"id"`
	// CPUs are the node's CPUs from nodeN/cpulist plus the offline CPUs
	// linked to the node.
	CPUs cpuset.CPUSet `json:"-"`
	// MemTotalBytes and MemFreeBytes come from nodeN/meminfo. Units: bytes.
	MemTotalBytes uint64 `json:"mem_total_bytes"`
	MemFreeBytes  uint64 `json:"mem_free_bytes"`
	// Distances is nodeN/distance keyed by the other node's ID.
	Distances map[int]int `json:"distances"`
}

// MemoryBlock is one hot-pluggable memory block (memoryN) of
// /sys/devices/system/memory.
type MemoryBlock struct {
	// Index is N in memoryN (phys_index, in units of the block size).
	Index int `json:"index"`
	// NUMANode is the node the block belongs to (nodeK link), -1 if unknown.
	NUMANode int `json:"numa_node"`
	// State is "online", "offline" or "going-offline".
	State string `json:"state"`
	// ValidZones lists the zones the block may be onlined to, or its current
	// zone when online (e.g. "Normal", "Movable", "DMA32").
	ValidZones []string `json:"valid_zones"`
	// Removable is the removable flag (always true on kernels ≥ 5.17).
	Removable bool `json:"removable"`
}

// Topology is the node model: CPUs, cores, sockets and NUMA nodes.
// A Topology is a value; build it with the sysfs reader or by hand in tests
// and do not modify it after it is shared.
type Topology struct {
	// CPUs lists every CPU the kernel has a cpuN directory for (online or
	// not), ascending ID. Not every possible CPU has one (A64FX: 0-1, 12-59).
	CPUs []CPU `json:"cpus"`
	// Nodes lists the NUMA nodes with memory or CPUs, ascending ID.
	Nodes []NUMANode `json:"nodes"`
	// EmptyNodes lists the online NUMA nodes with neither CPUs nor memory,
	// ascending ID; they are not in Nodes. Grace-like machines have them
	// (nodes reserved for GPU or CXL memory that is not onlined).
	EmptyNodes []int `json:"empty_nodes,omitempty"`
	// MemoryBlockBytes is block_size_bytes. Units: bytes. 0 when unknown.
	MemoryBlockBytes uint64 `json:"memory_block_bytes"`
	// MemoryBlocks lists the memory blocks, ascending index.
	MemoryBlocks []MemoryBlock `json:"memory_blocks,omitempty"`
}

// CPU returns the CPU with the given ID.
func (t *Topology) CPU(id int) (CPU, bool) {
	i := sort.Search(len(t.CPUs), func(i int) bool { return t.CPUs[i].ID >= id })
	if i < len(t.CPUs) && t.CPUs[i].ID == id {
		return t.CPUs[i], true
	}
	return CPU{}, false
}

// Node returns the NUMA node with the given ID.
func (t *Topology) Node(id int) (NUMANode, bool) {
	for _, n := range t.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NUMANode{}, false
}

// NodeIDs returns the IDs of all NUMA nodes, ascending.
func (t *Topology) NodeIDs() []int {
	ids := make([]int, len(t.Nodes))
	for i, n := range t.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// AllCPUs returns every CPU in the model, online or not.
func (t *Topology) AllCPUs() cpuset.CPUSet {
	ids := make([]int, len(t.CPUs))
	for i, c := range t.CPUs {
		ids[i] = c.ID
	}
	return cpuset.New(ids...)
}

// OnlineCPUs returns the CPUs Linux runs on now.
func (t *Topology) OnlineCPUs() cpuset.CPUSet {
	return t.filter(func(c CPU) bool { return c.Online })
}

// OnlineOf returns the CPUs of s that Linux runs on now, without building
// the set of every online CPU: for a few CPUs (the OS cores) of a large
// node.
func (t *Topology) OnlineOf(s cpuset.CPUSet) cpuset.CPUSet {
	var ids []int
	for _, id := range s.List() {
		if c, ok := t.CPU(id); ok && c.Online {
			ids = append(ids, id)
		}
	}
	return cpuset.New(ids...)
}

// CPUsInNodes returns the CPUs (online or not) of the given NUMA nodes.
func (t *Topology) CPUsInNodes(nodes cpuset.CPUSet) cpuset.CPUSet {
	return t.filter(func(c CPU) bool { return nodes.Contains(c.NUMANode) })
}

// CPUsInCores returns the CPUs of the given cores (see CPU.Core).
func (t *Topology) CPUsInCores(cores cpuset.CPUSet) cpuset.CPUSet {
	return t.filter(func(c CPU) bool { return cores.Contains(c.Core) })
}

// CoreSiblings returns the CPUs that share a core with cpu, cpu included.
func (t *Topology) CoreSiblings(cpu int) cpuset.CPUSet {
	c, ok := t.CPU(cpu)
	if !ok {
		return cpuset.New()
	}
	if c.Core < 0 {
		return cpuset.New(cpu)
	}
	return t.CPUsInCores(cpuset.New(c.Core))
}

// NodesOfCPUs returns the NUMA nodes that hold the given CPUs.
func (t *Topology) NodesOfCPUs(cpus cpuset.CPUSet) cpuset.CPUSet {
	var ids []int
	for _, c := range t.CPUs {
		if cpus.Contains(c.ID) {
			ids = append(ids, c.NUMANode)
		}
	}
	return cpuset.New(ids...)
}

// Distance returns the distance between two NUMA nodes.
func (t *Topology) Distance(from, to int) (int, error) {
	n, ok := t.Node(from)
	if !ok {
		return 0, fmt.Errorf("numa node %d: not in topology", from)
	}
	d, ok := n.Distances[to]
	if !ok {
		return 0, fmt.Errorf("numa node %d: no distance to node %d", from, to)
	}
	return d, nil
}

func (t *Topology) filter(keep func(CPU) bool) cpuset.CPUSet {
	var ids []int
	for _, c := range t.CPUs {
		if keep(c) {
			ids = append(ids, c.ID)
		}
	}
	return cpuset.New(ids...)
}
