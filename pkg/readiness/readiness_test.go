package readiness_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/readiness"
)

// testdata/buddyinfo: node 0 from a Debian 12 VM (4 KiB pages; order 10 is
// 4 MiB), node 1 fragmented: nothing of 4 MiB or more.
func TestBuddyinfoRuns(t *testing.T) {
	runs, err := readiness.ReadBuddyinfo("testdata/buddyinfo", 4096)
	require.NoError(t, err)
	want0 := uint64(3+753+314) * 4 << 20
	require.Equal(t, map[int]uint64{0: want0, 1: 0}, runs)
	// 64 KiB pages: order 6 is 4 MiB.
	runs, err = readiness.ReadBuddyinfo("testdata/buddyinfo", 65536)
	require.NoError(t, err)
	require.Equal(t, map[int]uint64{0: 72263663616, 1: 0}, runs, "orders 6 and up on node 0; none on node 1")
	empty, err := readiness.ReadBuddyinfo(filepath.Join(t.TempDir(), "none"), 4096)
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestBuddyinfoMalformed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b")
	require.NoError(t, os.WriteFile(p, []byte("Node x, zone Normal 1 2\n"), 0o644))
	_, err := readiness.ReadBuddyinfo(p, 4096)
	require.ErrorContains(t, err, `node "x"`)
}

func TestReadOnFixture(t *testing.T) {
	root := fixture.Root(t, "paper-e5520-fake12")
	procRoot := t.TempDir()
	data, err := os.ReadFile("testdata/buddyinfo")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(procRoot, "buddyinfo"), data, 0o644))
	got, err := readiness.Read(root, procRoot, []int{0, 2}, 4096)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, uint64(1019340*1024), got[1].FreeBytes, "node2 MemFree of the fixture")
	require.Equal(t, int64(-1), got[1].FreeRunBytes, "node 2 not in buddyinfo: unknown")
	require.Equal(t, int64((3+753+314)*4<<20), got[0].FreeRunBytes)
}
