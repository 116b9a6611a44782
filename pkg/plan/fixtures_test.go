package plan

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// fixtureNode is how each machine fixture is used in a realistic lwk.conf:
// its OS cores, its system/job NUMA split (if any) and the job's share.
var fixtureNode = map[string]struct {
	osCores, system, job string
}{
	// The paper: OS cores CPU0-1, nodes 0-1 for the system, 2-11 for jobs.
	"paper-e5520-fake12": {osCores: "0-1", system: "0-1", job: "2-11"},
	// Fugaku: the assistant cores run the system; HBM nodes 4-7 hold the CMGs' memory.
	"a64fx-fugaku": {osCores: "0-1", system: "0-3", job: "4-7"},
	"xeon-2s-ht":   {osCores: "0,32"},
	"epyc-nps4":    {osCores: "0,64"},
	"offline-cpus": {osCores: "0"},
	"this-host":    {osCores: "0"},
}

func TestEveryFixturePlansWithinTheRules(t *testing.T) {
	for _, name := range fixture.Names() {
		t.Run(name, func(t *testing.T) {
			node, ok := fixtureNode[name]
			require.True(t, ok, "fixture %s has no row in fixtureNode: add one", name)
			topo, err := topology.Read(fixture.Root(t, name))
			require.NoError(t, err)
			conf := fmt.Sprintf("IHKBackend=ihk\nOSCores=%s\n", node.osCores)
			if node.system != "" {
				conf += fmt.Sprintf("SystemNUMANodes=%s\nJobNUMANodes=%s\n", node.system, node.job)
			}
			conf += `Profile=mck Image=/opt/mck.img Kargs="hidos"` + "\n"
			cfg, err := config.Parse(strings.NewReader(conf), "lwk.conf")
			require.NoError(t, err)

			// The job holds every CPU; its memory is half of what the
			// eligible nodes have free.
			eligible, err := eligibleNodes(Input{Topology: topo, Config: cfg})
			require.NoError(t, err)
			// Each layout is also planned with its first eligible node
			// nearly full (less than one granule free) and empty: such a
			// node must not get a chunk the driver refuses.
			for _, variant := range []struct {
				name string
				free uint64
			}{{"as captured", 0}, {"first job node at 2 MiB free", 2 * mib}, {"first job node empty", 1}} {
				t.Run(variant.name, func(t *testing.T) {
					if variant.free != 0 && eligible.Size() < 2 {
						t.Skip("one eligible node: emptying it leaves nothing to plan")
					}
					topo := nearlyFull(topo, eligible.List()[0], variant.free)
					var free uint64
					for _, n := range topo.Nodes {
						if eligible.Contains(n.ID) {
							free += n.MemFreeBytes
						}
					}
					// (cores=1 with the default 90% of the job's memory would
					// not fit on one node under numa=strict, and says so: a
					// real shortage.)
					for _, spec := range []string{"mck", "mck:cores=1,mem=1G", "mck:mem=50%,numa=near", "mck:mem=64M,numa=near"} {
						t.Run(spec, func(t *testing.T) {
							in := Input{Topology: topo, Config: cfg, JobID: 1, Request: mustRequest(t, spec),
								Alloc: Allocation{CPUs: topo.AllCPUs(), MemoryBytes: free / 2}}
							p, err := Make(in)
							var short *ShortError
							if errors.As(err, &short) && variant.free != 0 {
								// Taking a node's memory away may leave a
								// strict request short; that is a refusal,
								// not a bad plan.
								return
							}
							require.NoError(t, err)
							checkRules(t, in, p)
						})
					}
				})
			}
		})
	}
}

// nearlyFull returns a copy of t with node's MemFree set to free bytes
// (1 meaning none at all); free 0 returns t unchanged.
func nearlyFull(t *topology.Topology, node int, free uint64) *topology.Topology {
	if free == 0 {
		return t
	}
	if free == 1 {
		free = 0
	}
	c := *t
	c.Nodes = append([]topology.NUMANode(nil), t.Nodes...)
	for i := range c.Nodes {
		if c.Nodes[i].ID == node {
			c.Nodes[i].MemFreeBytes = free
		}
	}
	return &c
}

// checkRules asserts what every plan must satisfy.
func checkRules(t *testing.T, in Input, p *Plan) {
	t.Helper()
	cpus := p.CPUSet()
	require.Equal(t, len(p.CPUs), cpus.Size(), "no CPU twice")
	require.True(t, cpus.IsSubsetOf(in.Alloc.CPUs), "only the job's CPUs")
	require.True(t, cpus.Intersection(in.Config.OSCores).IsEmpty(), "never an OS core")
	require.True(t, cpus.IsSubsetOf(in.Topology.OnlineCPUs()), "never an offline CPU")
	require.True(t, beyondDriver(cpus).IsEmpty(), "never a CPU the driver cannot number: %s", cpus)
	require.LessOrEqual(t, cpus.Size(), driverMaxCPUs, "never more CPUs than one request holds")
	if in.Request.Cores > 0 {
		cores := map[int]bool{}
		for _, id := range p.CPUs {
			c, _ := in.Topology.CPU(id)
			cores[c.Core] = true
		}
		require.Len(t, cores, in.Request.Cores)
	}
	// Grouped by NUMA node, ascending IDs within a node.
	for i := 1; i < len(p.CPUs); i++ {
		a, _ := in.Topology.CPU(p.CPUs[i-1])
		b, _ := in.Topology.CPU(p.CPUs[i])
		require.True(t, a.NUMANode < b.NUMANode || (a.NUMANode == b.NUMANode && a.ID < b.ID), "order %v", p.CPUs)
	}
	eligible, err := eligibleNodes(in)
	require.NoError(t, err)
	var total uint64
	seen := map[int]bool{}
	for _, c := range p.Memory {
		// RESERVE_MEM refuses a size that is zero or not a multiple of
		// the granule, and one chunk per node is the plan's form.
		require.NotZero(t, c.Bytes, "zero-byte chunk on node %d: %v", c.NUMANode, p.Memory)
		require.Zero(t, c.Bytes%ihk.MemoryGranule, "granule")
		require.False(t, seen[c.NUMANode], "node %d twice: %v", c.NUMANode, p.Memory)
		seen[c.NUMANode] = true
		require.True(t, eligible.Contains(c.NUMANode), "memory on node %d, eligible %s", c.NUMANode, eligible)
		n, _ := in.Topology.Node(c.NUMANode)
		require.LessOrEqual(t, c.Bytes, n.MemFreeBytes, "never more than free on node %d", c.NUMANode)
		require.LessOrEqual(t, c.Bytes, n.MemFreeBytes-percentOf(n.MemFreeBytes, in.Config.LWKMemoryHeadroomPercent),
			"the headroom stays free on node %d", c.NUMANode)
		if c.NUMANode == 0 {
			require.LessOrEqual(t, c.Bytes, percentOf(n.MemFreeBytes, 95), "IHK takes at most 95%% of node 0")
		}
		total += c.Bytes
	}
	checkIKCMap(t, in, p)
	checkLWKNUMA(t, in, p)
	want, err := lwkMemoryBytes(in)
	require.NoError(t, err)
	require.Equal(t, want, total, "all the LWK memory is placed")
	online := in.Config.OSCores.Intersection(in.Topology.OnlineCPUs())
	require.True(t, p.Proxy.CPUs.Equals(online), "proxies on the online OS cores %s, got %s", online, p.Proxy.CPUs)
	require.Equal(t, p.Proxy.CPUPeriodUS*int64(online.Size())*int64(in.Config.ProxyCPUPercent)/100, p.Proxy.CPUQuotaUS,
		"quota counts only online OS cores")
	require.True(t, strings.Contains(p.Kargs, "hidos"))
}

// checkIKCMap: every LWK CPU is routed once, in plan order, to an online OS
// core the driver can number, on its own NUMA node whenever that node has
// one.
func checkIKCMap(t *testing.T, in Input, p *Plan) {
	t.Helper()
	online := in.Config.OSCores.Intersection(in.Topology.OnlineCPUs()).Difference(beyondDriver(in.Config.OSCores))
	if online.IsEmpty() {
		require.Empty(t, p.IKCMap)
		return
	}
	require.Len(t, p.IKCMap, len(p.CPUs))
	nodesWithCores := map[int]bool{}
	for _, c := range online.List() {
		cpu, _ := in.Topology.CPU(c)
		nodesWithCores[cpu.NUMANode] = true
	}
	for i, r := range p.IKCMap {
		require.Equal(t, p.CPUs[i], r.CPU, "routes follow the LWK CPU order")
		require.True(t, online.Contains(r.Target), "route %+v: target is not an online OS core", r)
		src, _ := in.Topology.CPU(r.CPU)
		dst, _ := in.Topology.CPU(r.Target)
		if nodesWithCores[src.NUMANode] {
			require.Equal(t, src.NUMANode, dst.NUMANode, "route %+v leaves a node that has OS cores", r)
		}
	}
}

// checkLWKNUMA: the LWK numbers exactly the nodes holding LWK CPUs or LWK
// memory, packed in ascending Linux order.
func checkLWKNUMA(t *testing.T, in Input, p *Plan) {
	t.Helper()
	used := map[int]bool{}
	for _, c := range p.CPUs {
		cpu, _ := in.Topology.CPU(c)
		used[cpu.NUMANode] = true
	}
	for _, m := range p.Memory {
		if m.Bytes > 0 {
			used[m.NUMANode] = true
		}
	}
	require.Len(t, p.LWKNUMA, len(used))
	for i, id := range p.LWKNUMA {
		require.True(t, used[id.Linux], "node %d holds nothing of the LWK", id.Linux)
		require.Equal(t, i, id.LWK)
		if i > 0 {
			require.Less(t, p.LWKNUMA[i-1].Linux, id.Linux)
		}
	}
}

// TestNearlyFullNodeGetsNoChunk is the reproduction from the paper's node:
// job node 2 with 2048 kB free (less than one granule) got a 0-byte entry,
// which RESERVE_MEM refuses ("size not a multiple of 4194304"), draining
// the node. The same with a memory-less node under numa=near.
func TestNearlyFullNodeGetsNoChunk(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader("IHKBackend=ihk\nOSCores=0-1\nSystemNUMANodes=0-1\nJobNUMANodes=2-11\n"+
		`Profile=mck Image=/opt/mck.img Kargs="hidos"`+"\n"), "lwk.conf")
	require.NoError(t, err)
	tests := []struct {
		name     string
		node     int
		freeByte uint64
		spec     string
	}{
		{name: "node 2 at 2048 kB free", node: 2, freeByte: 2048 << 10, spec: "mck:mem=2G"},
		{name: "node 2 at 2048 kB free, near", node: 2, freeByte: 2048 << 10, spec: "mck:mem=2G,numa=near"},
		{name: "node 2 without memory, near", node: 2, freeByte: 0, spec: "mck:mem=2G,numa=near"},
		{name: "node 3 at 4 MiB less one page", node: 3, freeByte: 4<<20 - 4096, spec: "mck:mem=6G,numa=near"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := fixture.Topology("paper-e5520-fake12")
			for i := range topo.Nodes {
				if topo.Nodes[i].ID == tc.node {
					topo.Nodes[i].MemFreeBytes = tc.freeByte
				}
			}
			in := Input{Topology: topo, Config: cfg, JobID: 1, Request: mustRequest(t, tc.spec),
				Alloc: Allocation{CPUs: mustParse(t, "2-15"), MemoryBytes: 10 * gib}}
			p, err := Make(in)
			require.NoError(t, err)
			for _, c := range p.Memory {
				require.NotEqual(t, tc.node, c.NUMANode, "plan %v has a chunk on the node without a granule free", p.Memory)
			}
			checkRules(t, in, p)
		})
	}
}
