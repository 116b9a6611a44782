package topology_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// requireSameAsFresh checks that a cached read returns what ReadLayout
// returns from the same tree now.
func requireSameAsFresh(t *testing.T, root string, got *topology.Topology) {
	t.Helper()
	want, err := topology.ReadLayout(root)
	require.NoError(t, err)
	if diff := cmp.Diff(want, got, cmpSets); diff != "" {
		t.Fatalf("cached layout differs from a fresh read (-want +got):\n%s", diff)
	}
}

func TestReadLayoutCachedEqualsFreshRead(t *testing.T) {
	for _, name := range fixture.Names() {
		t.Run(name, func(t *testing.T) {
			root := fixture.Root(t, name)
			cache := filepath.Join(t.TempDir(), "topology.cache")
			got, res, err := topology.ReadLayoutCached(root, cache)
			require.NoError(t, err)
			require.Equal(t, topology.CacheMiss, res, "first read")
			requireSameAsFresh(t, root, got)
			fi, err := os.Stat(cache)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "root-only cache")

			got, res, err = topology.ReadLayoutCached(root, cache)
			require.NoError(t, err)
			require.Equal(t, topology.CacheHit, res, "second read")
			requireSameAsFresh(t, root, got)
		})
	}
}

// TestReadLayoutCachedSeesChanges changes the machine between two reads:
// whatever changes, the cached read must equal a fresh one.
func TestReadLayoutCachedSeesChanges(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		change  func(t *testing.T, root string)
		want    topology.CacheResult
	}{
		{
			name: "free memory changes: still a hit, new MemFree", machine: "paper-e5520-fake12",
			change: func(t *testing.T, root string) {
				write(t, root, "node/node2/meminfo", "Node 2 MemTotal: 1032192 kB\nNode 2 MemFree: 2048 kB\n")
			},
			want: topology.CacheHit,
		},
		{
			name: "cpu taken offline (as IHK does on reserve)", machine: "offline-cpus",
			change: func(t *testing.T, root string) {
				write(t, root, "cpu/online", "0-3,6")
				write(t, root, "cpu/cpu4/online", "0")
				write(t, root, "cpu/cpu7/online", "0")
				remove(t, root, "cpu/cpu4/topology")
				remove(t, root, "cpu/cpu7/topology")
			},
			want: topology.CacheMiss,
		},
		{
			name: "memory-only node loses its memory without has_memory changing", machine: "a64fx-fugaku",
			change: func(t *testing.T, root string) {
				write(t, root, "node/node3/meminfo", "Node 3 MemTotal: 0 kB\nNode 3 MemFree: 0 kB\n")
			},
			want: topology.CacheMiss,
		},
		{
			name: "node gains memory: has_memory changes", machine: "a64fx-fugaku",
			change: func(t *testing.T, root string) {
				write(t, root, "node/has_memory", "0-2,4-7")
				write(t, root, "node/node3/meminfo", "Node 3 MemTotal: 0 kB\nNode 3 MemFree: 0 kB\n")
			},
			want: topology.CacheMiss,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, tc.machine, false)
			cache := filepath.Join(t.TempDir(), "topology.cache")
			_, res, err := topology.ReadLayoutCached(root, cache)
			require.NoError(t, err)
			require.Equal(t, topology.CacheMiss, res)
			tc.change(t, root)
			got, res, err := topology.ReadLayoutCached(root, cache)
			require.NoError(t, err)
			require.Equal(t, tc.want, res)
			requireSameAsFresh(t, root, got)
			// And the rewritten cache serves the changed machine.
			got, res, err = topology.ReadLayoutCached(root, cache)
			require.NoError(t, err)
			require.Equal(t, topology.CacheHit, res)
			requireSameAsFresh(t, root, got)
		})
	}
}

// TestReadLayoutCachedDistrustsTheFile: a cache someone else could have
// written, a symlink, or garbage is ignored and replaced.
func TestReadLayoutCachedDistrustsTheFile(t *testing.T) {
	root := fixture.Root(t, "paper-e5520-fake12")
	tests := []struct {
		name  string
		plant func(t *testing.T, cache, good string)
	}{
		{name: "group-writable", plant: func(t *testing.T, cache, good string) {
			require.NoError(t, os.WriteFile(cache, []byte(good), 0o600))
			require.NoError(t, os.Chmod(cache, 0o620))
		}},
		{name: "symlink to a good cache", plant: func(t *testing.T, cache, good string) {
			other := cache + ".elsewhere"
			require.NoError(t, os.WriteFile(other, []byte(good), 0o600))
			require.NoError(t, os.Symlink(other, cache))
		}},
		{name: "garbage", plant: func(t *testing.T, cache, _ string) {
			require.NoError(t, os.WriteFile(cache, []byte("{not json"), 0o600))
		}},
		{name: "right key, cpus out of order", plant: func(t *testing.T, cache, good string) {
			var c map[string]any
			require.NoError(t, json.Unmarshal([]byte(good), &c))
			bad := fmt.Sprintf(`{"version":1,"key":%q,"cpus":[[1,1,0,0,1],[0,0,0,0,1]]}`, c["key"])
			require.NoError(t, os.WriteFile(cache, []byte(bad), 0o600))
		}},
		{name: "right key, no cpus", plant: func(t *testing.T, cache, good string) {
			var c map[string]any
			require.NoError(t, json.Unmarshal([]byte(good), &c))
			require.NoError(t, os.WriteFile(cache, []byte(fmt.Sprintf(`{"version":1,"key":%q}`, c["key"])), 0o600))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			good := filepath.Join(dir, "good")
			_, _, err := topology.ReadLayoutCached(root, good)
			require.NoError(t, err)
			b, err := os.ReadFile(good)
			require.NoError(t, err)
			cache := filepath.Join(dir, "topology.cache")
			tc.plant(t, cache, string(b))
			got, res, err := topology.ReadLayoutCached(root, cache)
			require.NoError(t, err)
			require.Equal(t, topology.CacheMiss, res)
			requireSameAsFresh(t, root, got)
			fi, err := os.Lstat(cache)
			require.NoError(t, err)
			require.True(t, fi.Mode().IsRegular(), "replaced by a regular file")
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		})
	}
}

func TestReadLayoutCachedWithoutWritableCache(t *testing.T) {
	root := fixture.Root(t, "paper-e5520-fake12")
	cache := filepath.Join(t.TempDir(), "missing-dir", "topology.cache")
	got, res, err := topology.ReadLayoutCached(root, cache)
	require.NoError(t, err, "a cache that cannot be written is not an error")
	require.Equal(t, topology.CacheMiss, res)
	requireSameAsFresh(t, root, got)
}

func TestReadLayoutCachedWithoutCacheFile(t *testing.T) {
	root := fixture.Root(t, "paper-e5520-fake12")
	for _, cache := range []string{"", "relative/topology.cache"} {
		got, res, err := topology.ReadLayoutCached(root, cache)
		require.NoError(t, err)
		require.Equal(t, topology.CacheMiss, res)
		requireSameAsFresh(t, root, got)
	}
	_, err := os.Stat("relative")
	require.ErrorIs(t, err, os.ErrNotExist, "nothing written relative to the working directory")
}

// TestReadLayoutCachedServesCopies: a process keeps the layout it decoded;
// what it hands out is a copy, and a rewritten cache file is read again.
func TestReadLayoutCachedServesCopies(t *testing.T) {
	root := fixture.Root(t, "paper-e5520-fake12")
	cache := filepath.Join(t.TempDir(), "topology.cache")
	for range 2 {
		_, _, err := topology.ReadLayoutCached(root, cache)
		require.NoError(t, err)
	}
	got, res, err := topology.ReadLayoutCached(root, cache)
	require.NoError(t, err)
	require.Equal(t, topology.CacheHit, res)
	got.CPUs[1].Core = 99
	got.Nodes[0].MemFreeBytes = 1
	for k := range got.Nodes[0].Distances {
		got.Nodes[0].Distances[k] = 99
	}
	got, res, err = topology.ReadLayoutCached(root, cache)
	require.NoError(t, err)
	require.Equal(t, topology.CacheHit, res)
	requireSameAsFresh(t, root, got)

	// Another process rewrites the file (as every writer does: a new file
	// renamed into place) with a layout of the same key.
	b, err := os.ReadFile(cache)
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c))
	cpus := c["cpus"].([]any)
	cpus[1].([]any)[1] = 42
	b, err = json.Marshal(c)
	require.NoError(t, err)
	tmp := cache + ".new"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, cache))
	got, res, err = topology.ReadLayoutCached(root, cache)
	require.NoError(t, err)
	require.Equal(t, topology.CacheHit, res)
	require.Equal(t, 42, got.CPUs[1].Core, "the rewritten file was not read")
}
