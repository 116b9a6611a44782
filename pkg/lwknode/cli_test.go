package lwknode

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/backend"
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

func TestLogDoneSaysHowToStartFasterOnLargeNodes(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	for _, tc := range []struct {
		name  string
		procs int
		env   string
		warn  bool
	}{
		{"small node, runtime default", 16, "", false},
		{"at the threshold", manyProcs, "", false},
		{"large node, runtime default", 256, "", true},
		{"large node, admin's own setting", 256, "256", false},
		{"large node, a value the runtime ignores", 256, "0", true},
		{"large node, not a number", 256, "all", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GOMAXPROCS(tc.procs)
			t.Setenv("GOMAXPROCS", tc.env)
			var buf bytes.Buffer
			n := &Node{Log: slog.New(slog.NewJSONHandler(&buf, nil)), backend: &backend.Opened{}}
			n.LogDone("prolog done", time.Now())
			var lines []map[string]any
			for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &m))
				lines = append(lines, m)
			}
			require.Equal(t, "prolog done", lines[0]["msg"])
			require.EqualValues(t, tc.procs, lines[0]["gomaxprocs"])
			if !tc.warn {
				require.Len(t, lines, 1, "no advice: %s", buf.String())
				return
			}
			require.Len(t, lines, 2)
			require.Equal(t, "WARN", lines[1]["level"])
			require.Contains(t, lines[1]["msg"], "GOMAXPROCS=2")
		})
	}
}
