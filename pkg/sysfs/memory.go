package sysfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// MemoryBlock is one memoryN directory of /sys/devices/system/memory.
type MemoryBlock struct {
	// Index is N of memoryN, which equals phys_index: the block's start
	// address divided by the block size.
	Index int
	// State is state: "online", "offline" or "going-offline".
	State string
	// ValidZones is valid_zones split on spaces: for an online block the
	// zone it is in ("none" when it spans several zones), for an offline
	// block the zones it may be onlined to, default first.
	ValidZones []string
	// Removable is removable ("1"). Kernels since 5.9 always report 1.
	Removable bool
	// Nodes are the K of the memoryN/nodeK links, ascending. Usually one; a
	// block straddling two nodes is linked to both.
	Nodes []int
}

// BlockSizeBytes reads memory/block_size_bytes (hexadecimal without 0x,
// e.g. "8000000" for 128 MiB). Units: bytes.
func (f FS) BlockSizeBytes() (uint64, error) {
	v, err := f.readHex(MemoryDir, "block_size_bytes")
	if err != nil {
		return 0, err
	}
	if v == 0 || v&(v-1) != 0 {
		return 0, &ParseError{Path: f.Path(MemoryDir, "block_size_bytes"), Content: fmt.Sprintf("%x", v), Err: errors.New("not a power of two")}
	}
	return v, nil
}

// MemoryBlockIDs lists the memoryN directories, ascending. A missing
// memory directory (no memory hotplug support) yields an error matching
// fs.ErrNotExist.
func (f FS) MemoryBlockIDs() ([]int, error) { return f.numberedEntries(MemoryDir, "memory") }

// MemoryBlock reads memoryN.
func (f FS) MemoryBlock(index int) (MemoryBlock, error) {
	dir := filepath.Join(MemoryDir, fmt.Sprintf("memory%d", index))
	b := MemoryBlock{Index: index}
	phys, err := f.readHex(dir, "phys_index")
	if err != nil {
		return MemoryBlock{}, err
	}
	if phys != uint64(index) {
		return MemoryBlock{}, &ParseError{Path: f.Path(dir, "phys_index"), Content: fmt.Sprintf("%x", phys), Err: fmt.Errorf("does not match directory index %d", index)}
	}
	if b.State, err = f.readString(dir, "state"); err != nil {
		return MemoryBlock{}, err
	}
	switch b.State {
	case "online", "offline", "going-offline":
	default:
		return MemoryBlock{}, &ParseError{Path: f.Path(dir, "state"), Content: shorten(b.State), Err: errors.New("unknown state")}
	}
	zones, err := f.readString(dir, "valid_zones")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Older kernels and some architectures have no valid_zones.
	case err != nil:
		return MemoryBlock{}, err
	default:
		b.ValidZones = strings.Fields(zones)
	}
	rm, err := f.readInt(dir, "removable")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return MemoryBlock{}, err
	case rm == 0 || rm == 1:
		b.Removable = rm == 1
	default:
		return MemoryBlock{}, &ParseError{Path: f.Path(dir, "removable"), Content: fmt.Sprint(rm), Err: errors.New("want 0 or 1")}
	}
	if b.Nodes, err = f.numberedEntries(dir, "node"); err != nil {
		return MemoryBlock{}, err
	}
	return b, nil
}
