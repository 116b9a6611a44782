package readiness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
)

// RunBytes is the smallest run that counts as reservable: IHK's memory
// granule. Units: bytes.
const RunBytes = 4 << 20

// Node is one NUMA node's readiness.
type Node struct {
	NUMANode int `json:"numa_node"`
	// FreeBytes is the node's MemFree.
	FreeBytes uint64 `json:"free_bytes"`
	// FreeRunBytes is free memory in runs of at least RunBytes, or -1 when
	// /proc/buddyinfo does not list the node.
	FreeRunBytes int64 `json:"free_run_bytes"`
}

// Read returns the readiness of each node in nodes, reading meminfo under
// sysfsRoot and buddyinfo under procRoot; pageSize is the kernel's base page
// (os.Getpagesize()).
func Read(sysfsRoot, procRoot string, nodes []int, pageSize int) ([]Node, error) {
	fs, err := sysfs.New(sysfsRoot)
	if err != nil {
		return nil, err
	}
	runs, err := ReadBuddyinfo(filepath.Join(procRoot, "buddyinfo"), pageSize)
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		mi, err := fs.NodeMemInfo(n)
		if err != nil {
			return nil, fmt.Errorf("readiness of numa node %d: %w", n, err)
		}
		r := Node{NUMANode: n, FreeBytes: mi.FreeBytes, FreeRunBytes: -1}
		if v, ok := runs[n]; ok {
			r.FreeRunBytes = int64(v)
		}
		out = append(out, r)
	}
	return out, nil
}

// ReadBuddyinfo sums, per NUMA node over all zones, the free blocks of at
// least RunBytes: lines "Node N, zone NAME c0 c1 ... c10", c_k free blocks
// of 2^k pages. A missing file gives an empty map.
func ReadBuddyinfo(path string, pageSize int) (map[int]uint64, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[int]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	return ParseBuddyinfo(bufio.NewScanner(f), path, pageSize)
}

// ParseBuddyinfo parses buddyinfo lines; see ReadBuddyinfo.
func ParseBuddyinfo(sc *bufio.Scanner, path string, pageSize int) (map[int]uint64, error) {
	if pageSize <= 0 {
		return nil, fmt.Errorf("buddyinfo %s: page size %d", path, pageSize)
	}
	out := map[int]uint64{}
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(strings.ReplaceAll(sc.Text(), ",", " "))
		if len(f) == 0 {
			continue
		}
		if len(f) < 5 || f[0] != "Node" || f[2] != "zone" {
			return nil, fmt.Errorf("buddyinfo %s line %d: unexpected %q", path, line, sc.Text())
		}
		node, err := strconv.Atoi(f[1])
		if err != nil || node < 0 {
			return nil, fmt.Errorf("buddyinfo %s line %d: node %q", path, line, f[1])
		}
		for order, c := range f[4:] {
			n, err := strconv.ParseUint(c, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("buddyinfo %s line %d: count %q", path, line, c)
			}
			block := uint64(pageSize) << order
			if block >= RunBytes {
				out[node] += n * block
			}
		}
		if _, ok := out[node]; !ok {
			out[node] = 0
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
