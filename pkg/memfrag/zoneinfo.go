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

// Zone is one zone of /proc/zoneinfo. Units: pages.
type Zone struct {
	// Node is the NUMA node.
	Node int
	// Name is the zone name.
	Name string
	// StartPFN is the zone's first page frame; Spanned the frames from
	// there to its end (holes included); Present the frames with memory;
	// Managed the frames the buddy allocator manages.
	StartPFN, Spanned, Present, Managed uint64
	// Free is "pages free".
	Free uint64
	// PerCPU is the sum of the "count:" lines of the zone's pagesets: free
	// pages cached on per-CPU lists, which buddyinfo and kpageflags do not
	// show as free (they carry no flags).
	PerCPU uint64
}

// EndPFN is one past the zone's last frame.
func (z Zone) EndPFN() uint64 { return z.StartPFN + z.Spanned }

// ReadZoneInfo reads root/proc/zoneinfo. Zones the kernel lists with
// nothing spanned are kept (Spanned 0).
func ReadZoneInfo(root string) ([]Zone, error) {
	p := filepath.Join(root, ZoneInfoPath)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []Zone
	var cur *Zone
	var haveStart bool
	finish := func() error {
		if cur != nil && cur.Spanned > 0 && !haveStart {
			return &ParseError{Path: p, Line: fmt.Sprintf("Node %d, zone %s", cur.Node, cur.Name), Err: errors.New("no start_pfn")}
		}
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Node ") {
			if err := finish(); err != nil {
				return nil, err
			}
			head, rest, ok := strings.Cut(line, ",")
			node, err := nodeField(head)
			f := strings.Fields(rest)
			if !ok || err != nil || len(f) != 2 || f[0] != "zone" {
				return nil, &ParseError{Path: p, Line: shorten(line), Err: errors.New(`want "Node N, zone NAME"`)}
			}
			out = append(out, Zone{Node: node, Name: f[1]})
			cur, haveStart = &out[len(out)-1], false
			continue
		}
		if cur == nil {
			continue
		}
		f := strings.Fields(line)
		var key, val string
		switch {
		case len(f) == 3 && f[0] == "pages" && f[1] == "free":
			key, val = "free", f[2]
		case len(f) == 2 && (f[0] == "spanned" || f[0] == "present" || f[0] == "managed" || f[0] == "start_pfn:" || f[0] == "count:"):
			key, val = strings.TrimSuffix(f[0], ":"), f[1]
		default:
			continue
		}
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return nil, &ParseError{Path: p, Line: shorten(line), Err: err}
		}
		switch key {
		case "free":
			cur.Free = v
		case "spanned":
			cur.Spanned = v
		case "present":
			cur.Present = v
		case "managed":
			cur.Managed = v
		case "start_pfn":
			cur.StartPFN, haveStart = v, true
		case "count":
			cur.PerCPU += v
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, &ParseError{Path: p, Err: errors.New("no zones")}
	}
	return out, nil
}

// Range is a half-open range of page frames [Start, End).
type Range struct {
	Start, End uint64
}

// NodeRanges returns the page-frame ranges the zones of node span, merged
// and sorted. ZONE_MOVABLE made at run time overlaps the span of the zone
// its blocks came from, so spans are merged rather than added.
func NodeRanges(zones []Zone, node int) []Range {
	var rs []Range
	for _, z := range zones {
		if z.Node == node && z.Spanned > 0 {
			rs = append(rs, Range{z.StartPFN, z.EndPFN()})
		}
	}
	return mergeRanges(rs)
}

func mergeRanges(rs []Range) []Range {
	for i := 1; i < len(rs); i++ { // insertion sort: a handful of zones
		for j := i; j > 0 && rs[j].Start < rs[j-1].Start; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && r.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}
