package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// coreGroup is one physical core's CPUs that the LWK may take.
type coreGroup struct {
	core  int
	node  int
	cpus  []int
	whole bool // every online sibling of the core is available
}

// pickCPUs chooses the LWK CPUs from the job's allocation and returns them in
// IHK assignment order.
//
// Usable CPUs are the job's CPUs minus OS cores, offline CPUs, CPUs IHK
// already holds and CPUs the driver cannot take (IDs from 512 up). With
// cores=N the accumulator takes, in order:
//  1. whole NUMA nodes (every online CPU of the node usable) that fit in N,
//     nodes that can hold the LWK memory first, then lowest node first;
//  2. whole cores, from nodes already taken first, then from nodes that can
//     hold the LWK memory, then from the node with the most usable whole
//     cores, lowest IDs breaking ties;
//  3. partial cores (single threads whose siblings are not the job's), in the
//     same node order.
//
// A node "can hold the LWK memory" when the memory its CPUs may use under
// the request's NUMA policy (its nearest tier under numa=strict, every
// eligible node under numa=near) has room for all of it. So a node without
// memory, or with too little, is not chosen while another node could meet
// the request; when no single node can, the order is the one above without
// that preference, and memory placement says what is short.
func pickCPUs(in Input) ([]int, error) {
	t := in.Topology
	job := in.Alloc.CPUs
	if job.IsEmpty() {
		return nil, fmt.Errorf("job has no cpus on this node: %w", ErrRequest)
	}
	unknown, offline := unknownAndOffline(t, job)
	if !unknown.IsEmpty() {
		return nil, fmt.Errorf("job cpus %s: cpus %s do not exist on this node (cpus %s)", job, unknown, t.AllCPUs())
	}
	// IHK cannot take CPUs the driver cannot number: on a node with more
	// CPUs than that, the rest stay Linux's.
	beyond := beyondDriver(job)
	nonOS := job.Difference(in.Config.OSCores)
	if !beyond.IsEmpty() {
		nonOS = nonOS.Difference(beyond)
	}
	usable := nonOS
	if !offline.IsEmpty() {
		usable = usable.Difference(offline)
	}
	if !in.Held.CPUs.IsEmpty() {
		usable = usable.Difference(in.Held.CPUs)
	}
	if usable.IsEmpty() && nonOS.IsEmpty() && !beyond.IsEmpty() {
		return nil, fmt.Errorf("job cpus %s: ihk can take only cpus 0-%d (SMP_MAX_CPUS): %w", job, driverMaxCPUs-1, ErrRequest)
	}
	// Offline CPUs, CPUs IHK still holds, or a job made only of OS cores
	// (slurm.conf's CpuSpecList and lwk.conf's OSCores disagree) are the
	// node's problem, not the request's: these errors do not wrap ErrRequest,
	// so the node is drained rather than the job cancelled.
	if usable.IsEmpty() {
		return nil, fmt.Errorf("job cpus %s: none usable for the lwk (os cores %s, offline %s, held by ihk %s)",
			job, in.Config.OSCores, offline, in.Held.CPUs.Intersection(job))
	}

	want := in.Request.Cores
	if want == 0 {
		return assignmentOrder(t, usable), nil
	}
	groups := coreGroups(t, usable)
	if want > len(groups) {
		err := fmt.Errorf("cores=%d: job has %d usable cores (cpus %s; per numa node: %s)",
			want, len(groups), usable, coresPerNode(groups))
		if len(coreGroups(t, nonOS.Difference(offline))) >= want {
			return nil, fmt.Errorf("%w; the rest are held by ihk %s", err, in.Held.CPUs.Intersection(job))
		}
		return nil, fmt.Errorf("%w: %w", err, ErrRequest)
	}

	onlineCPUs := t.OnlineCPUs() // built once: a set of every CPU of a large node is not free
	acc := accumulator{holds: memoryHolders(in)}
	anyHolds := len(acc.holds) > 0
	// Step 1: whole NUMA nodes, those that can hold the memory first.
	nodes := slices.Clone(t.Nodes)
	sort.SliceStable(nodes, func(i, j int) bool { return acc.holds[nodes[i].ID] && !acc.holds[nodes[j].ID] })
	for _, node := range nodes {
		online := node.CPUs.Intersection(onlineCPUs)
		if online.IsEmpty() || !online.IsSubsetOf(usable) {
			continue
		}
		// A node that cannot hold the memory is taken only beside one
		// that can, or when none can.
		if anyHolds && !acc.holds[node.ID] && !acc.hasHolder() {
			continue
		}
		var inNode []coreGroup
		for _, g := range groups {
			if g.node == node.ID {
				inNode = append(inNode, g)
			}
		}
		if len(inNode) <= want-acc.count() {
			acc.take(inNode...)
		}
	}
	// Steps 2 and 3: whole cores, then partial cores.
	// The order is recomputed after every take: taking a core on a new node
	// makes that node's other cores preferred.
	for _, wantWhole := range []bool{true, false} {
		for acc.count() < want {
			g, ok := acc.next(groups, wantWhole)
			if !ok {
				break
			}
			acc.take(g)
		}
	}
	return assignmentOrder(t, acc.cpus()), nil
}

// driverMaxCPUs is the IHK-SMP driver's SMP_MAX_CPUS: every CPU ID in a
// reserve or assign request must be below it (and a request holds at most
// that many), so CPUs from it up can never be LWK CPUs.
const driverMaxCPUs = 512

// beyondDriver returns the CPUs of s the driver cannot take.
func beyondDriver(s cpuset.CPUSet) cpuset.CPUSet {
	var ids []int
	for _, id := range s.UnsortedList() {
		if id >= driverMaxCPUs {
			ids = append(ids, id)
		}
	}
	return cpuset.New(ids...)
}

// unknownAndOffline returns the CPUs of s the node does not have, and those
// it has offline, without building the set of all the node's CPUs.
func unknownAndOffline(t *topology.Topology, s cpuset.CPUSet) (unknown, offline cpuset.CPUSet) {
	var u, o []int
	for _, id := range s.UnsortedList() {
		switch c, ok := t.CPU(id); {
		case !ok:
			u = append(u, id)
		case !c.Online:
			o = append(o, id)
		}
	}
	return cpuset.New(u...), cpuset.New(o...)
}

// coreGroups groups usable CPUs by core, ascending core ID. A group is
// whole when it holds every online thread of its core.
func coreGroups(t *topology.Topology, usable cpuset.CPUSet) []coreGroup {
	onlineThreads := map[int]int{}
	byCore := map[int]*coreGroup{}
	for _, c := range t.CPUs {
		if !c.Online {
			continue
		}
		onlineThreads[c.Core]++
		if !usable.Contains(c.ID) {
			continue
		}
		g, ok := byCore[c.Core]
		if !ok {
			g = &coreGroup{core: c.Core, node: c.NUMANode}
			byCore[c.Core] = g
		}
		g.cpus = append(g.cpus, c.ID)
	}
	out := make([]coreGroup, 0, len(byCore))
	for _, core := range sortedNodes(byCore) {
		g := byCore[core]
		g.whole = len(g.cpus) == onlineThreads[core]
		out = append(out, *g)
	}
	return out
}

// coresPerNode formats the whole and partial core counts per NUMA node,
// e.g. "0: 3 whole, 1 partial; 1: 4 whole".
func coresPerNode(groups []coreGroup) string {
	whole, partial := map[int]int{}, map[int]int{}
	for _, g := range groups {
		if g.whole {
			whole[g.node]++
		} else {
			partial[g.node]++
		}
	}
	seen := map[int]bool{}
	for n := range whole {
		seen[n] = true
	}
	for n := range partial {
		seen[n] = true
	}
	var parts []string
	for _, n := range sortedNodes(seen) {
		p := fmt.Sprintf("%d: %d whole", n, whole[n])
		if partial[n] > 0 {
			p += fmt.Sprintf(", %d partial", partial[n])
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// memoryHolders returns the NUMA nodes whose CPUs could take all the LWK
// memory under the request's policy (see pickCPUs). It is empty when the
// memory request or the node split is in error: placeMemory reports that.
func memoryHolders(in Input) map[int]bool {
	total, err := lwkMemoryBytes(in)
	if err != nil {
		return nil
	}
	eligible, err := eligibleNodes(in)
	if err != nil {
		return nil
	}
	t := in.Topology
	avail := availableBytes(t, eligible, in.Config.LWKMemoryHeadroomPercent)
	unsplit := in.Config.JobNUMANodes.IsEmpty()
	holds := map[int]bool{}
	for _, n := range t.Nodes {
		reach := rankByDistance(t, n.ID, eligible)
		if in.Request.NUMA != lwkmode.NUMANear {
			reach = nearestTier(t, n.ID, reach, unsplit)
		}
		var sum uint64
		for _, m := range reach {
			sum += avail[m]
		}
		if sum >= total {
			holds[n.ID] = true
		}
	}
	return holds
}

// accumulator collects the chosen cores.
type accumulator struct {
	taken []coreGroup
	seen  map[int]bool
	// holds are the nodes that can hold the LWK memory (memoryHolders).
	holds map[int]bool
}

// hasHolder reports whether a taken core is on a node that can hold the
// LWK memory.
func (a *accumulator) hasHolder() bool {
	for _, g := range a.taken {
		if a.holds[g.node] {
			return true
		}
	}
	return false
}

func (a *accumulator) count() int { return len(a.taken) }

func (a *accumulator) take(gs ...coreGroup) {
	if a.seen == nil {
		a.seen = map[int]bool{}
	}
	for _, g := range gs {
		if !a.seen[g.core] {
			a.seen[g.core] = true
			a.taken = append(a.taken, g)
		}
	}
}

func (a *accumulator) cpus() cpuset.CPUSet {
	var ids []int
	for _, g := range a.taken {
		ids = append(ids, g.cpus...)
	}
	return cpuset.New(ids...)
}

// next returns the untaken group with the given wholeness to take next:
// one on a node already used first, then on a node that can hold the LWK
// memory, then on the node with the most such groups, then the lowest node
// ID and core ID. False when none is left.
func (a *accumulator) next(groups []coreGroup, whole bool) (coreGroup, bool) {
	used := map[int]bool{}
	for _, g := range a.taken {
		used[g.node] = true
	}
	perNode := map[int]int{}
	for _, g := range groups {
		if g.whole == whole && !a.seen[g.core] {
			perNode[g.node]++
		}
	}
	before := func(x, y coreGroup) bool {
		if used[x.node] != used[y.node] {
			return used[x.node]
		}
		if a.holds[x.node] != a.holds[y.node] {
			return a.holds[x.node]
		}
		if perNode[x.node] != perNode[y.node] {
			return perNode[x.node] > perNode[y.node]
		}
		if x.node != y.node {
			return x.node < y.node
		}
		return x.core < y.core
	}
	var best coreGroup
	found := false
	for _, g := range groups {
		if g.whole == whole && !a.seen[g.core] && (!found || before(g, best)) {
			best, found = g, true
		}
	}
	return best, found
}

// assignmentOrder orders CPUs as IHK will number them: grouped by NUMA node
// (ascending), ascending ID within a node.
func assignmentOrder(t *topology.Topology, cpus cpuset.CPUSet) []int {
	ids := cpus.List()
	sort.SliceStable(ids, func(i, j int) bool {
		a, _ := t.CPU(ids[i])
		b, _ := t.CPU(ids[j])
		if a.NUMANode != b.NUMANode {
			return a.NUMANode < b.NUMANode
		}
		return a.ID < b.ID
	})
	return ids
}
