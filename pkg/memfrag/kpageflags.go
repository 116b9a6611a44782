package memfrag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// KPF_* bits of /proc/kpageflags (include/uapi/linux/kernel-page-flags.h)
// that the scan uses.
const (
	KPFLRU      = 1 << 5
	KPFSlab     = 1 << 7
	KPFBuddy    = 1 << 10
	KPFNoPage   = 1 << 20
	KPFOffline  = 1 << 23
	KPFPgTable  = 1 << 26
	KPFReserved = 1 << 32
	KPFAnon     = 1 << 12
)

// Kind names what a frame that is not free holds, for diagnosis: what
// breaks the runs.
func Kind(flags uint64) string {
	switch {
	case flags&KPFNoPage != 0:
		return "nopage"
	case flags&KPFOffline != 0:
		return "offline"
	case flags&KPFReserved != 0:
		return "reserved"
	case flags&KPFSlab != 0:
		return "slab"
	case flags&KPFPgTable != 0:
		return "pgtable"
	case flags&KPFAnon != 0:
		return "anon"
	case flags&KPFLRU != 0:
		return "lru"
	case flags == 0:
		return "flagless"
	}
	return "other"
}

// maxBuddyOrder is the largest buddy order on x86_64 (MAX_ORDER-1 = 10 in
// Linux 6.1: 4 MiB blocks). Free blocks never cross an aligned window of
// 2^maxBuddyOrder frames, so the scan works window by window.
const (
	maxBuddyOrder = 10
	windowFrames  = 1 << maxBuddyOrder
)

// Run is a run of physically contiguous free page frames. Units: frames.
type Run struct {
	StartPFN, Frames uint64
}

// RunStats sums the free runs of a set of frame ranges.
type RunStats struct {
	// FreeFrames are all frames found free.
	FreeFrames uint64
	// LongFrames are the frames in runs of at least the threshold.
	LongFrames uint64
	// LongRuns is the number of such runs; Longest the longest run.
	LongRuns int
	Longest  uint64
	// Runs lists the runs of at least the threshold, in address order.
	Runs []Run
	// NotFree counts the frames that are not free by Kind; "flagless"
	// frames are per-CPU free lists or kernel pages without flags.
	NotFree map[string]uint64
}

// PageFlags reads /proc/kpageflags below a root.
type PageFlags struct {
	path string
}

// NewPageFlags returns a reader of root/proc/kpageflags.
func NewPageFlags(root string) PageFlags {
	return PageFlags{path: filepath.Join(root, KPageFlagsPath)}
}

// Scan finds the free runs in ranges (sorted, non-overlapping, as
// NodeRanges returns them) and counts the runs of at least minFrames.
// Runs never join across two ranges even when they touch: ranges are
// what a caller wants measured separately or a hole lies between.
func (p PageFlags) Scan(ranges []Range, minFrames uint64) (RunStats, error) {
	f, err := os.Open(p.path)
	if err != nil {
		return RunStats{}, err
	}
	defer f.Close()
	st := RunStats{NotFree: map[string]uint64{}}
	for _, r := range ranges {
		if err := scanRange(f, p.path, r, minFrames, &st); err != nil {
			return RunStats{}, err
		}
	}
	return st, nil
}

// chunkWindows is how many windows are read at a time (8 MiB of flags).
const chunkWindows = 1024

func scanRange(f io.ReaderAt, path string, r Range, minFrames uint64, st *RunStats) error {
	var run Run
	flush := func() {
		if run.Frames > 0 {
			st.FreeFrames += run.Frames
			if run.Frames >= minFrames {
				st.LongFrames += run.Frames
				st.LongRuns++
				st.Runs = append(st.Runs, run)
			}
			st.Longest = max(st.Longest, run.Frames)
		}
		run = Run{}
	}
	// Work on whole aligned windows so a buddy block is always seen whole;
	// frames outside r are read but not counted.
	start := r.Start &^ (windowFrames - 1)
	// Buffers sized to the range, at most chunkWindows windows: a scan of
	// one memory block allocates what the block needs, not 16 MiB.
	span := (max(r.End, start) - start + windowFrames - 1) &^ (windowFrames - 1)
	chunk := min(uint64(windowFrames*chunkWindows), span)
	buf := make([]byte, 8*chunk)
	flags := make([]uint64, chunk)
	free := make([]bool, windowFrames)
	for base := start; base < r.End; base += chunk {
		n := min(chunk, (r.End-base+windowFrames-1)&^(windowFrames-1))
		got, err := f.ReadAt(buf[:8*n], int64(8*base))
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s at frame %d: %w", path, base, err)
		}
		got /= 8
		for i := 0; i < int(n); i++ {
			if i < got {
				flags[i] = binary.LittleEndian.Uint64(buf[8*i:])
			} else {
				flags[i] = KPFNoPage // past the end: no page
			}
		}
		for w := uint64(0); w < n; w += windowFrames {
			markFree(flags[w:w+windowFrames], free)
			for i := uint64(0); i < windowFrames; i++ {
				pfn := base + w + i
				if pfn < r.Start || pfn >= r.End {
					continue
				}
				if free[i] {
					if run.Frames == 0 {
						run.StartPFN = pfn
					}
					run.Frames++
				} else {
					st.NotFree[Kind(flags[w+i])]++
					flush()
				}
			}
		}
	}
	flush()
	return nil
}

// markFree sets free[i] for the frames of one aligned window that belong
// to a free buddy block: a KPF_BUDDY frame and the flagless frames after
// it, up to the largest aligned block they fill.
func markFree(flags []uint64, free []bool) {
	for i := range free {
		free[i] = false
	}
	for i := 0; i < len(flags); {
		if flags[i]&KPFBuddy == 0 || flags[i]&KPFNoPage != 0 {
			i++
			continue
		}
		size := 1
		for k := 1; k <= maxBuddyOrder; k++ {
			s := 1 << k
			if i%s != 0 || i+s > len(flags) || !flagless(flags[i+s/2:i+s]) || !flagless(flags[i+1:i+s/2]) {
				break
			}
			size = s
		}
		for j := i; j < i+size; j++ {
			free[j] = true
		}
		i += size
	}
}

func flagless(fs []uint64) bool {
	for _, f := range fs {
		if f != 0 {
			return false
		}
	}
	return true
}
