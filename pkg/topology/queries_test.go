package topology_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// read parses a fixture tree (not the Go value), so the queries are
// exercised on what Read builds.
func read(t testing.TB, name string) *topology.Topology {
	t.Helper()
	topo, err := topology.Read(fixture.Root(t, name))
	require.NoError(t, err)
	return topo
}

func TestCPUQueries(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		// nodes is the argument of CPUsInNodes and NodeCPUs.
		nodes             string
		online            string
		all               string
		cpusInNodes       string
		nodeCPUs          string
		siblingsOf        int
		siblings          string
		cores             string // argument of CPUsInCores
		cpusInCores       string
		cpus              string // argument of NodesOfCPUs and NodesListingCPUs
		nodesOfCPUs       string
		nodesListingCPUs  string
		memoryNodes       string
		blocksOfFirstNode int
	}{
		{
			// numa=fake: cpu_to_node is 0 or 1, but every even node lists
			// socket 0's CPUs.
			name: "paper job nodes", machine: "paper-e5520-fake12", nodes: "2-3",
			online: "0-15", all: "0-15", cpusInNodes: "", nodeCPUs: "0-15",
			siblingsOf: 3, siblings: "3,11", cores: "0,2", cpusInCores: "0,2,8,10",
			cpus: "2-15", nodesOfCPUs: "0-1", nodesListingCPUs: "0-11", memoryNodes: "0-11", blocksOfFirstNode: 8,
		},
		{
			name: "paper system nodes", machine: "paper-e5520-fake12", nodes: "0-1",
			online: "0-15", all: "0-15", cpusInNodes: "0-15", nodeCPUs: "0-15",
			siblingsOf: 14, siblings: "6,14", cores: "7", cpusInCores: "7,15",
			cpus: "0,2", nodesOfCPUs: "0", nodesListingCPUs: "0,2,4,6,8,10", memoryNodes: "0-11", blocksOfFirstNode: 8,
		},
		{
			name: "fugaku compute CMGs", machine: "a64fx-fugaku", nodes: "4-5",
			online: "0-1,12-59", all: "0-1,12-59", cpusInNodes: "12-35", nodeCPUs: "12-35",
			siblingsOf: 30, siblings: "30", cores: "12-13", cpusInCores: "12-13",
			cpus: "0,47-48", nodesOfCPUs: "0,6-7", nodesListingCPUs: "0,6-7", memoryNodes: "0-7",
		},
		{
			name: "fugaku memory-only nodes", machine: "a64fx-fugaku", nodes: "2-3",
			online: "0-1,12-59", all: "0-1,12-59", cpusInNodes: "", nodeCPUs: "",
			siblingsOf: 0, siblings: "0", cores: "", cpusInCores: "",
			cpus: "1", nodesOfCPUs: "1", nodesListingCPUs: "1", memoryNodes: "0-7",
		},
		{
			name: "xeon second socket", machine: "xeon-2s-ht", nodes: "1",
			online: "0-63", all: "0-63", cpusInNodes: "16-31,48-63", nodeCPUs: "16-31,48-63",
			siblingsOf: 40, siblings: "8,40", cores: "16,31", cpusInCores: "16,31,48,63",
			cpus: "15-16", nodesOfCPUs: "0-1", nodesListingCPUs: "0-1", memoryNodes: "0-1", blocksOfFirstNode: 48,
		},
		{
			name: "epyc quadrants", machine: "epyc-nps4", nodes: "1,3",
			online: "0-127", all: "0-127", cpusInNodes: "16-31,48-63,80-95,112-127", nodeCPUs: "16-31,48-63,80-95,112-127",
			siblingsOf: 64, siblings: "0,64", cores: "63", cpusInCores: "63,127",
			cpus: "79-80", nodesOfCPUs: "0-1", nodesListingCPUs: "0-1", memoryNodes: "0-3", blocksOfFirstNode: 32,
		},
		{
			// Offline CPUs are kept (Core -1) and are their own only sibling.
			name: "offline siblings", machine: "offline-cpus", nodes: "0",
			online: "0-4,6-7", all: "0-15", cpusInNodes: "0-15", nodeCPUs: "0-15",
			siblingsOf: 9, siblings: "9", cores: "1,5", cpusInCores: "1",
			cpus: "5,12", nodesOfCPUs: "0", nodesListingCPUs: "0", memoryNodes: "0",
		},
		{
			name: "this host", machine: "this-host", nodes: "0",
			online: "0-1", all: "0-1", cpusInNodes: "0-1", nodeCPUs: "0-1",
			siblingsOf: 1, siblings: "1", cores: "0", cpusInCores: "0",
			cpus: "1", nodesOfCPUs: "0", nodesListingCPUs: "0", memoryNodes: "0", blocksOfFirstNode: 192,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := read(t, tc.machine)
			require.Equal(t, tc.online, topo.OnlineCPUs().String(), "OnlineCPUs")
			require.Equal(t, tc.all, topo.AllCPUs().String(), "AllCPUs")
			require.Equal(t, tc.cpusInNodes, topo.CPUsInNodes(mustParse(t, tc.nodes)).String(), "CPUsInNodes")
			require.Equal(t, tc.nodeCPUs, topo.NodeCPUs(mustParse(t, tc.nodes)).String(), "NodeCPUs")
			require.Equal(t, tc.siblings, topo.CoreSiblings(tc.siblingsOf).String(), "CoreSiblings")
			require.Equal(t, tc.cpusInCores, topo.CPUsInCores(mustParse(t, tc.cores)).String(), "CPUsInCores")
			require.Equal(t, tc.nodesOfCPUs, topo.NodesOfCPUs(mustParse(t, tc.cpus)).String(), "NodesOfCPUs")
			require.Equal(t, tc.nodesListingCPUs, topo.NodesListingCPUs(mustParse(t, tc.cpus)).String(), "NodesListingCPUs")
			require.Equal(t, tc.memoryNodes, topo.MemoryNodes().String(), "MemoryNodes")
			require.Len(t, topo.MemoryBlocksOfNode(topo.Nodes[0].ID), tc.blocksOfFirstNode, "MemoryBlocksOfNode")
		})
	}
}

func TestOfflineCPUsKnownButNotOnline(t *testing.T) {
	topo := read(t, "offline-cpus")
	for _, id := range []int{5, 8, 15} {
		c, ok := topo.CPU(id)
		require.True(t, ok, "cpu%d kept in the model", id)
		require.Equal(t, topology.CPU{ID: id, Core: -1, Socket: -1, NUMANode: 0, Online: false}, c)
	}
	_, ok := topo.CPU(16)
	require.False(t, ok)
	require.True(t, topo.CoreSiblings(16).IsEmpty(), "unknown cpu has no siblings")
}

func TestOnlineOfMatchesOnlineCPUs(t *testing.T) {
	topo := read(t, "offline-cpus")
	for _, s := range []string{"", "0-1", "4-9", "5,8,15", "0-15", "14-40", "100"} {
		set, err := cpuset.Parse(s)
		require.NoError(t, err)
		want := set.Intersection(topo.OnlineCPUs())
		require.True(t, want.Equals(topo.OnlineOf(set)), "OnlineOf(%s) = %s, want %s", s, topo.OnlineOf(set), want)
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		name     string
		machine  string
		from, to int
		want     int
		wantErr  string
	}{
		{name: "paper same socket", machine: "paper-e5520-fake12", from: 0, to: 10, want: 10},
		{name: "paper across sockets", machine: "paper-e5520-fake12", from: 2, to: 11, want: 21},
		{name: "paper self", machine: "paper-e5520-fake12", from: 7, to: 7, want: 10},
		{name: "fugaku same CMG system to job", machine: "a64fx-fugaku", from: 2, to: 6, want: 11},
		{name: "fugaku neighbour CMG", machine: "a64fx-fugaku", from: 4, to: 5, want: 20},
		{name: "fugaku far CMG", machine: "a64fx-fugaku", from: 7, to: 0, want: 30},
		{name: "epyc adjacent quadrant", machine: "epyc-nps4", from: 2, to: 3, want: 11},
		{name: "epyc other half", machine: "epyc-nps4", from: 0, to: 3, want: 12},
		{name: "xeon remote", machine: "xeon-2s-ht", from: 1, to: 0, want: 21},
		{name: "unknown source", machine: "xeon-2s-ht", from: 2, to: 0, wantErr: "numa node 2: not in topology"},
		{name: "unknown target", machine: "this-host", from: 0, to: 1, wantErr: "numa node 0: no distance to node 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(t, tc.machine).Distance(tc.from, tc.to)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestDistanceSymmetric checks every fixture's table is complete and
// symmetric, as the kernel's SLIT-derived tables are. Distinct nodes may be
// at distance 10: numa=fake copies the physical distances, so emulated
// nodes of one physical node are "local" to each other.
func TestDistanceSymmetric(t *testing.T) {
	for _, name := range fixture.Names() {
		t.Run(name, func(t *testing.T) {
			topo := read(t, name)
			for _, a := range topo.NodeIDs() {
				for _, b := range topo.NodeIDs() {
					ab, err := topo.Distance(a, b)
					require.NoError(t, err)
					ba, err := topo.Distance(b, a)
					require.NoError(t, err)
					require.Equal(t, ab, ba, "distance %d-%d", a, b)
					if a == b {
						require.Equal(t, 10, ab)
					} else {
						require.GreaterOrEqual(t, ab, 10)
					}
				}
			}
		})
	}
}

// TestMemoryAddsUp checks each node's MemTotal is within what its memory
// blocks hold (the kernel's managed pages never exceed present pages) and,
// on the synthetic machines, not far below it. this-host is a VM whose
// balloon driver takes managed pages away, so only the upper bound holds.
func TestMemoryAddsUp(t *testing.T) {
	for _, name := range fixture.Names() {
		t.Run(name, func(t *testing.T) {
			topo := read(t, name)
			if topo.MemoryBlockBytes == 0 {
				require.Empty(t, topo.MemoryBlocks)
				return
			}
			for _, n := range topo.Nodes {
				blocks := uint64(len(topo.MemoryBlocksOfNode(n.ID)))
				require.LessOrEqual(t, n.MemTotalBytes, blocks*topo.MemoryBlockBytes, "node %d", n.ID)
				if name != "this-host" {
					require.Greater(t, n.MemTotalBytes, blocks*topo.MemoryBlockBytes*9/10, "node %d", n.ID)
				}
				require.LessOrEqual(t, n.MemFreeBytes, n.MemTotalBytes, "node %d", n.ID)
			}
		})
	}
}
