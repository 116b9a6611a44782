package sysfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/filetree"
	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
)

func open(t testing.TB, root string) sysfs.FS {
	t.Helper()
	f, err := sysfs.New(root)
	require.NoError(t, err)
	return f
}

// cpuFacts are the expected readings of one CPU of a fixture.
type cpuFacts struct {
	id          int
	online      bool
	onlineFile  bool // cpuN/online exists
	hasTopology bool
	pkg, coreID int
	siblings    string
	node        int
}

// The expectations restate each machine's README (lscpu/numactl facts),
// not the generator.
var fixtureFacts = []struct {
	name                      string
	possible, present, online string
	offline                   string
	cpuIDs                    int
	cpus                      []cpuFacts
	nodeIDs                   []int
	onlineNodes, hasCPU       string
	hasMemory, hasNormal      string
	nodeCPUs                  map[int]string
	nodeTotalKB, nodeFreeKB   map[int]uint64
	distance                  map[int][]int
	blockBytes                uint64 // 0: no memory/ directory
	blocks                    int
	block                     sysfs.MemoryBlock // one sample block
}{
	{
		name: "paper-e5520-fake12", possible: "0-15", present: "0-15", online: "0-15", offline: "", cpuIDs: 16,
		cpus: []cpuFacts{
			{id: 0, online: true, onlineFile: false, hasTopology: true, pkg: 0, coreID: 0, siblings: "0,8", node: 0},
			{id: 1, online: true, onlineFile: true, hasTopology: true, pkg: 1, coreID: 0, siblings: "1,9", node: 1},
			{id: 6, online: true, onlineFile: true, hasTopology: true, pkg: 0, coreID: 3, siblings: "6,14", node: 0},
			{id: 15, online: true, onlineFile: true, hasTopology: true, pkg: 1, coreID: 3, siblings: "7,15", node: 1},
		},
		nodeIDs:     []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
		onlineNodes: "0-11", hasCPU: "0-1", hasMemory: "0-11", hasNormal: "1,3,5-11",
		nodeCPUs:    map[int]string{0: "0,2,4,6,8,10,12,14", 7: "1,3,5,7,9,11,13,15", 10: "0,2,4,6,8,10,12,14"},
		nodeTotalKB: map[int]uint64{0: 998604, 1: 1031484, 11: 1032192},
		nodeFreeKB:  map[int]uint64{0: 186532, 1: 402116, 2: 1019340},
		distance: map[int][]int{
			0: {10, 21, 10, 21, 10, 21, 10, 21, 10, 21, 10, 21},
			5: {21, 10, 21, 10, 21, 10, 21, 10, 21, 10, 21, 10},
		},
		blockBytes: 128 << 20, blocks: 96,
		block: sysfs.MemoryBlock{Index: 33, State: "online", ValidZones: []string{"Normal"}, Removable: true, Nodes: []int{6}},
	},
	{
		name: "a64fx-fugaku", possible: "0-59", present: "0-1,12-59", online: "0-1,12-59", offline: "2-11", cpuIDs: 50,
		cpus: []cpuFacts{
			{id: 1, online: true, onlineFile: true, hasTopology: true, pkg: 1, coreID: 0, siblings: "1", node: 1},
			{id: 12, online: true, onlineFile: true, hasTopology: true, pkg: 4, coreID: 0, siblings: "12", node: 4},
			{id: 59, online: true, onlineFile: true, hasTopology: true, pkg: 7, coreID: 11, siblings: "59", node: 7},
		},
		nodeIDs:     []int{0, 1, 2, 3, 4, 5, 6, 7},
		onlineNodes: "0-7", hasCPU: "0-1,4-7", hasMemory: "0-7", hasNormal: "0-7",
		nodeCPUs:    map[int]string{0: "0", 2: "", 3: "", 5: "24-35"},
		nodeTotalKB: map[int]uint64{2: 989184, 6: 7245824},
		nodeFreeKB:  map[int]uint64{3: 701332, 4: 7124588},
		distance:    map[int][]int{4: {11, 20, 30, 30, 10, 20, 30, 30}},
	},
	{
		name: "xeon-2s-ht", possible: "0-63", present: "0-63", online: "0-63", offline: "", cpuIDs: 64,
		cpus: []cpuFacts{
			{id: 5, online: true, onlineFile: true, hasTopology: true, pkg: 0, coreID: 8, siblings: "5,37", node: 0},
			{id: 20, online: true, onlineFile: true, hasTopology: true, pkg: 1, coreID: 5, siblings: "20,52", node: 1},
			{id: 63, online: true, onlineFile: true, hasTopology: true, pkg: 1, coreID: 26, siblings: "31,63", node: 1},
		},
		nodeIDs:     []int{0, 1},
		onlineNodes: "0-1", hasCPU: "0-1", hasMemory: "0-1", hasNormal: "0-1",
		nodeCPUs:    map[int]string{0: "0-15,32-47", 1: "16-31,48-63"},
		nodeTotalKB: map[int]uint64{0: 98721644, 1: 99032820},
		nodeFreeKB:  map[int]uint64{0: 81237408, 1: 90614252},
		distance:    map[int][]int{0: {10, 21}, 1: {21, 10}},
		blockBytes:  2 << 30, blocks: 96,
		block: sysfs.MemoryBlock{Index: 49, State: "online", ValidZones: []string{"Normal"}, Removable: true, Nodes: []int{1}},
	},
	{
		name: "epyc-nps4", possible: "0-127", present: "0-127", online: "0-127", offline: "", cpuIDs: 128,
		cpus: []cpuFacts{
			{id: 16, online: true, onlineFile: true, hasTopology: true, pkg: 0, coreID: 16, siblings: "16,80", node: 1},
			{id: 127, online: true, onlineFile: true, hasTopology: true, pkg: 0, coreID: 63, siblings: "63,127", node: 3},
		},
		nodeIDs:     []int{0, 1, 2, 3},
		onlineNodes: "0-3", hasCPU: "0-3", hasMemory: "0-3", hasNormal: "0-3",
		nodeCPUs:    map[int]string{2: "32-47,96-111"},
		nodeTotalKB: map[int]uint64{0: 65471532},
		nodeFreeKB:  map[int]uint64{3: 63922104},
		distance:    map[int][]int{0: {10, 11, 12, 12}, 2: {12, 12, 10, 11}},
		blockBytes:  2 << 30, blocks: 128,
		block: sysfs.MemoryBlock{Index: 0, State: "online", ValidZones: []string{"none"}, Removable: true, Nodes: []int{0}},
	},
	{
		name: "offline-cpus", possible: "0-15", present: "0-15", online: "0-4,6-7", offline: "5,8-15", cpuIDs: 16,
		cpus: []cpuFacts{
			{id: 4, online: true, onlineFile: true, hasTopology: true, pkg: 0, coreID: 4, siblings: "4", node: 0},
			{id: 5, online: false, onlineFile: true, hasTopology: false, node: 0},
			{id: 13, online: false, onlineFile: true, hasTopology: false, node: 0},
		},
		nodeIDs:     []int{0},
		onlineNodes: "0", hasCPU: "0", hasMemory: "0", hasNormal: "0",
		nodeCPUs:    map[int]string{0: "0-4,6-7"},
		nodeTotalKB: map[int]uint64{0: 32607896},
		nodeFreeKB:  map[int]uint64{0: 29874120},
		distance:    map[int][]int{0: {10}},
	},
	{
		name: "this-host", possible: "0-1", present: "0-1", online: "0-1", offline: "", cpuIDs: 2,
		cpus: []cpuFacts{
			{id: 0, online: true, onlineFile: false, hasTopology: true, pkg: 0, coreID: 0, siblings: "0", node: 0},
			{id: 1, online: true, onlineFile: true, hasTopology: true, pkg: 0, coreID: 1, siblings: "1", node: 0},
		},
		nodeIDs:     []int{0},
		onlineNodes: "0", hasCPU: "0", hasMemory: "0", hasNormal: "0",
		nodeCPUs:    map[int]string{0: "0-1"},
		nodeTotalKB: map[int]uint64{0: 4942040},
		nodeFreeKB:  map[int]uint64{0: 3552504},
		distance:    map[int][]int{0: {10}},
		blockBytes:  128 << 20, blocks: 192,
		block: sysfs.MemoryBlock{Index: 5, State: "online", ValidZones: []string{"DMA32"}, Removable: true, Nodes: []int{0}},
	},
}

func TestFixturesCovered(t *testing.T) {
	var names []string
	for _, f := range fixtureFacts {
		names = append(names, f.name)
	}
	require.ElementsMatch(t, fixture.Names(), names, "every fixture needs sysfs expectations")
}

func TestCPUReaders(t *testing.T) {
	for _, tc := range fixtureFacts {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, fixture.Root(t, tc.name))
			possible, err := f.PossibleCPUs()
			require.NoError(t, err)
			require.Equal(t, tc.possible, possible.String())
			present, err := f.PresentCPUs()
			require.NoError(t, err)
			require.Equal(t, tc.present, present.String())
			online, err := f.OnlineCPUs()
			require.NoError(t, err)
			require.Equal(t, tc.online, online.String())
			offline, err := f.OfflineCPUs()
			require.NoError(t, err)
			require.Equal(t, tc.offline, offline.String())
			ids, err := f.CPUIDs()
			require.NoError(t, err)
			require.Len(t, ids, tc.cpuIDs)
			require.Equal(t, present.List(), ids, "cpuN directories are the present CPUs")

			for _, c := range tc.cpus {
				on, ok, err := f.CPUOnline(c.id)
				require.NoError(t, err, "cpu%d", c.id)
				require.Equal(t, c.onlineFile, ok, "cpu%d/online present", c.id)
				if ok {
					require.Equal(t, c.online, on, "cpu%d/online", c.id)
				}
				topo, ok, err := f.CPUTopology(c.id)
				require.NoError(t, err, "cpu%d", c.id)
				require.Equal(t, c.hasTopology, ok, "cpu%d/topology present", c.id)
				if ok {
					require.Equal(t, c.pkg, topo.PhysicalPackageID, "cpu%d", c.id)
					require.Equal(t, c.coreID, topo.CoreID, "cpu%d", c.id)
					require.Equal(t, c.siblings, topo.ThreadSiblings.String(), "cpu%d", c.id)
				}
				node, ok, err := f.CPUNode(c.id)
				require.NoError(t, err, "cpu%d", c.id)
				require.True(t, ok, "cpu%d has a node link", c.id)
				require.Equal(t, c.node, node, "cpu%d", c.id)
			}
		})
	}
}

func TestNodeReaders(t *testing.T) {
	for _, tc := range fixtureFacts {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, fixture.Root(t, tc.name))
			ids, err := f.NodeIDs()
			require.NoError(t, err)
			require.Equal(t, tc.nodeIDs, ids)
			for _, c := range []struct {
				read func() (cpuset.CPUSet, error)
				want string
			}{
				{f.OnlineNodes, tc.onlineNodes},
				{f.PossibleNodes, tc.onlineNodes},
				{f.NodesWithCPU, tc.hasCPU},
				{f.NodesWithMemory, tc.hasMemory},
				{f.NodesWithNormalMemory, tc.hasNormal},
			} {
				got, err := c.read()
				require.NoError(t, err)
				require.Equal(t, c.want, got.String())
			}
			for id, want := range tc.nodeCPUs {
				got, err := f.NodeCPUList(id)
				require.NoError(t, err)
				require.Equal(t, want, got.String(), "node%d/cpulist", id)
			}
			for id, want := range tc.nodeTotalKB {
				mi, err := f.NodeMemInfo(id)
				require.NoError(t, err)
				require.Equal(t, want*1024, mi.TotalBytes, "node%d MemTotal", id)
			}
			for id, want := range tc.nodeFreeKB {
				mi, err := f.NodeMemInfo(id)
				require.NoError(t, err)
				require.Equal(t, want*1024, mi.FreeBytes, "node%d MemFree", id)
			}
			for id, want := range tc.distance {
				got, err := f.NodeDistance(id)
				require.NoError(t, err)
				require.Equal(t, want, got, "node%d/distance", id)
			}
		})
	}
}

func TestMemoryReaders(t *testing.T) {
	for _, tc := range fixtureFacts {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, fixture.Root(t, tc.name))
			size, err := f.BlockSizeBytes()
			if tc.blockBytes == 0 {
				require.ErrorIs(t, err, fs.ErrNotExist)
				_, err = f.MemoryBlockIDs()
				require.ErrorIs(t, err, fs.ErrNotExist)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.blockBytes, size)
			ids, err := f.MemoryBlockIDs()
			require.NoError(t, err)
			require.Len(t, ids, tc.blocks)
			b, err := f.MemoryBlock(tc.block.Index)
			require.NoError(t, err)
			require.Equal(t, tc.block, b)
			var linked int
			for _, n := range tc.nodeIDs {
				blocks, err := f.NodeMemoryBlocks(n)
				require.NoError(t, err)
				linked += len(blocks)
			}
			require.Equal(t, tc.blocks, linked, "every block is linked from exactly one node")
		})
	}
}

func TestNewRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	tests := []struct {
		name    string
		root    string
		want    string
		wantErr string
	}{
		{name: "empty means slash", root: "", want: "/"},
		{name: "relative made absolute", root: dir + "/./", want: dir},
		{name: "missing", root: filepath.Join(dir, "nope"), wantErr: "no such file"},
		{name: "not a directory", root: file, wantErr: "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := sysfs.New(tc.root)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, f.Root())
		})
	}
}

// tree writes files (path relative to root → content) below a temp root.
func tree(t testing.TB, files map[string]string) string { return filetree.New(t, files) }

func TestParseErrors(t *testing.T) {
	const cpu, node, mem = "sys/devices/system/cpu/", "sys/devices/system/node/", "sys/devices/system/memory/"
	tests := []struct {
		name  string
		files map[string]string
		read  func(f sysfs.FS) error
		path  string // file the ParseError must name, relative to root
	}{
		{
			name:  "cpu list garbage",
			files: map[string]string{cpu + "online": "0-3,x\n"},
			read:  func(f sysfs.FS) error { _, err := f.OnlineCPUs(); return err },
			path:  cpu + "online",
		},
		{
			name:  "reversed range",
			files: map[string]string{cpu + "possible": "7-3\n"},
			read:  func(f sysfs.FS) error { _, err := f.PossibleCPUs(); return err },
			path:  cpu + "possible",
		},
		{
			name:  "cpu online not 0 or 1",
			files: map[string]string{cpu + "cpu3/online": "2\n"},
			read:  func(f sysfs.FS) error { _, _, err := f.CPUOnline(3); return err },
			path:  cpu + "cpu3/online",
		},
		{
			name: "core id not a number",
			files: map[string]string{
				cpu + "cpu1/topology/physical_package_id": "0\n", cpu + "cpu1/topology/core_id": "one\n",
				cpu + "cpu1/topology/thread_siblings_list": "1\n",
			},
			read: func(f sysfs.FS) error { _, _, err := f.CPUTopology(1); return err },
			path: cpu + "cpu1/topology/core_id",
		},
		{
			name: "siblings without the cpu",
			files: map[string]string{
				cpu + "cpu1/topology/physical_package_id": "0\n", cpu + "cpu1/topology/core_id": "1\n",
				cpu + "cpu1/topology/thread_siblings_list": "2-3\n",
			},
			read: func(f sysfs.FS) error { _, _, err := f.CPUTopology(1); return err },
			path: cpu + "cpu1/topology/thread_siblings_list",
		},
		{
			name:  "distance not a number",
			files: map[string]string{node + "node0/distance": "10 2x\n"},
			read:  func(f sysfs.FS) error { _, err := f.NodeDistance(0); return err },
			path:  node + "node0/distance",
		},
		{
			name:  "distance empty",
			files: map[string]string{node + "node0/distance": "\n"},
			read:  func(f sysfs.FS) error { _, err := f.NodeDistance(0); return err },
			path:  node + "node0/distance",
		},
		{
			name:  "meminfo other node's line",
			files: map[string]string{node + "node1/meminfo": "Node 0 MemTotal: 10 kB\nNode 0 MemFree: 5 kB\n"},
			read:  func(f sysfs.FS) error { _, err := f.NodeMemInfo(1); return err },
			path:  node + "node1/meminfo",
		},
		{
			name:  "meminfo without unit",
			files: map[string]string{node + "node0/meminfo": "Node 0 MemTotal: 10\nNode 0 MemFree: 5 kB\n"},
			read:  func(f sysfs.FS) error { _, err := f.NodeMemInfo(0); return err },
			path:  node + "node0/meminfo",
		},
		{
			name:  "meminfo missing MemFree",
			files: map[string]string{node + "node0/meminfo": "Node 0 MemTotal: 10 kB\n"},
			read:  func(f sysfs.FS) error { _, err := f.NodeMemInfo(0); return err },
			path:  node + "node0/meminfo",
		},
		{
			name:  "meminfo free above total",
			files: map[string]string{node + "node0/meminfo": "Node 0 MemTotal: 10 kB\nNode 0 MemFree: 50 kB\n"},
			read:  func(f sysfs.FS) error { _, err := f.NodeMemInfo(0); return err },
			path:  node + "node0/meminfo",
		},
		{
			name:  "block size not hex",
			files: map[string]string{mem + "block_size_bytes": "8000000g\n"},
			read:  func(f sysfs.FS) error { _, err := f.BlockSizeBytes(); return err },
			path:  mem + "block_size_bytes",
		},
		{
			name:  "block size not a power of two",
			files: map[string]string{mem + "block_size_bytes": "3000\n"},
			read:  func(f sysfs.FS) error { _, err := f.BlockSizeBytes(); return err },
			path:  mem + "block_size_bytes",
		},
		{
			name:  "phys_index disagrees with directory",
			files: map[string]string{mem + "memory8/phys_index": "00000009\n", mem + "memory8/state": "online\n"},
			read:  func(f sysfs.FS) error { _, err := f.MemoryBlock(8); return err },
			path:  mem + "memory8/phys_index",
		},
		{
			name:  "unknown block state",
			files: map[string]string{mem + "memory8/phys_index": "00000008\n", mem + "memory8/state": "sleeping\n"},
			read:  func(f sysfs.FS) error { _, err := f.MemoryBlock(8); return err },
			path:  mem + "memory8/state",
		},
		{
			name: "removable not 0 or 1",
			files: map[string]string{
				mem + "memory8/phys_index": "00000008\n", mem + "memory8/state": "offline\n", mem + "memory8/removable": "7\n",
			},
			read: func(f sysfs.FS) error { _, err := f.MemoryBlock(8); return err },
			path: mem + "memory8/removable",
		},
		{
			name:  "oversized file",
			files: map[string]string{cpu + "online": string(make([]byte, 70<<10))},
			read:  func(f sysfs.FS) error { _, err := f.OnlineCPUs(); return err },
			path:  cpu + "online",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.files)
			err := tc.read(open(t, root))
			var pe *sysfs.ParseError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, filepath.Join(root, tc.path), pe.Path)
			require.ErrorContains(t, err, filepath.Join(root, tc.path))
		})
	}
}

func TestMissingFiles(t *testing.T) {
	root := tree(t, map[string]string{"sys/devices/system/cpu/cpu0/topology/physical_package_id": "0\n"})
	f := open(t, root)
	tests := []struct {
		name string
		read func() error
	}{
		{"online list", func() error { _, err := f.OnlineCPUs(); return err }},
		{"node cpulist", func() error { _, err := f.NodeCPUList(0); return err }},
		{"meminfo", func() error { _, err := f.NodeMemInfo(0); return err }},
		{"node ids", func() error { _, err := f.NodeIDs(); return err }},
		{"block size", func() error { _, err := f.BlockSizeBytes(); return err }},
		{"memory block", func() error { _, err := f.MemoryBlock(0); return err }},
		{"partial topology dir", func() error { _, _, err := f.CPUTopology(0); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.read()
			require.ErrorIs(t, err, fs.ErrNotExist)
			var pe *sysfs.ParseError
			require.False(t, errors.As(err, &pe), "absent is not a parse error")
		})
	}
	// Absent optional files are not errors.
	_, ok, err := f.CPUOnline(0)
	require.NoError(t, err)
	require.False(t, ok)
	_, ok, err = f.CPUTopology(7)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestMemoryBlockOptionalFiles(t *testing.T) {
	root := tree(t, map[string]string{
		"sys/devices/system/memory/memory3/phys_index": "3\n",
		"sys/devices/system/memory/memory3/state":      "offline\n",
	})
	b, err := open(t, root).MemoryBlock(3)
	require.NoError(t, err)
	require.Equal(t, sysfs.MemoryBlock{Index: 3, State: "offline"}, b)
}

func TestNumberedEntriesIgnoreOthers(t *testing.T) {
	root := tree(t, map[string]string{
		"sys/devices/system/cpu/cpu0/x":    "",
		"sys/devices/system/cpu/cpu10/x":   "",
		"sys/devices/system/cpu/cpu2/x":    "",
		"sys/devices/system/cpu/cpufreq/x": "",
		"sys/devices/system/cpu/cpu01/x":   "",
		"sys/devices/system/cpu/cpu-1/x":   "",
		"sys/devices/system/cpu/online":    "0\n",
	})
	ids, err := open(t, root).CPUIDs()
	require.NoError(t, err)
	require.Equal(t, []int{0, 2, 10}, ids)
}

func TestParseErrorUnwrap(t *testing.T) {
	inner := errors.New("boom")
	err := error(&sysfs.ParseError{Path: "/x", Content: "y", Err: inner})
	require.ErrorIs(t, err, inner)
	require.Equal(t, `parse /x: "y": boom`, err.Error())
}
