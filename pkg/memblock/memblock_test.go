package memblock_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/filetree"
	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
)

func writeTree(t *testing.T, files map[string]string) string { return filetree.New(t, files) }

func block(n, state, zones string) map[string]string {
	d := "sys/devices/system/memory/memory" + n + "/"
	return map[string]string{d + "state": state + "\n", d + "valid_zones": zones + "\n", d + "phys_index": "0000000" + n + "\n"}
}

func read(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	require.NoError(t, err)
	return string(b)
}

func TestSetZone(t *testing.T) {
	for _, tc := range []struct {
		name, state, zones, zone string
		changed                  bool
		wantErr                  bool
		final                    string
	}{
		{name: "normal to movable", state: "online", zones: "Normal", zone: memblock.ZoneMovable, changed: true, final: "online_movable"},
		{name: "already movable", state: "online", zones: "Movable", zone: memblock.ZoneMovable, changed: false, final: "online\n"},
		{name: "offline block onlined movable", state: "offline", zones: "Normal Movable", zone: memblock.ZoneMovable, changed: true, final: "online_movable"},
		{name: "offline block that cannot be movable", state: "offline", zones: "Normal", zone: memblock.ZoneMovable, wantErr: true, final: "offline\n"},
		{name: "movable back to normal", state: "online", zones: "Movable", zone: memblock.ZoneNormal, changed: true, final: "online_kernel"},
		{name: "unknown zone", state: "online", zones: "Normal", zone: "DMA", wantErr: true, final: "online\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, block("5", tc.state, tc.zones))
			k, err := memblock.New(root)
			require.NoError(t, err)
			changed, err := k.SetZone(5, tc.zone)
			if tc.wantErr {
				require.Error(t, err)
				require.Contains(t, err.Error(), "memory5")
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.changed, changed)
			require.Equal(t, tc.final, read(t, root, "sys/devices/system/memory/memory5/state"))
		})
	}
}

func TestEvacuateCompactDrop(t *testing.T) {
	files := block("7", "online", "Movable")
	files["sys/devices/system/node/node1/compact"] = ""
	files["proc/sys/vm/drop_caches"] = "0\n"
	root := writeTree(t, files)
	k, err := memblock.New(root)
	require.NoError(t, err)
	b, err := k.FS().MemoryBlock(7)
	require.NoError(t, err)
	require.Equal(t, sysfs.MemoryBlock{Index: 7, State: "online", ValidZones: []string{"Movable"}}, b)
	require.True(t, memblock.IsMovable(b))
	require.NoError(t, k.Evacuate(7))
	require.Equal(t, "online_movable", read(t, root, "sys/devices/system/memory/memory7/state"))
	require.NoError(t, k.Compact(1))
	require.Equal(t, "1", read(t, root, "sys/devices/system/node/node1/compact"))
	require.NoError(t, k.DropCleanPageCache())
	require.Equal(t, "1", read(t, root, "proc/sys/vm/drop_caches"))

	// Writers never create files: a node without compact support errors.
	err = k.Compact(2)
	require.ErrorContains(t, err, "node2/compact")
	_, err = os.Stat(filepath.Join(root, "sys/devices/system/node/node2/compact"))
	require.True(t, os.IsNotExist(err))

	require.Equal(t, "", memblock.Zone(sysfs.MemoryBlock{State: "offline", ValidZones: []string{"Normal"}}))
}
