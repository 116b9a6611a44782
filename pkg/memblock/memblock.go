package memblock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
)

// Zone names as valid_zones prints them.
const (
	ZoneMovable = "Movable"
	ZoneNormal  = "Normal"
)

// Writers to memoryN/state.
const (
	stateOffline       = "offline"
	stateOnlineMovable = "online_movable"
	stateOnlineKernel  = "online_kernel"
)

// Kernel changes memory blocks and node-wide memory state below one root.
type Kernel struct {
	fs sysfs.FS
}

// New returns a Kernel for the tree below root ("" means "/").
func New(root string) (*Kernel, error) {
	f, err := sysfs.New(root)
	if err != nil {
		return nil, err
	}
	return &Kernel{fs: f}, nil
}

// FS returns the reader of the same tree.
func (k *Kernel) FS() sysfs.FS { return k.fs }

// Zone returns the zone an online block is in ("Movable", "Normal",
// "DMA32", or "none" when it spans zones) and "" for an offline block.
func Zone(b sysfs.MemoryBlock) string {
	if b.State != "online" || len(b.ValidZones) == 0 {
		return ""
	}
	return b.ValidZones[0]
}

// IsMovable reports whether an online block is in ZONE_MOVABLE.
func IsMovable(b sysfs.MemoryBlock) bool { return Zone(b) == ZoneMovable }

// SetZone moves block index into zone (ZoneMovable or ZoneNormal) by
// offlining and onlining it; a block already online in that zone is left
// alone (changed false). When onlining into the zone fails the block is
// brought back online where it was, and the error says both.
func (k *Kernel) SetZone(index int, zone string) (changed bool, err error) {
	var want string
	switch zone {
	case ZoneMovable:
		want = stateOnlineMovable
	case ZoneNormal:
		want = stateOnlineKernel
	default:
		return false, fmt.Errorf("memory%d: unknown zone %q", index, zone)
	}
	b, err := k.fs.MemoryBlock(index)
	if err != nil {
		return false, err
	}
	if b.State == "online" && Zone(b) == zone {
		return false, nil
	}
	if b.State == "offline" {
		if !slices.Contains(b.ValidZones, zone) && len(b.ValidZones) > 0 {
			return false, fmt.Errorf("memory%d: cannot online to %s (valid zones %v)", index, zone, b.ValidZones)
		}
		return true, k.writeState(index, want)
	}
	prev := Zone(b)
	if err := k.writeState(index, stateOffline); err != nil {
		return false, err
	}
	if err := k.writeState(index, want); err != nil {
		back := stateOnlineKernel
		if prev == ZoneMovable {
			back = stateOnlineMovable
		}
		if rerr := k.writeState(index, back); rerr != nil {
			return true, errors.Join(err, fmt.Errorf("memory%d left offline: %w", index, rerr))
		}
		return false, err
	}
	return true, nil
}

// Evacuate offlines an online block and onlines it again in the same zone:
// offlining migrates its movable pages elsewhere (other nodes first, Linux
// 6.1 do_migrate_range), which is what defragmentation wants. It fails
// without changing anything when the block cannot be offlined.
func (k *Kernel) Evacuate(index int) error {
	b, err := k.fs.MemoryBlock(index)
	if err != nil {
		return err
	}
	if b.State != "online" {
		return fmt.Errorf("memory%d: %s, not online", index, b.State)
	}
	back := stateOnlineKernel
	if IsMovable(b) {
		back = stateOnlineMovable
	}
	if err := k.writeState(index, stateOffline); err != nil {
		return err
	}
	return k.writeState(index, back)
}

func (k *Kernel) writeState(index int, state string) error {
	p := k.fs.Path(sysfs.MemoryDir, "memory"+strconv.Itoa(index), "state")
	return writeExisting(p, state)
}

// Compact asks the kernel to compact every zone of node.
func (k *Kernel) Compact(node int) error {
	return writeExisting(k.fs.Path(sysfs.NodeDir, "node"+strconv.Itoa(node), "compact"), "1")
}

// DropCleanPageCache drops the clean page cache of the whole machine
// (drop_caches has no per-node form).
func (k *Kernel) DropCleanPageCache() error {
	return writeExisting(filepath.Join(k.fs.Root(), "proc/sys/vm/drop_caches"), "1")
}

// writeExisting writes an existing kernel attribute; it never creates a
// file, so a wrong root cannot leave files behind.
func writeExisting(path, value string) error {
	// The *os.PathError of open and write already names the file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("set %q: %w", value, err)
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("set %q: %w", value, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("set %q: %w", value, err)
	}
	return nil
}
