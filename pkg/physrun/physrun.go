// Package physrun measures how contiguous a memory reservation really is:
// it merges physically adjacent chunks into runs and counts the share of a
// request that lies in runs of at least a given length, as the paper's
// Figures 5-7 count LWK memory obtained in chunks of 256 MiB or more.
//
// The chunks come from the IHK test driver's debugfs list
// (<root>/sys/kernel/debug/ihk_testdrv/chunks, tests/ihk-testdrv), one line
// per chunk after a header:
//
//	node owner phys bytes
//	1 -1 0x140000000 268435456
//
// with the physical start in hex and owner -1 for the device's free pool
// (reserved, not assigned to an OS instance).
package physrun

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ChunksFile is the test driver's chunk list below a root directory.
const ChunksFile = "sys/kernel/debug/ihk_testdrv/chunks"

// FreePool is the owner of chunks reserved but not assigned to an instance.
const FreePool = -1

// Chunk is one physically contiguous piece of memory. Units: bytes.
type Chunk struct {
	Node  int    `json:"node"`
	Owner int    `json:"owner"`
	Start uint64 `json:"start"`
	Bytes uint64 `json:"bytes"`
}

// End is the first byte after the chunk.
func (c Chunk) End() uint64 { return c.Start + c.Bytes }

// ErrOverlap reports chunks that share physical memory: the list is wrong.
var ErrOverlap = errors.New("chunks overlap")

// Merge returns the runs the chunks form: chunks on one NUMA node whose
// physical ranges touch are joined, whatever their order in the input.
// Runs come sorted by start; Owner is the first chunk's. Empty chunks are
// dropped. Overlapping chunks are an error (ErrOverlap).
func Merge(chunks []Chunk) ([]Chunk, error) {
	in := make([]Chunk, 0, len(chunks))
	for _, c := range chunks {
		if c.Bytes > 0 {
			in = append(in, c)
		}
	}
	slices.SortFunc(in, func(a, b Chunk) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	var runs []Chunk
	for _, c := range in {
		if n := len(runs); n > 0 {
			last := &runs[n-1]
			if c.Start < last.End() {
				return nil, fmt.Errorf("%w: [%#x, %#x) and [%#x, %#x)", ErrOverlap, last.Start, last.End(), c.Start, c.End())
			}
			if c.Start == last.End() && c.Node == last.Node {
				last.Bytes += c.Bytes
				continue
			}
		}
		runs = append(runs, c)
	}
	return runs, nil
}

// BytesInRuns is the memory in runs of at least minBytes.
func BytesInRuns(runs []Chunk, minBytes uint64) uint64 {
	var t uint64
	for _, r := range runs {
		if r.Bytes >= minBytes {
			t += r.Bytes
		}
	}
	return t
}

// Longest is the longest run's size (0 for none).
func Longest(runs []Chunk) uint64 {
	var m uint64
	for _, r := range runs {
		m = max(m, r.Bytes)
	}
	return m
}

// Share is the part of requested bytes obtained in merged runs of at least
// minBytes: BytesInRuns over requested, capped at 1 (a reservation may hand
// out more than asked when it cannot split a compound page). Zero requested
// gives 0.
func Share(chunks []Chunk, requested, minBytes uint64) (float64, error) {
	runs, err := Merge(chunks)
	if err != nil {
		return 0, err
	}
	if requested == 0 {
		return 0, nil
	}
	return min(1, float64(BytesInRuns(runs, minBytes))/float64(requested)), nil
}

// Owned returns the chunks of one owner (FreePool: reserved, unassigned).
func Owned(chunks []Chunk, owner int) []Chunk {
	var out []Chunk
	for _, c := range chunks {
		if c.Owner == owner {
			out = append(out, c)
		}
	}
	return out
}

// Parse reads the test driver's chunk list; name labels errors.
func Parse(r io.Reader, name string) ([]Chunk, error) {
	sc := bufio.NewScanner(r)
	var out []Chunk
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			if text != "node owner phys bytes" {
				return nil, fmt.Errorf("%s: line 1: want header %q, got %q", name, "node owner phys bytes", text)
			}
			continue
		}
		if text == "" {
			continue
		}
		c, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d %q: %w", name, line, text, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if line == 0 {
		return nil, fmt.Errorf("%s: empty, no header", name)
	}
	return out, nil
}

func parseLine(text string) (Chunk, error) {
	f := strings.Fields(text)
	if len(f) != 4 {
		return Chunk{}, fmt.Errorf("want 4 fields, got %d", len(f))
	}
	node, err := strconv.Atoi(f[0])
	if err != nil || node < 0 {
		return Chunk{}, fmt.Errorf("node %q: not a node number", f[0])
	}
	owner, err := strconv.Atoi(f[1])
	if err != nil || owner < FreePool {
		return Chunk{}, fmt.Errorf("owner %q: not -1 or an os index", f[1])
	}
	hex, ok := strings.CutPrefix(f[2], "0x")
	if !ok {
		return Chunk{}, fmt.Errorf("start %q: want 0x-prefixed hex", f[2])
	}
	start, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return Chunk{}, fmt.Errorf("start %q: %w", f[2], err)
	}
	n, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil {
		return Chunk{}, fmt.Errorf("bytes %q: %w", f[3], err)
	}
	if start+n < start {
		return Chunk{}, fmt.Errorf("chunk [%#x + %d) wraps around", start, n)
	}
	return Chunk{Node: node, Owner: owner, Start: start, Bytes: n}, nil
}

// Read reads <root>/sys/kernel/debug/ihk_testdrv/chunks.
func Read(root string) ([]Chunk, error) {
	path := filepath.Join(root, ChunksFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open ihk test driver chunk list: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}
