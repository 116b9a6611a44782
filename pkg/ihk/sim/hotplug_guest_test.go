package sim

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/cpuhotplug"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// TestRealCPUOfflineInGuest reserves a CPU through the simulator with real
// Linux-side effects on a real kernel: the CPU goes offline in sysfs, the
// topology re-read sees it offline, and releasing brings it back. It takes
// a CPU of the machine offline, so it runs only inside the VM harness's
// throw-away guest (scripts/vm-node sets LWK_VM_GUEST=1).
func TestRealCPUOfflineInGuest(t *testing.T) {
	if os.Getenv("LWK_VM_GUEST") != "1" {
		t.Skip("takes a CPU offline: runs only in the VM harness's guest (LWK_VM_GUEST=1)")
	}
	topo, err := topology.ReadLayout("/")
	require.NoError(t, err)
	last := topo.CPUs[len(topo.CPUs)-1].ID
	require.NotZero(t, last, "need a CPU other than 0")
	b := newBackend(t, func(o *Options) { o.Topology = topo; o.CPUHotplug = cpuhotplug.New("/") })
	ctx := context.Background()

	require.NoError(t, b.ReserveCPUs(ctx, []int{last}))
	offline, err := os.ReadFile("/sys/devices/system/cpu/offline")
	require.NoError(t, err)
	t.Logf("after reserve: offline cpus %q", strings.TrimSpace(string(offline)))
	after, err := topology.ReadLayout("/")
	require.NoError(t, err)
	c, ok := after.CPU(last)
	require.True(t, ok)
	require.False(t, c.Online, "the kernel took cpu %d offline", last)

	require.NoError(t, b.ReleaseCPUs(ctx, []int{last}))
	back, err := topology.ReadLayout("/")
	require.NoError(t, err)
	c, _ = back.CPU(last)
	require.True(t, c.Online, "cpu %d back online", last)
}
