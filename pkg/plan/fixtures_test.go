package plan

import (
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
			var free uint64
			for _, n := range topo.Nodes {
				if eligible.Contains(n.ID) {
					free += n.MemFreeBytes
				}
			}
			// (cores=1 with the default 90% of the job's memory would not fit
			// on one node under numa=strict, and says so: a real shortage.)
			for _, spec := range []string{"mck", "mck:cores=1,mem=1G", "mck:mem=50%,numa=near"} {
				t.Run(spec, func(t *testing.T) {
					in := Input{Topology: topo, Config: cfg, JobID: 1, Request: mustRequest(t, spec),
						Alloc: Allocation{CPUs: topo.AllCPUs(), MemoryBytes: free / 2}}
					p, err := Make(in)
					require.NoError(t, err)
					checkRules(t, in, p)
				})
			}
		})
	}
}

// checkRules asserts what every plan must satisfy.
func checkRules(t *testing.T, in Input, p *Plan) {
	t.Helper()
	cpus := p.CPUSet()
	require.Equal(t, len(p.CPUs), cpus.Size(), "no CPU twice")
	require.True(t, cpus.IsSubsetOf(in.Alloc.CPUs), "only the job's CPUs")
	require.True(t, cpus.Intersection(in.Config.OSCores).IsEmpty(), "never an OS core")
	require.True(t, cpus.IsSubsetOf(in.Topology.OnlineCPUs()), "never an offline CPU")
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
	for _, c := range p.Memory {
		require.Zero(t, c.Bytes%ihk.MemoryGranule, "granule")
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
	require.True(t, p.Proxy.CPUs.Equals(in.Config.OSCores))
	require.True(t, strings.Contains(p.Kargs, "hidos"))
}

// checkIKCMap: every LWK CPU is routed once, in plan order, to an online OS
// core, on its own NUMA node whenever that node has one.
func checkIKCMap(t *testing.T, in Input, p *Plan) {
	t.Helper()
	online := in.Config.OSCores.Intersection(in.Topology.OnlineCPUs())
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
