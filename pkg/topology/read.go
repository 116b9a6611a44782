package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
)

// Read builds the Topology from the sysfs tree below root ("" or "/" for
// the running machine). It only reads.
//
// How the kernel's files become the model:
//   - CPUs are the cpuN directories (the kernel's present CPUs). A CPU is
//     online per cpuN/online, or per cpu/online when that file is absent
//     (cpu0 on x86).
//   - Socket is physical_package_id and Core the lowest ID in
//     thread_siblings_list. The kernel removes topology/ while a CPU is
//     offline: such CPUs get Socket and Core -1.
//   - CPU.NUMANode is the cpuN/nodeK link (the kernel's cpu_to_node; it
//     survives offlining), else the lowest node whose cpulist holds the
//     CPU, else -1.
//   - NUMANode.CPUs is nodeN/cpulist plus the offline CPUs linked to the
//     node (x86 drops offline CPUs from cpulist). With numa=fake the
//     kernel lists a CPU in every emulated node carved from its physical
//     node, so cpulists overlap while cpu_to_node names only the first of
//     them; see NodeCPUs and NodesListingCPUs.
//   - Nodes are the nodeN directories with CPUs or memory, memory-only
//     nodes included; the others are EmptyNodes. Distances are keyed by node ID, pairing nodeN/distance
//     with node/online.
//   - Memory blocks come from /sys/devices/system/memory when it exists
//     (MemoryBlockBytes 0 and no blocks otherwise). A block's node is the
//     lowest memoryN/nodeK link, or the lowest nodeK/memoryN link.
func Read(root string) (*Topology, error) {
	return read(root, true)
}

// ReadLayout reads CPUs and NUMA nodes as Read does, but not the memory
// blocks, which planning does not need and which number in the thousands on
// large machines (MemoryBlockBytes is 0 and MemoryBlocks empty).
func ReadLayout(root string) (*Topology, error) {
	return read(root, false)
}

func read(root string, blocks bool) (*Topology, error) {
	f, err := sysfs.New(root)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	t := &Topology{}
	if err := readNodes(f, t); err != nil {
		return nil, fmt.Errorf("read topology from %s: %w", f.Root(), err)
	}
	if err := readCPUs(f, t); err != nil {
		return nil, fmt.Errorf("read topology from %s: %w", f.Root(), err)
	}
	if !blocks {
		return t, nil
	}
	if err := readMemory(f, t); err != nil {
		return nil, fmt.Errorf("read topology from %s: %w", f.Root(), err)
	}
	return t, nil
}

func readNodes(f sysfs.FS, t *Topology) error {
	ids, err := f.NodeIDs()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // kernel without NUMA support
	}
	if err != nil {
		return err
	}
	online, err := f.OnlineNodes()
	if err != nil {
		return err
	}
	onlineIDs := online.List()
	for _, id := range ids {
		cpus, err := f.NodeCPUList(id)
		if err != nil {
			return err
		}
		mi, err := f.NodeMemInfo(id)
		if err != nil {
			return err
		}
		if cpus.IsEmpty() && mi.TotalBytes == 0 {
			if online.Contains(id) {
				t.EmptyNodes = append(t.EmptyNodes, id)
			}
			continue
		}
		dist, err := f.NodeDistance(id)
		if err != nil {
			return err
		}
		if len(dist) != len(onlineIDs) {
			return fmt.Errorf("node%d/distance has %d entries, node/online lists %d nodes (%s)",
				id, len(dist), len(onlineIDs), online.String())
		}
		d := make(map[int]int, len(dist))
		for i, v := range dist {
			d[onlineIDs[i]] = v
		}
		t.Nodes = append(t.Nodes, NUMANode{
			ID: id, CPUs: cpus, MemTotalBytes: mi.TotalBytes, MemFreeBytes: mi.FreeBytes, Distances: d,
		})
	}
	return nil
}

func readCPUs(f sysfs.FS, t *Topology) error {
	ids, err := f.CPUIDs()
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fmt.Errorf("no cpuN directory in %s", f.Path(sysfs.CPUDir))
	}
	online, err := f.OnlineCPUs()
	if err != nil {
		return err
	}
	offlineByNode := map[int][]int{}
	for _, id := range ids {
		c := CPU{ID: id, Core: -1, Socket: -1, NUMANode: -1}
		on, ok, err := f.CPUOnline(id)
		if err != nil {
			return err
		}
		if !ok {
			on = online.Contains(id)
		}
		c.Online = on
		topo, ok, err := f.CPUTopology(id)
		if err != nil {
			return err
		}
		if ok {
			c.Socket = topo.PhysicalPackageID
			c.Core = topo.ThreadSiblings.List()[0]
		}
		node, ok, err := f.CPUNode(id)
		if err != nil {
			return err
		}
		if ok {
			c.NUMANode = node
		} else {
			for _, n := range t.Nodes { // ascending ID: lowest match wins
				if n.CPUs.Contains(id) {
					c.NUMANode = n.ID
					break
				}
			}
		}
		if !c.Online && c.NUMANode >= 0 {
			offlineByNode[c.NUMANode] = append(offlineByNode[c.NUMANode], id)
		}
		t.CPUs = append(t.CPUs, c)
	}
	for i := range t.Nodes {
		if off := offlineByNode[t.Nodes[i].ID]; len(off) > 0 {
			t.Nodes[i].CPUs = t.Nodes[i].CPUs.Union(cpuset.New(off...))
		}
	}
	return nil
}

func readMemory(f sysfs.FS, t *Topology) error {
	size, err := f.BlockSizeBytes()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no memory hotplug interface
	}
	if err != nil {
		return err
	}
	t.MemoryBlockBytes = size
	ids, err := f.MemoryBlockIDs()
	if err != nil {
		return err
	}
	// Fallback for blocks without a memoryN/nodeK link: nodeK/memoryN.
	nodeOf := map[int]int{}
	for i := len(t.Nodes) - 1; i >= 0; i-- { // descending so the lowest node wins
		blocks, err := f.NodeMemoryBlocks(t.Nodes[i].ID)
		if err != nil {
			return err
		}
		for _, b := range blocks {
			nodeOf[b] = t.Nodes[i].ID
		}
	}
	for _, id := range ids {
		b, err := f.MemoryBlock(id)
		if err != nil {
			return err
		}
		mb := MemoryBlock{Index: b.Index, NUMANode: -1, State: b.State, ValidZones: b.ValidZones, Removable: b.Removable}
		if len(b.Nodes) > 0 {
			mb.NUMANode = b.Nodes[0]
		} else if n, ok := nodeOf[id]; ok {
			mb.NUMANode = n
		}
		t.MemoryBlocks = append(t.MemoryBlocks, mb)
	}
	sort.Slice(t.MemoryBlocks, func(i, j int) bool { return t.MemoryBlocks[i].Index < t.MemoryBlocks[j].Index })
	return nil
}
