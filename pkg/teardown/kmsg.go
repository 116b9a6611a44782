package teardown

import (
	"bytes"
	"fmt"
)

// Bounds of a saved LWK kernel log. The ring is up to 4 MiB per job, and
// McKernel 1.7.1+ on x86 can fill it with one "failed to allocate ... from
// node N" line per default-policy allocation from a CPU whose own NUMA node
// holds no LWK memory (every CPU of the paper's split layout): keep the
// start (the boot messages) and the end (what happened last), not a
// megabyte of the same line per job. Units: bytes.
const (
	kmsgSaveMax  = 1 << 20
	kmsgSaveHead = 64 << 10
)

// allocFallback is the line McKernel's allocator logs when it falls back
// from the CPU's own node.
var allocFallback = []byte("failed to allocate")

// boundKmsg returns msg if it fits in limit bytes, else its first head
// bytes and its last bytes (cut at line boundaries) around a line saying
// how much was left out.
func boundKmsg(msg []byte, limit, head int) []byte {
	if len(msg) <= limit {
		return msg
	}
	h := msg[:head]
	if i := bytes.LastIndexByte(h, '\n'); i >= 0 {
		h = h[:i+1]
	}
	tail := msg[len(msg)-(limit-head):]
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	note := fmt.Sprintf("[slurm-lwk: %d bytes of the LWK kernel log left out]\n", len(msg)-len(h)-len(tail))
	out := make([]byte, 0, len(h)+len(note)+len(tail))
	out = append(append(append(out, h...), note...), tail...)
	return out
}

// countAllocFallback counts McKernel's allocation fallback lines.
func countAllocFallback(msg []byte) int { return bytes.Count(msg, allocFallback) }
