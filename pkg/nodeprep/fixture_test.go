package nodeprep_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// q35 is the layout the VM harness boots (scripts/vm-node): 4 CPUs, node 0
// with 1 GiB below 4 GiB (DMA32) and CPUs 0-1, nodes 1-3 with 1 GiB each
// above 4 GiB (Normal), CPU 2 on node 1, CPU 3 on node 2, node 3
// memory-only. Memory blocks are 128 MiB.
type q35 struct {
	root string
	// zone of each memory block: "Normal", "Movable", "DMA32".
	blocks map[int]string
	// kpageflags frames: buddy heads at every 1024th frame of the free
	// ranges.
}

const (
	blockBytes  = 128 << 20
	blockFrames = blockBytes / 4096
)

// nodeBlocks are the block indices of each node.
var nodeBlocks = map[int][]int{0: r(0, 8), 1: r(32, 40), 2: r(40, 48), 3: r(48, 56)}

func r(a, b int) []int {
	var out []int
	for i := a; i < b; i++ {
		out = append(out, i)
	}
	return out
}

func put(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

func link(t *testing.T, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.Symlink(target, p))
}

// newQ35 writes the tree. movable lists blocks already in ZONE_MOVABLE.
func newQ35(t *testing.T, movable ...int) *q35 {
	t.Helper()
	root := t.TempDir()
	m := &q35{root: root, blocks: map[int]string{}}
	cpuNode := map[int]int{0: 0, 1: 0, 2: 1, 3: 2}
	for _, f := range []string{"possible", "present", "online"} {
		put(t, root, "sys/devices/system/cpu/"+f, "0-3\n")
	}
	put(t, root, "sys/devices/system/cpu/offline", "\n")
	for c, n := range cpuNode {
		d := fmt.Sprintf("sys/devices/system/cpu/cpu%d/", c)
		put(t, root, d+"online", "1\n")
		put(t, root, d+"topology/physical_package_id", fmt.Sprintf("%d\n", c))
		put(t, root, d+"topology/core_id", "0\n")
		put(t, root, d+"topology/thread_siblings_list", fmt.Sprintf("%d\n", c))
		link(t, root, d+fmt.Sprintf("node%d", n), fmt.Sprintf("../../node/node%d", n))
	}
	for _, f := range []string{"possible", "online", "has_memory"} {
		put(t, root, "sys/devices/system/node/"+f, "0-3\n")
	}
	put(t, root, "sys/devices/system/node/has_cpu", "0-2\n")
	put(t, root, "sys/devices/system/node/has_normal_memory", "0-3\n")
	put(t, root, "sys/devices/system/memory/block_size_bytes", "8000000\n")
	cpulist := map[int]string{0: "0-1", 1: "2", 2: "3", 3: ""}
	for n := 0; n < 4; n++ {
		d := fmt.Sprintf("sys/devices/system/node/node%d/", n)
		put(t, root, d+"cpulist", cpulist[n]+"\n")
		put(t, root, d+"meminfo", fmt.Sprintf("Node %d MemTotal:       1048576 kB\nNode %d MemFree:         900000 kB\n", n, n))
		put(t, root, d+"distance", "10 20 20 20\n")
		put(t, root, d+"compact", "")
		for _, b := range nodeBlocks[n] {
			zone := "Normal"
			if n == 0 {
				zone = "DMA32"
			}
			for _, mv := range movable {
				if mv == b {
					zone = "Movable"
				}
			}
			m.blocks[b] = zone
			bd := fmt.Sprintf("sys/devices/system/memory/memory%d/", b)
			put(t, root, bd+"phys_index", fmt.Sprintf("%08x\n", b))
			put(t, root, bd+"removable", "1\n")
			link(t, root, bd+fmt.Sprintf("node%d", n), fmt.Sprintf("../../node/node%d", n))
			link(t, root, d+fmt.Sprintf("memory%d", b), fmt.Sprintf("../../memory/memory%d", b))
		}
	}
	m.writeBlocks(t)
	put(t, root, "proc/zoneinfo", zoneinfo())
	put(t, root, "proc/buddyinfo", `Node 0, zone    DMA32    1 0 0 0 0 0 0 0 0 2 200
Node 1, zone   Normal    0 0 0 0 0 0 0 0 0 3 100
Node 2, zone   Normal    0 0 0 0 0 0 0 0 0 0 0
Node 3, zone   Normal    0 0 0 0 0 0 0 0 0 1 250
`)
	put(t, root, "proc/cmdline", "console=ttyS0 irqaffinity=0-1\n")
	put(t, root, "proc/irq/0/smp_affinity_list", "0\n")
	put(t, root, "proc/irq/0/timer/.keep", "")
	put(t, root, "proc/irq/24/smp_affinity_list", "0-3\n")
	put(t, root, "proc/irq/24/virtio0/.keep", "")
	put(t, root, "proc/irq/25/smp_affinity_list", "3\n")
	put(t, root, "proc/1/stat", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0\n")
	put(t, root, "proc/1/status", "Cpus_allowed_list:\t0-3\nMems_allowed_list:\t0-3\n")
	put(t, root, "proc/2/stat", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0\n")
	put(t, root, "proc/2/status", "Cpus_allowed_list:\t0-3\nMems_allowed_list:\t0-3\n")
	put(t, root, "proc/9/stat", "9 (ksoftirqd/3) S 2 0 0 0 -1 69238848 0 0 0 0\n")
	put(t, root, "proc/9/status", "Cpus_allowed_list:\t3\nMems_allowed_list:\t0-3\n")
	put(t, root, "proc/40/stat", "40 (sshd) S 1 40 40 0 -1 4194560 0 0 0 0\n")
	put(t, root, "proc/40/status", "Cpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n")
	// Page flags: node 1 fully free; node 2 free except one slab page in
	// the middle of each block; node 3 free in its upper half only.
	m.writeFlags(t)
	return m
}

func zoneinfo() string {
	var b strings.Builder
	// Node 0: DMA (16 MiB) and DMA32 up to 1 GiB.
	fmt.Fprintf(&b, "Node 0, zone      DMA\n  pages free     3000\n        spanned  4095\n        present  3998\n        managed  3840\n  start_pfn:           1\n")
	fmt.Fprintf(&b, "Node 0, zone    DMA32\n  pages free     200000\n        spanned  258048\n        present  258048\n        managed  250000\n  start_pfn:           4096\n")
	for n := 1; n <= 3; n++ {
		start := nodeBlocks[n][0] * blockFrames
		fmt.Fprintf(&b, "Node %d, zone   Normal\n  pages free     200000\n        spanned  262144\n        present  262144\n        managed  250000\n  start_pfn:           %d\n", n, start)
		fmt.Fprintf(&b, "Node %d, zone  Movable\n  pages free     0\n        spanned  0\n        present  0\n        managed  0\n  start_pfn:           0\n", n)
	}
	return b.String()
}

func (m *q35) writeBlocks(t *testing.T) {
	t.Helper()
	for b, zone := range m.blocks {
		bd := fmt.Sprintf("sys/devices/system/memory/memory%d/", b)
		put(t, m.root, bd+"state", "online\n")
		put(t, m.root, bd+"valid_zones", zone+"\n")
	}
}

func (m *q35) writeFlags(t *testing.T) {
	t.Helper()
	const kpfBuddy, kpfSlab = 1 << 10, 1 << 7
	frames := 56 * blockFrames
	buf := make([]byte, 8*frames)
	set := func(pfn int, v uint64) { binary.LittleEndian.PutUint64(buf[8*pfn:], v) }
	for n := 1; n <= 3; n++ {
		for _, b := range nodeBlocks[n] {
			start := b * blockFrames
			for f := start; f < start+blockFrames; f += 1024 {
				set(f, kpfBuddy)
			}
			if n == 2 {
				set(start+blockFrames/2, kpfSlab)
				set(start+blockFrames/2+1, kpfBuddy) // an order-0 block
				for o := 1; o < 10; o++ {            // then 2^o aligned blocks
					set(start+blockFrames/2+(1<<o), kpfBuddy)
				}
			}
			if n == 3 && b < nodeBlocks[3][4] {
				for f := start; f < start+blockFrames; f++ {
					set(f, 1<<5) // LRU: allocated
				}
			}
		}
	}
	put(t, m.root, "proc/kpageflags", string(buf))
}

// fakeKernel stands in for the kernel's memory hotplug: it moves blocks
// between zones in the tree and refuses the blocks in busy (EBUSY), as
// the kernel does for blocks with unmovable pages.
type fakeKernel struct {
	m     *q35
	t     *testing.T
	busy  map[int]bool
	calls int
}

func (k *fakeKernel) SetZone(index int, zone string) (bool, error) {
	k.calls++
	if k.m.blocks[index] == zone {
		return false, nil
	}
	if k.busy[index] {
		return false, fmt.Errorf("write \"offline\" to memory%d/state: %w", index, syscall.EBUSY)
	}
	k.m.blocks[index] = zone
	put(k.t, k.m.root, fmt.Sprintf("sys/devices/system/memory/memory%d/valid_zones", index), zone+"\n")
	return true, nil
}
