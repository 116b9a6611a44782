package plan

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

const granule = ihk.MemoryGranule

// lwkMemoryBytes is the LWK's total memory: mem= as bytes or a share of the
// job's memory, else the node's default share; rounded down to the granule.
// Its errors name what was asked: the mem= value, or the share and the job
// memory it was taken of.
func lwkMemoryBytes(in Input) (uint64, error) {
	job := in.Alloc.MemoryBytes
	req := in.Request.Memory
	var want uint64
	var asked string
	switch {
	case req.Bytes > 0:
		want = req.Bytes
		asked = "mem=" + FormatBytes(want)
	case req.Percent > 0:
		want = percentOf(job, req.Percent)
		asked = fmt.Sprintf("mem=%d%% of the job's %s on this node (%s)", req.Percent, FormatBytes(job), FormatBytes(want))
	default:
		want = percentOf(job, in.Config.LWKMemoryPercent)
		asked = fmt.Sprintf("the default LWKMemoryShare=%d%% of the job's %s on this node (%s)",
			in.Config.LWKMemoryPercent, FormatBytes(job), FormatBytes(want))
	}
	if want > job {
		return 0, fmt.Errorf("%s: more than the job's memory on this node (%s): %w", asked, FormatBytes(job), ErrRequest)
	}
	want -= want % granule
	if want == 0 {
		return 0, fmt.Errorf("lwk memory %s: less than %s, the unit IHK reserves memory in: %w",
			asked, FormatBytes(granule), ErrRequest)
	}
	return want, nil
}

// percentOf is pct% of b without overflowing for any b.
func percentOf(b uint64, pct int) uint64 {
	p := uint64(pct)
	return b/100*p + b%100*p/100
}

// placeMemory spreads the LWK memory over NUMA nodes.
//
// Each NUMA node holding LWK CPUs (a source) asks for a share of the total in
// proportion to its LWK CPUs. A source's targets are the eligible nodes
// ranked by distance from it (lowest ID breaking ties): on a split node the
// job NUMA nodes, otherwise every node. Under numa=strict a source may only
// use its nearest tier — itself on an unsplit node, the job nodes at the
// minimum distance on a split node — and what one source cannot place spills
// to the other sources' tiers; under numa=near it continues to farther
// eligible nodes. Each node gives at most its free memory, less what IHK
// holds there, in whole granules.
func placeMemory(in Input, cpus []int, policy lwkmode.NUMAPolicy) ([]ihk.MemChunk, error) {
	total, err := lwkMemoryBytes(in)
	if err != nil {
		return nil, err
	}
	t := in.Topology
	eligible, err := eligibleNodes(in)
	if err != nil {
		return nil, err
	}
	avail := availableBytes(t, eligible, in.Config.LWKMemoryHeadroomPercent)

	sources, shares := sourceShares(t, cpus, total)
	tiers := map[int][]int{} // source → its allowed targets, nearest first
	pool := map[int]bool{}   // under strict: the union of the tiers
	for _, s := range sources {
		ranked := rankByDistance(t, s, eligible)
		if policy == lwkmode.NUMAStrict {
			ranked = nearestTier(t, s, ranked, in.Config.JobNUMANodes.IsEmpty())
			for _, n := range ranked {
				pool[n] = true
			}
		}
		tiers[s] = ranked
	}

	got := map[int]uint64{}
	short := uint64(0)
	for _, s := range sources {
		need := shares[s]
		need -= takeFrom(tiers[s], avail, got, need)
		if need > 0 && policy == lwkmode.NUMAStrict {
			// Spill into the other sources' tiers, nearest first.
			var others []int
			for _, n := range rankByDistance(t, s, eligible) {
				if pool[n] {
					others = append(others, n)
				}
			}
			need -= takeFrom(others, avail, got, need)
		}
		short += need
	}
	if short > 0 {
		return nil, shortError(in, t, total, short, sources, tiers, eligible, policy)
	}
	out := make([]ihk.MemChunk, 0, len(got))
	for _, n := range sortedNodes(got) {
		out = append(out, ihk.MemChunk{NUMANode: n, Bytes: got[n]})
	}
	return out, nil
}

// eligibleNodes returns the nodes LWK memory may come from: the job NUMA
// nodes on a split node, otherwise every node that is not a system node;
// in both cases only nodes with memory. Job NUMA nodes that are online but
// hold neither CPUs nor memory (Grace-like machines list such nodes for
// GPU or CXL memory) give nothing and are not an error; job NUMA nodes the
// kernel does not have are.
func eligibleNodes(in Input) (cpuset.CPUSet, error) {
	t := in.Topology
	all := cpuset.New(t.NodeIDs()...)
	withMemory := t.MemoryNodes()
	if in.Config.JobNUMANodes.IsEmpty() {
		return all.Difference(in.Config.SystemNUMANodes).Intersection(withMemory), nil
	}
	job := in.Config.JobNUMANodes
	empty := cpuset.New(t.EmptyNodes...)
	if missing := job.Difference(all).Difference(empty); !missing.IsEmpty() {
		return cpuset.CPUSet{}, fmt.Errorf("job numa nodes %s: nodes %s do not exist (online nodes with cpus or memory: %s; without either: %s)",
			job, missing, all, emptyList(empty))
	}
	eligible := job.Intersection(withMemory)
	if eligible.IsEmpty() {
		return cpuset.CPUSet{}, fmt.Errorf("job numa nodes %s: none has memory (online without cpus or memory: %s; nodes with memory: %s)",
			job, emptyList(job.Intersection(empty)), withMemory)
	}
	return eligible, nil
}

// emptyList prints a set, or "none" when it is empty.
func emptyList(s cpuset.CPUSet) string {
	if s.IsEmpty() {
		return "none"
	}
	return s.String()
}

// availableBytes is what the planner may reserve on each eligible node: its
// free memory (IHK's holdings already left out) less the headroom
// (headroomPct of MemFree, left to Linux: the zone watermarks and fragmented
// blocks that IHK's 4 MiB chunks cannot use are part of MemFree), capped on
// node 0 at the 95% of its free memory that IHK's RESERVE_MEM takes at most;
// rounded down to the granule.
func availableBytes(t *topology.Topology, eligible cpuset.CPUSet, headroomPct int) map[int]uint64 {
	avail := map[int]uint64{}
	for _, n := range t.Nodes {
		if !eligible.Contains(n.ID) {
			continue
		}
		free := n.MemFreeBytes
		free -= min(free, max(percentOf(n.MemFreeBytes, headroomPct), driverKeepsBytes(n.ID, n.MemFreeBytes)))
		avail[n.ID] = free - free%granule
	}
	return avail
}

// driverKeepsBytes is what IHK's RESERVE_MEM never takes from a node: 5% of
// node 0's free memory (ihk linux/driver/smp/smp-driver.c, the
// reservation loop), nothing elsewhere.
func driverKeepsBytes(node int, free uint64) uint64 {
	if node != 0 {
		return 0
	}
	return free - percentOf(free, 95)
}

// sourceShares splits total over the NUMA nodes of the LWK CPUs in
// proportion to their CPU counts, in granules. Leftover granules go to the
// sources with the most CPUs, lowest ID first.
func sourceShares(t *topology.Topology, cpus []int, total uint64) ([]int, map[int]uint64) {
	count := map[int]uint64{}
	for _, id := range cpus {
		c, _ := t.CPU(id)
		count[c.NUMANode]++
	}
	sources := sortedNodes(count)
	granules := total / granule
	shares := map[int]uint64{}
	var given uint64
	for _, s := range sources {
		g := granules * count[s] / uint64(len(cpus))
		shares[s] = g * granule
		given += g
	}
	byWeight := append([]int(nil), sources...)
	sort.SliceStable(byWeight, func(i, j int) bool { return count[byWeight[i]] > count[byWeight[j]] })
	for i := 0; given < granules; i++ {
		shares[byWeight[i%len(byWeight)]] += granule
		given++
	}
	return sources, shares
}

// rankByDistance orders the candidate nodes by distance from src, lowest ID
// breaking ties. Nodes without a distance entry rank last.
func rankByDistance(t *topology.Topology, src int, candidates cpuset.CPUSet) []int {
	ids := candidates.List()
	var row map[int]int
	if n, ok := t.Node(src); ok {
		row = n.Distances
	}
	dist := make(map[int]int, len(ids))
	for _, id := range ids {
		d, ok := row[id]
		if !ok {
			d = int(^uint(0) >> 1)
		}
		dist[id] = d
	}
	sort.SliceStable(ids, func(i, j int) bool { return dist[ids[i]] < dist[ids[j]] })
	return ids
}

// nearestTier keeps what numa=strict allows a source: itself on an unsplit
// node, else the ranked nodes at the minimum distance.
func nearestTier(t *topology.Topology, src int, ranked []int, unsplit bool) []int {
	if unsplit {
		for _, n := range ranked {
			if n == src {
				return []int{n}
			}
		}
		return nil
	}
	if len(ranked) == 0 {
		return nil
	}
	first, _ := t.Distance(src, ranked[0])
	var tier []int
	for _, n := range ranked {
		if d, _ := t.Distance(src, n); d == first {
			tier = append(tier, n)
		}
	}
	return tier
}

// takeFrom takes up to need bytes from the nodes in order and returns what
// it took. Only nodes that give something get an entry in got.
func takeFrom(nodes []int, avail, got map[int]uint64, need uint64) uint64 {
	var took uint64
	for _, n := range nodes {
		if took == need {
			break
		}
		x := min(avail[n], need-took)
		if x == 0 {
			// A node with less than a granule free gives nothing and
			// must not appear in the plan: RESERVE_MEM refuses size 0.
			continue
		}
		avail[n] -= x
		got[n] += x
		took += x
	}
	return took
}

// ShortError reports LWK memory that could not be placed.
type ShortError struct {
	JobID uint32
	// WantBytes is the LWK memory asked for, ShortBytes what was missing.
	WantBytes, ShortBytes uint64
	// Sources are the NUMA nodes of the LWK CPUs.
	Sources []int
	// Targets are the nodes the policy allowed; FreeBytes their free memory
	// before planning.
	Targets   []int
	FreeBytes map[int]uint64
	Policy    lwkmode.NUMAPolicy
}

func (e *ShortError) Error() string {
	var free uint64
	var per []string
	for _, n := range e.Targets {
		free += e.FreeBytes[n]
		per = append(per, fmt.Sprintf("%d:%s", n, FormatBytes(e.FreeBytes[n])))
	}
	s := fmt.Sprintf("lwk memory %s for cpus on numa nodes %s (numa=%s): available %s on nodes %s (%s), short by %s",
		FormatBytes(e.WantBytes), cpuset.New(e.Sources...), e.Policy, FormatBytes(free),
		cpuset.New(e.Targets...), strings.Join(per, " "), FormatBytes(e.ShortBytes))
	if e.Policy == lwkmode.NUMAStrict {
		s += "; numa=near may use farther nodes"
	}
	return s
}

// Unwrap marks a shortage as a request error.
func (e *ShortError) Unwrap() error { return ErrRequest }

func shortError(in Input, t *topology.Topology, total, short uint64, sources []int, tiers map[int][]int,
	eligible cpuset.CPUSet, policy lwkmode.NUMAPolicy) error {
	targets := map[int]bool{}
	for _, s := range sources {
		for _, n := range tiers[s] {
			targets[n] = true
		}
	}
	before := availableBytes(t, eligible, in.Config.LWKMemoryHeadroomPercent)
	e := &ShortError{JobID: in.JobID, WantBytes: total, ShortBytes: short, Sources: sources,
		Targets: sortedNodes(targets), FreeBytes: before, Policy: policy}
	return e
}

// FormatBytes prints a size with the largest binary unit that keeps one
// decimal, e.g. "9 GiB", "990.5 MiB".
func FormatBytes(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v := float64(b)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[i]
}
