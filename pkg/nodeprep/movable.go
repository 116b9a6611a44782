package nodeprep

import "sort"

// nodeSpan is one node's memory as the boot-time zone split sees it.
// Units: pages.
type nodeSpan struct {
	node int
	// low is memory below the highest zone (DMA, DMA32): always kernel
	// memory, counted against kernelcore.
	low uint64
	// high is memory in the highest zone (Normal, plus Movable already).
	high uint64
}

// movableSplit predicts how much of each node's highest-zone memory
// becomes ZONE_MOVABLE with movablecore=movable (pages), following
// find_zone_movable_pfns_for_nodes() of Linux 6.1 (mm/page_alloc.c):
// kernelcore = total - movablecore is spread evenly over the nodes with
// memory; memory below the highest zone counts as kernel memory of its
// node; a node with less memory than its share gives the rest to the
// others. Holes and the MAX_ORDER rounding of the zone start are ignored.
func movableSplit(spans []nodeSpan, movable uint64) map[int]uint64 {
	sort.Slice(spans, func(i, j int) bool { return spans[i].node < spans[j].node })
	var total uint64
	for _, s := range spans {
		total += s.low + s.high
	}
	out := make(map[int]uint64, len(spans))
	if movable == 0 || movable >= total {
		for _, s := range spans {
			if movable == 0 {
				out[s.node] = 0
			} else {
				out[s.node] = s.high
			}
		}
		return out
	}
	required := total - movable
	lowDone := make([]bool, len(spans))
	kernelHigh := make([]uint64, len(spans)) // high pages given to the kernel
	usable := uint64(0)
	for _, s := range spans {
		if s.low+s.high > 0 {
			usable++
		}
	}
	for usable > 0 {
		perNode := required / usable
		for i, s := range spans {
			if s.low+s.high == 0 {
				continue
			}
			if required < perNode {
				perNode = required / usable
			}
			remaining := perNode
			if !lowDone[i] && s.low > 0 {
				lowDone[i] = true
				remaining -= min(s.low, remaining)
				required -= min(s.low, required)
			}
			lowDone[i] = true
			size := min(s.high-kernelHigh[i], remaining)
			kernelHigh[i] += size
			required -= min(required, size)
		}
		usable--
		if required <= usable {
			break
		}
	}
	for i, s := range spans {
		out[s.node] = s.high - kernelHigh[i]
	}
	return out
}
