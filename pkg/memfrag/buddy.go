package memfrag

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseError reports a /proc file whose content does not parse.
type ParseError struct {
	// Path is the file's full path (root included).
	Path string
	// Line is the offending line, shortened.
	Line string
	// Err is the underlying parse error.
	Err error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse %s: %q: %v", e.Path, e.Line, e.Err)
}

// Unwrap returns the underlying parse error.
func (e *ParseError) Unwrap() error { return e.Err }

func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Paths of the files read, relative to the root.
const (
	BuddyInfoPath  = "proc/buddyinfo"
	ZoneInfoPath   = "proc/zoneinfo"
	KPageFlagsPath = "proc/kpageflags"
)

// maxOrders bounds the order columns of buddyinfo (MAX_ORDER is 11 on
// x86_64 and up to 14 with 64 KiB-page arm64 configurations).
const maxOrders = 16

// BuddyZone is one line of /proc/buddyinfo.
type BuddyZone struct {
	// Node is the NUMA node.
	Node int
	// Zone is the zone name (DMA, DMA32, Normal, Movable, ...).
	Zone string
	// Free[k] is the number of free blocks of order k (2^k pages each).
	Free []uint64
}

// FreeBlocksOfBytes returns how many free blocks of size bytes the zone
// could hand out from its free lists: blocks of a larger order count for
// several. size must be a power-of-two multiple of pageSize.
func (z BuddyZone) FreeBlocksOfBytes(size, pageSize uint64) uint64 {
	var n uint64
	for k, c := range z.Free {
		bytes := pageSize << uint(k)
		if bytes >= size {
			n += c * (bytes / size)
		}
	}
	return n
}

// ReadBuddyInfo reads root/proc/buddyinfo.
func ReadBuddyInfo(root string) ([]BuddyZone, error) {
	p := filepath.Join(root, BuddyInfoPath)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []BuddyZone
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		z, err := parseBuddyLine(line)
		if err != nil {
			return nil, &ParseError{Path: p, Line: shorten(line), Err: err}
		}
		out = append(out, z)
	}
	if len(out) == 0 {
		return nil, &ParseError{Path: p, Err: errors.New("no zones")}
	}
	return out, nil
}

// parseBuddyLine parses "Node 0, zone   Normal   1 2 3 ...".
func parseBuddyLine(line string) (BuddyZone, error) {
	head, rest, ok := strings.Cut(line, ",")
	if !ok {
		return BuddyZone{}, errors.New("no comma")
	}
	node, err := nodeField(head)
	if err != nil {
		return BuddyZone{}, err
	}
	f := strings.Fields(rest)
	if len(f) < 3 || f[0] != "zone" {
		return BuddyZone{}, errors.New(`want "zone NAME COUNTS..."`)
	}
	if len(f)-2 > maxOrders {
		return BuddyZone{}, fmt.Errorf("%d orders, at most %d expected", len(f)-2, maxOrders)
	}
	z := BuddyZone{Node: node, Zone: f[1]}
	for _, s := range f[2:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return BuddyZone{}, err
		}
		z.Free = append(z.Free, v)
	}
	return z, nil
}

// nodeField parses "Node N".
func nodeField(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[0] != "Node" {
		return 0, errors.New(`want "Node N"`)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 0 || n > 1<<16 {
		return 0, fmt.Errorf("bad node number %q", f[1])
	}
	return n, nil
}
