package vmihk

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
)

// makeJobBlocksMovable offlines the job node's memory blocks and onlines
// them Movable, as `lwkctl node apply` does (memblock.SetZone), and returns
// the blocks now Movable. The blocks the kernel pinned at boot refuse to go
// offline and stay kernel memory. A cleanup turns the Movable ones back into
// kernel memory, so that the other tests' GFP_KERNEL reservations find the
// node as it booted.
func makeJobBlocksMovable(t *testing.T) []int {
	t.Helper()
	fs, err := sysfs.New("/")
	require.NoError(t, err)
	k, err := memblock.New("/")
	require.NoError(t, err)
	ids, err := fs.NodeMemoryBlocks(jobNode)
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, i := range ids {
			b, err := fs.MemoryBlock(i)
			if err != nil || (b.State == "online" && !memblock.IsMovable(b)) {
				continue
			}
			if _, err := k.SetZone(i, memblock.ZoneNormal); err != nil {
				t.Errorf("cleanup: memory%d back to kernel memory: %v", i, err)
			}
		}
	})
	var movable []int
	for _, i := range ids {
		if _, err := k.SetZone(i, memblock.ZoneMovable); err != nil {
			t.Logf("memory%d stays kernel memory: %v", i, err)
			continue
		}
		movable = append(movable, i)
	}
	// Of node 1's eight 128 MiB blocks, the kernel pins the lowest (slab)
	// and the highest (memmap) at boot; the rest must convert, or the
	// reservation below could fit in the kernel blocks without any defrag.
	require.GreaterOrEqual(t, len(movable), len(ids)-2, "node %d blocks %v: Movable %v", jobNode, ids, movable)
	return movable
}

// requireZones checks that every listed block is online, Movable or not as
// wanted, and that no block of the job node is offline.
func requireZones(t *testing.T, what string, blocks []int, movable bool) {
	t.Helper()
	fs, err := sysfs.New("/")
	require.NoError(t, err)
	ids, err := fs.NodeMemoryBlocks(jobNode)
	require.NoError(t, err)
	for _, i := range ids {
		b, err := fs.MemoryBlock(i)
		require.NoError(t, err)
		require.Equal(t, "online", b.State, "%s: memory%d online", what, i)
	}
	zones := make([]string, 0, len(blocks))
	for _, i := range blocks {
		b, err := fs.MemoryBlock(i)
		require.NoError(t, err)
		zones = append(zones, fmt.Sprintf("memory%d:%s", i, memblock.Zone(b)))
		if movable {
			require.Equal(t, memblock.ZoneMovable, memblock.Zone(b), "%s: memory%d in ZONE_MOVABLE", what, i)
		} else {
			require.NotEqual(t, memblock.ZoneMovable, memblock.Zone(b), "%s: memory%d is kernel memory", what, i)
			require.NotEqual(t, "none", memblock.Zone(b), "%s: memory%d in one kernel zone", what, i)
		}
	}
	t.Logf("%s: %s", what, strings.Join(zones, " "))
}

// setProfile replaces the test's profile line by mck with extra keys.
func (v *vm) setProfile(extra string) {
	v.t.Helper()
	v.setKey("Profile", fmt.Sprintf(`mck Image=%s/mckernel.img Kargs="hidos dump_level=24"%s`, v.dir, extra))
}

// TestDefragOnlineKernel runs the prolog and the epilog with DefragOnlineKernel
// on a job node whose blocks are Movable, as `lwkctl node apply` leaves
// them: IHK's GFP_KERNEL reservation cannot take Movable memory, so without
// the key the prolog fails; with it the prolog turns the Movable blocks into
// kernel memory right before reserving, the reservation holds the job's
// memory, and the epilog makes the blocks Movable again, also after a
// prolog killed right after the conversion or after the reservation.
func TestDefragOnlineKernel(t *testing.T) {
	v := newVM(t)
	spec := fmt.Sprintf("mck:mem=%dM", lwkBytes>>20)
	v.setKey("SystemNUMANodes", "0")
	v.setKey("JobNUMANodes", strconv.Itoa(jobNode))
	movable := makeJobBlocksMovable(t)
	t.Logf("node %d blocks Movable: %v", jobNode, movable)
	settle(t)
	before := readKernel(t)
	require.Equal(t, "0-3", before.online)
	require.Empty(t, before.instances)

	// The control: the kernel blocks left on the node cannot hold the
	// reservation, so RESERVE_MEM fails and the blocks stay Movable.
	v.setProfile("")
	out, err := v.run("lwk-prolog", 200, spec)
	require.Error(t, err, "prolog without DefragOnlineKernel on Movable job memory:\n%s", out)
	require.False(t, killedBySIGKILL(err), out)
	out, err = v.run("lwk-epilog", 200, spec)
	require.NoError(t, err, out)
	// Not MemFree: the failed reservation's smaller pieces go back through
	// the OS cores' per-CPU page lists, which the tests cannot drain, so
	// the node's MemFree may stay a few MiB lower until the kernel drains
	// them (the offlining in the epilogs below does).
	after := readKernel(t)
	require.Equal(t, before.online, after.online, "CPUs back online")
	require.Empty(t, after.instances, "no instance left")
	st := v.status()
	require.Empty(t, st.OSInstances)
	require.Empty(t, st.ReservedCPUs)
	require.Empty(t, st.ReservedMemory)
	require.Empty(t, st.Jobs)
	requireZones(t, "without DefragOnlineKernel", movable, true)

	v.setProfile(" Defrag=yes DefragOnlineKernel=yes")
	out, err = v.run("lwk-prolog", 201, spec)
	// A failure below must not leave the LWK to the next test.
	epilogDone := false
	t.Cleanup(func() {
		if !epilogDone {
			if out, err := v.run("lwk-epilog", 201, spec); err != nil {
				t.Errorf("cleanup epilog: %v\n%s", err, out)
			}
		}
	})
	require.NoError(t, err, out)
	requireBooted(t, before)
	st = v.status()
	require.Len(t, st.OSInstances, 1, "lwkctl status: %+v", st)
	require.Equal(t, "RUNNING", st.OSInstances[0].Status)
	var held uint64
	for _, c := range st.OSInstances[0].Memory {
		require.Equal(t, jobNode, c.NUMANode, "LWK memory chunk %v", c)
		held += c.Bytes
	}
	require.Equal(t, uint64(lwkBytes), held, "the instance holds the job's LWK memory: %v", st.OSInstances[0].Memory)
	requireZones(t, "job running", movable, false)

	out, err = v.run("lwk-epilog", 201, spec)
	epilogDone = true
	require.NoError(t, err, out)
	v.requireRestored("after the epilog", before)
	requireZones(t, "after the epilog", movable, true)

	for i, step := range []string{steps.DefragMemory, steps.ReserveMemory} {
		job := 210 + i
		v.setKillAfter(step)
		out, err := v.run("lwk-prolog", job, spec)
		require.True(t, killedBySIGKILL(err), "prolog killed after %s: err %v, output:\n%s", step, err, out)
		v.setKillAfter("")
		requireZones(t, "killed after "+step, movable, false)
		out, err = v.run("lwk-epilog", job, spec)
		require.NoError(t, err, "epilog after a prolog killed after %s:\n%s", step, out)
		v.requireRestored("killed after "+step, before)
		requireZones(t, "epilog after a prolog killed after "+step, movable, true)
	}
}
