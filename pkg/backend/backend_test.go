package backend

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// TestSimViewTakesHeldMemoryOutOfMemFree: the simulator's topology never
// changes, so its view takes out of MemFree what the real driver's
// reservations take out of the kernel's.
func TestSimViewTakesHeldMemoryOutOfMemFree(t *testing.T) {
	dir := t.TempDir()
	root := fixture.Root(t, "paper-e5520-fake12")
	cfg := &config.Config{Backend: config.BackendSim, SysfsRoot: root,
		SimStateDir: filepath.Join(dir, "sim"), DevDir: filepath.Join(dir, "dev")}
	o, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	require.NoError(t, err)
	require.Nil(t, o.StepFaults)
	require.NotNil(t, o.DriverTime, "the simulator reports its driver time")

	want, err := topology.ReadLayout(root)
	require.NoError(t, err)
	ctx := context.Background()
	const size = 256 << 20 // a quarter of a fake node
	require.NoError(t, o.Client.ReserveMemory(ctx, []ihk.MemChunk{{NUMANode: 2, Bytes: size}, {NUMANode: 3, Bytes: size / 2}}))
	require.NoError(t, o.Client.ReserveCPUs(ctx, []int{4, 5}))
	idx, err := o.Client.CreateOS(ctx)
	require.NoError(t, err)
	require.NoError(t, o.Client.AssignMemory(ctx, idx, []ihk.MemChunk{{NUMANode: 3, Bytes: size / 2}}))
	require.NoError(t, o.Client.AssignCPUs(ctx, idx, []int{5}))

	topo, held, err := o.View.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, cpuset.New(4, 5), held.CPUs, "reserved and assigned CPUs")
	for i, n := range topo.Nodes {
		taken := map[int]uint64{2: size, 3: size / 2}[n.ID]
		require.Equal(t, want.Nodes[i].MemFreeBytes-taken, n.MemFreeBytes, "node %d", n.ID)
	}
	layout, err := o.View.Layout()
	require.NoError(t, err)
	require.Equal(t, want.Nodes, layout.Nodes, "Layout asks IHK nothing and the snapshot copied the nodes")
}

func TestOpenRefusesUnknownBackend(t *testing.T) {
	_, err := Open(&config.Config{Backend: "xen"}, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	require.ErrorContains(t, err, `ihk backend "xen": unknown`)
}

// TestSimReadsTheLayoutOnlyWhenAsked: a teardown (the epilog) reads no
// topology, as with the real driver; the first reservation or view does,
// and a node the simulator cannot read fails there, naming it.
func TestSimReadsTheLayoutOnlyWhenAsked(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-sysfs")
	cfg := &config.Config{Backend: config.BackendSim, SysfsRoot: missing, StateDir: filepath.Join(dir, "state"),
		SimStateDir: filepath.Join(dir, "sim"), DevDir: filepath.Join(dir, "dev")}
	o, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	require.NoError(t, err, "opening the simulator reads no topology")
	ctx := context.Background()
	ids, err := o.Client.ListOS(ctx)
	require.NoError(t, err)
	require.Empty(t, ids)
	require.NoError(t, o.Client.ReleaseCPUs(ctx, nil), "teardown operations need no topology")

	_, err = o.View.Layout()
	require.ErrorContains(t, err, "simulated ihk: node topology")
	require.ErrorContains(t, err, missing)
	err = o.Client.ReserveCPUs(ctx, []int{1})
	require.ErrorContains(t, err, "node topology")
	require.NoFileExists(t, filepath.Join(cfg.StateDir, topology.CacheFileName))
}
