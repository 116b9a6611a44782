package teardown

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// A 4 MiB ring flooded with McKernel's allocation fallback lines is saved
// as its boot messages, a note, and its last lines: bounded per job.
func TestBoundKmsg(t *testing.T) {
	var ring bytes.Buffer
	ring.WriteString("IHK/McKernel started.\nKCommand Line: hidos dump_level=24\n")
	for i := 0; ring.Len() < 4<<20-4096-200; i++ {
		fmt.Fprintf(&ring, "mckernel_allocate_aligned_pages_node: failed to allocate %d pages from node 0\n", i%64+1)
	}
	ring.WriteString("do_exit: exit_group(0)\n")
	msg := ring.Bytes()
	require.Greater(t, countAllocFallback(msg), 40000)

	out := boundKmsg(msg, kmsgSaveMax, kmsgSaveHead)
	require.LessOrEqual(t, len(out), kmsgSaveMax+100)
	require.True(t, bytes.HasPrefix(out, []byte("IHK/McKernel started.\nKCommand Line:")), "boot messages kept")
	require.True(t, bytes.HasSuffix(out, []byte("do_exit: exit_group(0)\n")), "last messages kept")
	require.Contains(t, string(out), "bytes of the LWK kernel log left out]\n")
	for _, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		require.True(t, bytes.HasPrefix(line, []byte("mckernel_allocate")) || bytes.HasPrefix(line, []byte("IHK/")) ||
			bytes.HasPrefix(line, []byte("KCommand")) || bytes.HasPrefix(line, []byte("do_exit")) ||
			bytes.HasPrefix(line, []byte("[slurm-lwk:")), "cut inside a line: %q", line)
	}

	small := []byte("short log\n")
	require.Equal(t, small, boundKmsg(small, kmsgSaveMax, kmsgSaveHead))
}
