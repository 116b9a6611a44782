package lwknode

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestShortLivedCollectsOnlyNearTheLimit(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	ShortLived()
	require.Equal(t, -1, debug.SetGCPercent(-1), "no collection at the heap goal")
	require.Equal(t, int64(shortLivedHeapLimit), debug.SetMemoryLimit(-1), "a collection near the limit")
}
