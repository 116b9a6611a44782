package plan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// paperInput is the paper node with its lwk.conf (OS cores 0-1, nodes 0-1
// for the system, 2-11 for jobs) and a job holding CPUs 2-15 and 10 GiB.
func paperInput(t *testing.T, spec, extraConf string) Input {
	t.Helper()
	topo, err := topology.ReadLayout(fixture.Root(t, "paper-e5520-fake12"))
	require.NoError(t, err)
	cfg, err := config.Parse(strings.NewReader(`IHKBackend=ihk
OSCores=0-1
SystemNUMANodes=0-1
JobNUMANodes=2-11
Profile=mck Image=/opt/mck.img Kargs=hidos
`+extraConf), "lwk.conf")
	require.NoError(t, err)
	return Input{Topology: topo, Config: cfg, JobID: 7, Request: mustRequest(t, spec),
		Alloc: Allocation{CPUs: mustParse(t, "2-15"), MemoryBytes: 10 * gib}}
}

// setFree changes one node's MemFree in a copy of the topology.
func setFree(in Input, node int, bytes uint64) Input {
	topo := *in.Topology
	topo.Nodes = append([]topology.NUMANode(nil), topo.Nodes...)
	for i := range topo.Nodes {
		if topo.Nodes[i].ID == node {
			topo.Nodes[i].MemFreeBytes = bytes
		}
	}
	in.Topology = &topo
	return in
}

// TestIKCMapPaper: on the paper node the even CPUs (physical node 0) send
// their IKC interrupts to CPU 0 and the odd ones to CPU 1, as an admin
// would write mcreboot.sh -r "2,4,...:0+3,5,...:1". Without a map, IHK
// sends all of them to CPU 0.
func TestIKCMapPaper(t *testing.T) {
	in := paperInput(t, "mck", "")
	p, err := Make(in)
	require.NoError(t, err)
	require.Equal(t, "2,4,6,8,10,12,14:0+3,5,7,9,11,13,15:1", ihk.FormatIKCMap(p.IKCMap))
	checkRules(t, in, p)
}

func TestIKCMapShapes(t *testing.T) {
	tests := []struct {
		name    string
		m       machine
		osCores string
		cpus    string
		want    string
	}{
		// Node 1 has no OS core: its CPUs go to node 0's nearest (the only) one.
		{name: "node without os cores uses the nearest", m: twoNode, osCores: "0", cpus: "1-7", want: "1-7:0"},
		// Two OS cores on node 0 share its LWK CPUs and, node 1 having none,
		// node 1's too, round-robin in LWK order.
		{name: "round-robin over a node's os cores", m: twoNode, osCores: "0-1", cpus: "2-7", want: "2,4,6:0+3,5,7:1"},
		{name: "one os core per node", m: twoNode, osCores: "0,4", cpus: "1-3,5-7", want: "1-3:0+5-7:4"},
		// An offline OS core never receives interrupts.
		{name: "offline os core skipped", m: machine{nodes: twoNode.nodes, free: twoNode.free, group: twoNode.group, offline: "4"},
			osCores: "0,4", cpus: "1-3,5-7", want: "1-3,5-7:0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := tc.m.build(t)
			in := Input{Topology: topo, Config: mustConfig(t, ""), JobID: 1, Request: mustRequest(t, "mck:mem=1G,numa=near"),
				Alloc: Allocation{CPUs: mustParse(t, tc.cpus), MemoryBytes: 4 * gib}}
			in.Config.OSCores = mustParse(t, tc.osCores)
			p, err := Make(in)
			require.NoError(t, err)
			require.Equal(t, tc.want, ihk.FormatIKCMap(p.IKCMap))
			checkRules(t, in, p)
		})
	}
}

// TestLWKNUMANumbering: McKernel packs the Linux nodes that hold LWK CPUs or
// memory. The paper's default plan keeps the numbers equal; when a full job
// node is skipped they differ, and the plan says how.
func TestLWKNUMANumbering(t *testing.T) {
	in := paperInput(t, "mck:mem=2G", "")
	p, err := Make(in)
	require.NoError(t, err)
	require.True(t, p.NUMAIdentical(), "paper plan %s", FormatNUMAMap(p.LWKNUMA))
	require.Equal(t, "0:0,1:1,2:2,3:3,4:4,5:5", FormatNUMAMap(p.LWKNUMA))

	// Node 3 (the odd CPUs' nearest job node) is full: their memory comes
	// from 5 and 7, so Linux 4, 5, 7 become LWK 3, 4, 5.
	in = setFree(in, 3, 2*mib)
	p, err = Make(in)
	require.NoError(t, err)
	require.False(t, p.NUMAIdentical())
	require.Equal(t, "0:0,1:1,2:2,4:3,5:4,7:5", FormatNUMAMap(p.LWKNUMA))
	var out strings.Builder
	require.NoError(t, p.Format(&out))
	require.Contains(t, out.String(), "lwk numa:   0:0,1:1,2:2,4:3,5:4,7:5 (linux:lwk); the LWK numbers nodes differently from Linux")
}

// TestHeadroom: a plan never asks IHK for nearly all of a node's MemFree
// (part of it is below the watermarks or too fragmented for 4 MiB chunks),
// and never for more than the 95% of node 0 that RESERVE_MEM takes at most.
func TestHeadroom(t *testing.T) {
	tests := []struct {
		name     string
		conf     string
		spec     string
		maxShare map[int]uint64 // node → most it may give, in percent of MemFree
	}{
		{name: "default 2%", spec: "mck:mem=90%,numa=near", maxShare: map[int]uint64{2: 98, 3: 98, 4: 98, 5: 98}},
		{name: "configured 10%", conf: "LWKMemoryHeadroom=10%\n", spec: "mck:mem=3G,numa=near", maxShare: map[int]uint64{2: 90, 3: 90, 4: 90, 5: 90}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := split.build(t)
			cfg, err := config.Parse(strings.NewReader("IHKBackend=sim\nOSCores=0\nSystemNUMANodes=0-1\nJobNUMANodes=2-5\n"+
				tc.conf+"Profile=mck Image=/k.img Kargs=hidos\n"), "lwk.conf")
			require.NoError(t, err)
			in := Input{Topology: topo, Config: cfg, JobID: 1, Request: mustRequest(t, tc.spec),
				Alloc: Allocation{CPUs: mustParse(t, "1-7"), MemoryBytes: 4 * gib}}
			p, err := Make(in)
			if err != nil {
				// The request is sized to fit under the headroom.
				require.NoError(t, err)
			}
			for _, c := range p.Memory {
				n, _ := topo.Node(c.NUMANode)
				require.LessOrEqual(t, c.Bytes, n.MemFreeBytes/100*tc.maxShare[c.NUMANode],
					"node %d: %s of %s free", c.NUMANode, FormatBytes(c.Bytes), FormatBytes(n.MemFreeBytes))
			}
			checkRules(t, in, p)
		})
	}

	// Node 0 without a split: IHK's own 95% cap, whatever the headroom.
	in := Input{Topology: hbm.build(t), Config: mustConfig(t, ""), JobID: 1, Request: mustRequest(t, "mck:mem=2G"),
		Alloc: Allocation{CPUs: mustParse(t, "1-3"), MemoryBytes: 8 * gib}}
	_, err := Make(in)
	require.ErrorContains(t, err, "available 1.9 GiB on nodes 0", "2 GiB is all of node 0's MemFree")
}
