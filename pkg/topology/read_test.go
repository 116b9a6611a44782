package topology_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

var cmpSets = cmp.Comparer(func(a, b cpuset.CPUSet) bool { return a.Equals(b) })

func mustParse(t testing.TB, s string) cpuset.CPUSet {
	t.Helper()
	set, err := cpuset.Parse(s)
	require.NoError(t, err)
	return set
}

// TestReadFixturesMatchGoValues proves that parsing each captured-style
// tree yields the hand-written topology of the same machine.
func TestReadFixturesMatchGoValues(t *testing.T) {
	for _, name := range fixture.Names() {
		t.Run(name, func(t *testing.T) {
			got, err := topology.Read(fixture.Root(t, name))
			require.NoError(t, err)
			want := fixture.Topology(name)
			if diff := cmp.Diff(want, got, cmpSets); diff != "" {
				t.Fatalf("Read(%s) mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

// copyTree copies a fixture's sys/ tree (files and symlinks) to a temp
// root that a test may then break. Without withMemory the memory/ directory
// and the node→memory links are left out (the file system here is slow to
// create thousands of files).
func copyTree(t testing.TB, name string, withMemory bool) string {
	t.Helper()
	src := fixture.Root(t, name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if !withMemory && strings.HasPrefix(d.Name(), "memory") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
	})
	require.NoError(t, err)
	return dst
}

const sysDir = "sys/devices/system/"

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		breakIt func(t *testing.T, root string)
		wantErr string
		memory  bool // the test needs the memory/ tree
		parse   bool // a *sysfs.ParseError is expected
		missing bool // an fs.ErrNotExist is expected
	}{
		{
			name: "distance shorter than online nodes", machine: "paper-e5520-fake12",
			breakIt: func(t *testing.T, root string) { write(t, root, "node/node3/distance", "21 10 21\n") },
			wantErr: "node3/distance has 3 entries, node/online lists 12 nodes (0-11)",
		},
		{
			name: "bad cpulist", machine: "paper-e5520-fake12",
			breakIt: func(t *testing.T, root string) { write(t, root, "node/node1/cpulist", "1,3,5-\n") },
			wantErr: "node1/cpulist", parse: true,
		},
		{
			name: "meminfo missing", machine: "a64fx-fugaku",
			breakIt: func(t *testing.T, root string) { remove(t, root, "node/node2/meminfo") },
			wantErr: "node2/meminfo", missing: true,
		},
		{
			name: "no cpu directories", machine: "offline-cpus",
			breakIt: func(t *testing.T, root string) {
				for i := 0; i < 16; i++ {
					remove(t, root, "cpu/cpu"+strconv.Itoa(i))
				}
			},
			wantErr: "no cpuN directory",
		},
		{
			name: "cpu online list missing", machine: "a64fx-fugaku",
			breakIt: func(t *testing.T, root string) { remove(t, root, "cpu/online") },
			wantErr: "cpu/online", missing: true,
		},
		{
			name: "topology half removed", machine: "offline-cpus",
			breakIt: func(t *testing.T, root string) { remove(t, root, "cpu/cpu2/topology/core_id") },
			wantErr: "cpu2/topology/core_id", missing: true,
		},
		{
			name: "memory block state garbage", machine: "paper-e5520-fake12",
			breakIt: func(t *testing.T, root string) { write(t, root, "memory/memory40/state", "weird\n") },
			wantErr: "memory40/state", parse: true, memory: true,
		},
		{
			name: "block size garbage", machine: "paper-e5520-fake12",
			breakIt: func(t *testing.T, root string) { write(t, root, "memory/block_size_bytes", "zz\n") },
			wantErr: "block_size_bytes", parse: true, memory: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := copyTree(t, tc.machine, tc.memory)
			tc.breakIt(t, root)
			_, err := topology.Read(root)
			require.ErrorContains(t, err, tc.wantErr)
			if tc.parse {
				var pe *sysfs.ParseError
				require.ErrorAs(t, err, &pe)
			}
			if tc.missing {
				require.ErrorIs(t, err, fs.ErrNotExist)
			}
		})
	}
}

func TestReadMissingRoot(t *testing.T) {
	_, err := topology.Read(filepath.Join(t.TempDir(), "nope"))
	require.ErrorContains(t, err, "read topology: sysfs root")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestReadFallbacks(t *testing.T) {
	t.Run("no node directory: kernel without NUMA", func(t *testing.T) {
		root := copyTree(t, "offline-cpus", false)
		remove(t, root, "node")
		for i := 0; i < 16; i++ {
			remove(t, root, "cpu/cpu"+strconv.Itoa(i)+"/node0")
		}
		got, err := topology.Read(root)
		require.NoError(t, err)
		require.Empty(t, got.Nodes)
		for _, c := range got.CPUs {
			require.Equal(t, -1, c.NUMANode, "cpu%d", c.ID)
		}
		require.Equal(t, "0-4,6-7", got.OnlineCPUs().String())
	})
	t.Run("cpu without node link: lowest node listing it", func(t *testing.T) {
		root := copyTree(t, "paper-e5520-fake12", false)
		remove(t, root, "cpu/cpu3/node1")
		got, err := topology.Read(root)
		require.NoError(t, err)
		c, ok := got.CPU(3)
		require.True(t, ok)
		require.Equal(t, 1, c.NUMANode)
	})
	t.Run("block without node link: node's memory link", func(t *testing.T) {
		root := copyTree(t, "paper-e5520-fake12", true)
		remove(t, root, "memory/memory70/node3")
		got, err := topology.Read(root)
		require.NoError(t, err)
		require.Equal(t, fixture.Topology("paper-e5520-fake12").MemoryBlocks, got.MemoryBlocks)
	})
	t.Run("block with no link at all", func(t *testing.T) {
		root := copyTree(t, "paper-e5520-fake12", true)
		remove(t, root, "memory/memory70/node3")
		remove(t, root, "node/node3/memory70")
		got, err := topology.Read(root)
		require.NoError(t, err)
		for _, b := range got.MemoryBlocks {
			if b.Index == 70 {
				require.Equal(t, -1, b.NUMANode)
			}
		}
	})
	t.Run("node with neither cpus nor memory is left out", func(t *testing.T) {
		root := copyTree(t, "a64fx-fugaku", false)
		write(t, root, "node/node3/meminfo", "Node 3 MemTotal: 0 kB\nNode 3 MemFree: 0 kB\n")
		got, err := topology.Read(root)
		require.NoError(t, err)
		require.Equal(t, []int{0, 1, 2, 4, 5, 6, 7}, got.NodeIDs())
		require.Equal(t, []int{3}, got.EmptyNodes, "an online node without cpus or memory is named as such")
	})
}

func write(t testing.TB, root, rel, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(root, sysDir, rel), []byte(content), 0o644))
}

func remove(t testing.TB, root, rel string) {
	t.Helper()
	p := filepath.Join(root, sysDir, rel)
	_, err := os.Lstat(p)
	require.NoError(t, err, "%s must exist before the test removes it", rel)
	require.NoError(t, os.RemoveAll(p))
}
