package nodeprep_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/nodeprep"
)

// hotplugKernel models memory hotplug on the q35 tree with block states:
// an offline block comes online in the zone asked for; an online block in
// busy refuses to go offline (EBUSY, it stays online); a block in stuck
// goes offline and then refuses to come online again.
type hotplugKernel struct {
	m     *q35
	t     *testing.T
	busy  map[int]bool
	stuck map[int]bool
	calls []string
}

func (k *hotplugKernel) state(i int) string {
	b, err := os.ReadFile(filepath.Join(k.m.root, fmt.Sprintf("sys/devices/system/memory/memory%d/state", i)))
	require.NoError(k.t, err)
	return strings.TrimSpace(string(b))
}

func (k *hotplugKernel) set(i int, state, zones string) {
	bd := fmt.Sprintf("sys/devices/system/memory/memory%d/", i)
	put(k.t, k.m.root, bd+"state", state+"\n")
	put(k.t, k.m.root, bd+"valid_zones", zones+"\n")
}

func (k *hotplugKernel) SetZone(i int, zone string) (bool, error) {
	k.calls = append(k.calls, fmt.Sprintf("memory%d %s", i, zone))
	online := k.state(i) == "online"
	if online && k.m.blocks[i] == zone {
		return false, nil
	}
	if online && k.busy[i] {
		return false, fmt.Errorf("write \"offline\" to memory%d/state: %w", i, syscall.EBUSY)
	}
	if k.stuck[i] {
		k.set(i, "offline", "Normal Movable")
		return true, fmt.Errorf("memory%d left offline: %w", i, syscall.EINVAL)
	}
	k.m.blocks[i] = zone
	k.set(i, "online", zone)
	return true, nil
}

func TestJobBlocks(t *testing.T) {
	// memory5 is on the system node.
	m := newQ35(t, 5, 33, 34, 41)
	k := &hotplugKernel{m: m, t: t}
	k.set(43, "offline", "Normal Movable")
	k.set(6, "offline", "Normal Movable")
	d := nodeprep.Defragmenter{Root: m.root, Settings: split(t)}
	movable, offline, err := d.JobBlocks()
	require.NoError(t, err)
	require.Equal(t, []int{33, 34, 41}, movable)
	require.Equal(t, []int{43}, offline)
}

// The epilog's restoration after a pre-boot defragmentation: blocks the
// prolog listed as Movable go back into ZONE_MOVABLE, also one on a node no
// longer among the job nodes (memory5); offline blocks come back online (as
// kernel memory when the step onlined kernel memory and the block was not
// listed), except those offline before the step (memory43); a block that
// refuses to go offline stays kernel memory without an error; one left
// offline is an error.
func TestRestoreJobBlocks(t *testing.T) {
	for _, tc := range []struct {
		name             string
		movable          []int
		kernel           bool
		keepOffline      []int
		calls            []string
		changed, refused []int
		zones            map[int]string
	}{
		{
			name: "after online-kernel", movable: []int{5, 33, 34, 35, 36, 42}, kernel: true, keepOffline: []int{43},
			calls:   []string{"memory5 Movable", "memory33 Movable", "memory34 Movable", "memory35 Movable", "memory41 Normal", "memory42 Movable"},
			changed: []int{5, 33, 41, 42}, refused: []int{35},
			zones: map[int]string{5: "Movable", 32: "Normal", 33: "Movable", 35: "Normal", 36: "Movable", 41: "Normal", 42: "Movable"},
		},
		{
			// A prolog without OnlineKernel killed halfway: offline blocks
			// were Movable ones being evacuated.
			name: "interrupted evacuation", keepOffline: []int{43},
			calls: []string{"memory41 Movable", "memory42 Movable"}, changed: []int{41, 42},
			zones: map[int]string{33: "Normal", 36: "Movable", 41: "Movable", 42: "Movable"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newQ35(t, 36)
			k := &hotplugKernel{m: m, t: t, busy: map[int]bool{35: true}, stuck: map[int]bool{}}
			// The prolog turned 33-35 into kernel memory (m.blocks says
			// Normal) and was killed with 41 (a Normal block) and 42 (a
			// Movable one) offline.
			k.set(41, "offline", "Normal Movable")
			k.set(42, "offline", "Normal Movable")
			// An admin took memory43 offline before the job.
			k.set(43, "offline", "Normal Movable")
			if tc.kernel {
				k.stuck[34] = true
			}
			d := nodeprep.Defragmenter{Root: m.root, Settings: split(t), Blocks: k}
			changed, refused, err := d.RestoreJobBlocks(tc.movable, tc.keepOffline, tc.kernel)
			require.Equal(t, tc.calls, k.calls)
			require.Equal(t, tc.changed, changed)
			require.Equal(t, tc.refused, refused)
			if tc.kernel {
				require.ErrorContains(t, err, "memory34 left offline")
				require.True(t, errors.Is(err, syscall.EINVAL))
			} else {
				require.NoError(t, err)
			}
			for b, zone := range tc.zones {
				require.Equal(t, zone, m.blocks[b], "memory%d", b)
				require.Equal(t, "online", k.state(b), "memory%d", b)
			}
			require.Equal(t, "offline", k.state(43), "a block offline before the job came online")
		})
	}
}
