package sysfs

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// NodeMemInfo holds the fields of nodeN/meminfo slurm-lwk uses.
type NodeMemInfo struct {
	// TotalBytes is MemTotal (memory the node's page allocator manages).
	// Units: bytes.
	TotalBytes uint64
	// FreeBytes is MemFree. Units: bytes.
	FreeBytes uint64
}

// PossibleNodes reads node/possible.
func (f FS) PossibleNodes() (cpuset.CPUSet, error) { return f.readList(NodeDir, "possible") }

// OnlineNodes reads node/online. nodeN/distance has one entry per online
// node, in this order.
func (f FS) OnlineNodes() (cpuset.CPUSet, error) { return f.readList(NodeDir, "online") }

// NodesWithCPU reads node/has_cpu (nodes that some online CPU's
// cpu_to_node points at).
func (f FS) NodesWithCPU() (cpuset.CPUSet, error) { return f.readList(NodeDir, "has_cpu") }

// NodesWithMemory reads node/has_memory.
func (f FS) NodesWithMemory() (cpuset.CPUSet, error) { return f.readList(NodeDir, "has_memory") }

// NodesWithNormalMemory reads node/has_normal_memory (nodes with
// ZONE_NORMAL; nodes entirely below 4 GiB on x86 have only DMA/DMA32).
func (f FS) NodesWithNormalMemory() (cpuset.CPUSet, error) {
	return f.readList(NodeDir, "has_normal_memory")
}

// NodeIDs lists the nodeN directories, ascending.
func (f FS) NodeIDs() ([]int, error) { return f.numberedEntries(NodeDir, "node") }

// NodeCPUList reads nodeN/cpulist. On x86 offline CPUs are not listed; with
// numa=fake a CPU is listed by every emulated node of its physical node.
func (f FS) NodeCPUList(node int) (cpuset.CPUSet, error) {
	return f.readList(NodeDir, nodeName(node), "cpulist")
}

// NodeDistance reads nodeN/distance: one distance per online node, in
// node/online order.
func (f FS) NodeDistance(node int) ([]int, error) {
	s, err := f.readString(NodeDir, nodeName(node), "distance")
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, &ParseError{Path: f.Path(NodeDir, nodeName(node), "distance"), Content: s, Err: errors.New("empty")}
	}
	out := make([]int, len(fields))
	for i, fld := range fields {
		v, err := strconv.Atoi(fld)
		if err != nil || v <= 0 || v > 255 {
			if err == nil {
				err = errors.New("distance out of range 1..255")
			}
			return nil, &ParseError{Path: f.Path(NodeDir, nodeName(node), "distance"), Content: shorten(s), Err: err}
		}
		out[i] = v
	}
	return out, nil
}

// NodeMemInfo reads MemTotal and MemFree from nodeN/meminfo, whose lines
// read "Node N MemTotal:       12345 kB".
func (f FS) NodeMemInfo(node int) (NodeMemInfo, error) {
	p := f.Path(NodeDir, nodeName(node), "meminfo")
	s, err := f.readString(NodeDir, nodeName(node), "meminfo")
	if err != nil {
		return NodeMemInfo{}, err
	}
	var mi NodeMemInfo
	var haveTotal, haveFree bool
	prefix := fmt.Sprintf("Node %d ", node)
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			return NodeMemInfo{}, &ParseError{Path: p, Content: shorten(line), Err: fmt.Errorf("line does not start with %q", prefix)}
		}
		key, val, ok := strings.Cut(rest, ":")
		if !ok {
			return NodeMemInfo{}, &ParseError{Path: p, Content: shorten(line), Err: errors.New("no colon")}
		}
		var dst *uint64
		switch strings.TrimSpace(key) {
		case "MemTotal":
			dst, haveTotal = &mi.TotalBytes, true
		case "MemFree":
			dst, haveFree = &mi.FreeBytes, true
		default:
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			return NodeMemInfo{}, &ParseError{Path: p, Content: shorten(line), Err: errors.New(`want "<number> kB"`)}
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil || kb > (1<<54) {
			if err == nil {
				err = errors.New("value too large")
			}
			return NodeMemInfo{}, &ParseError{Path: p, Content: shorten(line), Err: err}
		}
		*dst = kb * 1024
	}
	if !haveTotal || !haveFree {
		return NodeMemInfo{}, &ParseError{Path: p, Content: shorten(s), Err: errors.New("MemTotal or MemFree missing")}
	}
	if mi.FreeBytes > mi.TotalBytes {
		return NodeMemInfo{}, &ParseError{Path: p, Content: shorten(s), Err: errors.New("MemFree larger than MemTotal")}
	}
	return mi, nil
}

// NodeMemoryBlocks lists the nodeN/memoryM links (M ascending): the memory
// blocks with pages on the node.
func (f FS) NodeMemoryBlocks(node int) ([]int, error) {
	return f.numberedEntries(filepath.Join(NodeDir, nodeName(node)), "memory")
}

func nodeName(node int) string { return fmt.Sprintf("node%d", node) }
