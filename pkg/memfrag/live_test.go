package memfrag_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
)

// TestLiveKernel reads this machine's /proc (read-only): the zones parse,
// buddyinfo agrees with zoneinfo on which zones exist, and the free frames
// found in /proc/kpageflags are plausible against the zones' free counts.
// It needs root for kpageflags; LWK_REQUIRE_ROOT=1 turns the skip into a
// failure.
func TestLiveKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("LWK_REQUIRE_ROOT") == "1" {
			t.Fatal("LWK_REQUIRE_ROOT=1 but not root")
		}
		t.Skip("not root: /proc/kpageflags is readable by root only")
	}
	if _, err := os.Stat("/proc/kpageflags"); err != nil {
		t.Skipf("no /proc/kpageflags (CONFIG_PROC_PAGE_MONITOR off?): %v", err)
	}
	zones, err := memfrag.ReadZoneInfo("/")
	require.NoError(t, err)
	buddy, err := memfrag.ReadBuddyInfo("/")
	require.NoError(t, err)
	var zoneFree, buddyFree uint64
	nodes := map[int]bool{}
	for _, z := range zones {
		zoneFree += z.Free
		nodes[z.Node] = true
	}
	for _, b := range buddy {
		require.True(t, nodes[b.Node], "buddyinfo node %d not in zoneinfo", b.Node)
		for k, c := range b.Free {
			buddyFree += c << uint(k)
		}
	}
	require.NotZero(t, zoneFree)
	var scanned uint64
	for n := range nodes {
		st, err := memfrag.NewPageFlags("/").Scan(memfrag.NodeRanges(zones, n), 65536)
		require.NoError(t, err)
		scanned += st.FreeFrames
	}
	// Free memory moves while we read; the scan counts buddy blocks only
	// (not per-CPU lists), so it is at most the zones' free count plus
	// churn, and not far below the buddy lists' total.
	t.Logf("free pages: zoneinfo %d, buddyinfo %d, kpageflags scan %d", zoneFree, buddyFree, scanned)
	require.InDelta(t, float64(buddyFree), float64(scanned), 0.1*float64(buddyFree)+1024)
}
