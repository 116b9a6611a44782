package topology

import "k8s.io/utils/cpuset"

// NodeCPUs returns the union of the given nodes' NUMANode.CPUs (the
// kernel's cpulists plus offline CPUs linked to the node).
//
// It differs from CPUsInNodes, which goes by CPU.NUMANode (cpu_to_node),
// when cpulists overlap: with numa=fake every emulated node lists all CPUs
// of its physical node, but cpu_to_node names only the first emulated node.
// On the paper's node, CPUsInNodes({2}) is empty while NodeCPUs({2}) is
// the CPUs of socket 0.
func (t *Topology) NodeCPUs(nodes cpuset.CPUSet) cpuset.CPUSet {
	out := cpuset.New()
	for _, n := range t.Nodes {
		if nodes.Contains(n.ID) {
			out = out.Union(n.CPUs)
		}
	}
	return out
}

// NodesListingCPUs returns the nodes whose NUMANode.CPUs hold any of cpus.
// With numa=fake these are all emulated nodes carved from the physical
// nodes of cpus, which NodesOfCPUs (by cpu_to_node) does not return.
func (t *Topology) NodesListingCPUs(cpus cpuset.CPUSet) cpuset.CPUSet {
	var ids []int
	for _, n := range t.Nodes {
		if !n.CPUs.Intersection(cpus).IsEmpty() {
			ids = append(ids, n.ID)
		}
	}
	return cpuset.New(ids...)
}

// MemoryNodes returns the nodes with memory (MemTotalBytes > 0).
func (t *Topology) MemoryNodes() cpuset.CPUSet {
	var ids []int
	for _, n := range t.Nodes {
		if n.MemTotalBytes > 0 {
			ids = append(ids, n.ID)
		}
	}
	return cpuset.New(ids...)
}

// MemoryBlocksOfNode returns the memory blocks that belong to a node,
// ascending index.
func (t *Topology) MemoryBlocksOfNode(node int) []MemoryBlock {
	var out []MemoryBlock
	for _, b := range t.MemoryBlocks {
		if b.NUMANode == node {
			out = append(out, b)
		}
	}
	return out
}
