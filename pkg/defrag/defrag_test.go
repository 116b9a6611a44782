package defrag_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/defrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
)

// fakeKernel records calls; busy blocks refuse to go offline (EBUSY);
// noCompact nodes lack the compact file.
type fakeKernel struct {
	calls     []string
	busy      map[int]bool
	noCompact map[int]bool
	// clock advances by delay per compaction.
	clock time.Time
	delay time.Duration
	// zones, when set, is every block's zone; SetZone changes it unless
	// the block is busy.
	zones map[int]string
}

func (k *fakeKernel) now() time.Time { return k.clock }

func (k *fakeKernel) DropCleanPageCache() error {
	k.calls = append(k.calls, "drop")
	return nil
}

func (k *fakeKernel) Compact(n int) error {
	k.clock = k.clock.Add(k.delay)
	if k.noCompact[n] {
		return fmt.Errorf("write 1 to node%d/compact: %w", n, fs.ErrNotExist)
	}
	k.calls = append(k.calls, fmt.Sprintf("compact %d", n))
	return nil
}

func (k *fakeKernel) Evacuate(i int) error {
	if k.busy[i] {
		return fmt.Errorf("memory%d: %w", i, syscall.EBUSY)
	}
	k.calls = append(k.calls, fmt.Sprintf("evacuate %d", i))
	return nil
}

func (k *fakeKernel) SetZone(i int, zone string) (bool, error) {
	k.calls = append(k.calls, fmt.Sprintf("zone %d %s", i, zone))
	if k.zones == nil || k.zones[i] == zone {
		return false, nil
	}
	if k.busy[i] {
		return false, fmt.Errorf("memory%d: %w", i, syscall.EBUSY)
	}
	k.zones[i] = zone
	return true, nil
}

type journal struct{ entries []string }

func (j *journal) Intent(step, obj string) error {
	j.entries = append(j.entries, "intent "+step+" "+obj)
	return nil
}

func (j *journal) Done(step, obj string) error {
	j.entries = append(j.entries, "done "+step+" "+obj)
	return nil
}

func blocks() []defrag.Block {
	return []defrag.Block{
		{Index: 32, Node: 1, Movable: false, Range: memfrag.Range{Start: 0, End: 8}},
		{Index: 33, Node: 1, Movable: true, Range: memfrag.Range{Start: 8, End: 16}},
		{Index: 40, Node: 2, Movable: true, Range: memfrag.Range{Start: 16, End: 24}},
	}
}

func TestRun(t *testing.T) {
	k := &fakeKernel{busy: map[int]bool{40: true}, noCompact: map[int]bool{2: true}}
	j := &journal{}
	shares := []float64{0.4, 0.9}
	measure := func() (float64, error) { s := shares[0]; shares = shares[1:]; return s, nil }
	res, err := defrag.Run(context.Background(), k, j, measure, defrag.Options{
		Nodes: cpuset.New(1, 2), DropCaches: true, Evacuate: true, Budget: time.Minute, Blocks: blocks(),
	}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"drop", "compact 1", "evacuate 33", "zone 40 Movable"}, k.calls)
	require.Equal(t, []string{"intent evacuate memory33", "done evacuate memory33", "intent evacuate memory40", "done evacuate memory40"}, j.entries)
	require.Equal(t, 1, res.Evacuated)
	require.Equal(t, 1, res.Refused)
	require.Equal(t, 0.4, res.ShareBefore)
	require.Equal(t, 0.9, res.ShareAfter)
	require.False(t, res.OverTime)
	require.Len(t, res.Steps, 5)
	require.Contains(t, res.Steps[2].Skipped, "kernel interface absent")
	require.Contains(t, res.Steps[4].Err, "device or resource busy")
}

func TestRunSkips(t *testing.T) {
	k := &fakeKernel{delay: 30 * time.Second, clock: time.Unix(1e9, 0)}
	res, err := defrag.Run(context.Background(), k, nil, nil, defrag.Options{
		Nodes: cpuset.New(1, 2, 3), Budget: 40 * time.Second, Blocks: blocks(), Now: k.now,
	}, nil)
	require.NoError(t, err)
	// Not allowed: no drop, no evacuation; the budget ends after two
	// compactions.
	require.Equal(t, []string{"compact 1", "compact 2"}, k.calls)
	require.True(t, res.OverTime)
	require.Equal(t, 60*time.Second, res.Duration)
	require.Equal(t, "not allowed by the profile", res.Steps[0].Skipped)
	require.Equal(t, "time budget exhausted", res.Steps[3].Skipped)
	require.Equal(t, -1.0, res.ShareBefore)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = defrag.Run(ctx, &fakeKernel{}, nil, nil, defrag.Options{Nodes: cpuset.New(1), Budget: time.Minute}, nil)
	require.True(t, errors.Is(err, context.Canceled))
}

type failingJournal struct{}

func (failingJournal) Intent(string, string) error { return errors.New("disk full") }
func (failingJournal) Done(string, string) error   { return nil }

func TestRunJournalFailureStops(t *testing.T) {
	k := &fakeKernel{}
	_, err := defrag.Run(context.Background(), k, failingJournal{}, nil, defrag.Options{
		Nodes: cpuset.New(1), Evacuate: true, Budget: time.Minute, Blocks: blocks(),
	}, nil)
	require.ErrorContains(t, err, "disk full")
	require.Equal(t, []string{"compact 1"}, k.calls, "no block offlined without its journal entry")
}

func TestRunSkipsFreeAndReservedBlocks(t *testing.T) {
	// Frames 8-15 (memory33): one reserved frame; 16-23 (memory40): all
	// free (buddy heads of order 3); memory32 is not Movable.
	root := t.TempDir()
	b := make([]byte, 8*1024)
	binary.LittleEndian.PutUint64(b[8*8:], memfrag.KPFReserved)
	binary.LittleEndian.PutUint64(b[8*16:], memfrag.KPFBuddy)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "proc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, memfrag.KPageFlagsPath), b, 0o644))
	flags := memfrag.NewPageFlags(root)
	k := &fakeKernel{}
	res, err := defrag.Run(context.Background(), k, nil, nil, defrag.Options{
		Nodes: cpuset.New(1), Evacuate: true, Budget: time.Minute, Blocks: blocks(), Flags: &flags,
	}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"compact 1"}, k.calls)
	require.Equal(t, "1 reserved frames cannot be migrated", res.Steps[len(res.Steps)-1].Skipped)
}

// writeFlags writes a kpageflags fixture of frames 0..len(flags)-1 below a
// fresh root.
func writeFlags(t *testing.T, flags []uint64) *memfrag.PageFlags {
	t.Helper()
	root := t.TempDir()
	b := make([]byte, 8*len(flags))
	for i, f := range flags {
		binary.LittleEndian.PutUint64(b[8*i:], f)
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "proc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, memfrag.KPageFlagsPath), b, 0o644))
	pf := memfrag.NewPageFlags(root)
	return &pf
}

// With OnlineKernel, every Movable job block is turned into kernel memory
// (even an all-free one: IHK's GFP_KERNEL cannot use it as Movable), and
// partly used Normal blocks are evacuated in place unless they hold pages
// that never migrate; the budget does not stop the conversions.
func TestRunOnlineKernel(t *testing.T) {
	const slab, lru, buddy = memfrag.KPFSlab, memfrag.KPFLRU, memfrag.KPFBuddy
	flags := make([]uint64, 8*1024)
	flags[0] = slab                 // memory32 (Normal): a slab page
	flags[8] = buddy                // memory33 (Movable): all free (order 3)
	flags[16], flags[17] = lru, lru // memory40 (Movable, busy): used
	flags[24] = lru                 // memory41 (Normal): one page-cache page
	flags[32] = buddy               // memory42 (Normal): all free
	bl := []defrag.Block{
		{Index: 32, Node: 1, Range: memfrag.Range{Start: 0, End: 8}},
		{Index: 33, Node: 1, Movable: true, Range: memfrag.Range{Start: 8, End: 16}},
		{Index: 40, Node: 2, Movable: true, Range: memfrag.Range{Start: 16, End: 24}},
		{Index: 41, Node: 2, Range: memfrag.Range{Start: 24, End: 32}},
		{Index: 42, Node: 2, Range: memfrag.Range{Start: 32, End: 40}},
	}
	for _, tc := range []struct {
		name   string
		budget time.Duration
		calls  []string
		evac   int
	}{
		{name: "in budget", budget: time.Hour, evac: 2,
			calls: []string{"compact 1", "compact 2", "zone 33 Normal", "zone 40 Normal", "zone 40 Movable", "evacuate 41"}},
		// Each compaction takes 30 s: the Normal block's evacuation is
		// skipped, the conversions are not.
		{name: "budget exhausted", budget: 40 * time.Second, evac: 1,
			calls: []string{"compact 1", "compact 2", "zone 33 Normal", "zone 40 Normal", "zone 40 Movable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &fakeKernel{busy: map[int]bool{40: true}, delay: 30 * time.Second, clock: time.Unix(1e9, 0),
				zones: map[int]string{32: "Normal", 33: "Movable", 40: "Movable", 41: "Normal", 42: "Normal"}}
			j := &journal{}
			res, err := defrag.Run(context.Background(), k, j, nil, defrag.Options{
				Nodes: cpuset.New(1, 2), Evacuate: true, OnlineKernel: true, Budget: tc.budget, Blocks: bl,
				Flags: writeFlags(t, flags), Now: k.now,
			}, nil)
			require.NoError(t, err)
			require.Equal(t, tc.calls, k.calls)
			require.Equal(t, []int{33}, res.KernelBlocks)
			require.Equal(t, map[int]string{32: "Normal", 33: "Normal", 40: "Movable", 41: "Normal", 42: "Normal"}, k.zones)
			require.Equal(t, tc.evac, res.Evacuated)
			require.Equal(t, 1, res.Refused)
			require.Equal(t, "intent online-kernel memory33", j.entries[0])
			var skipped []string
			for _, st := range res.Steps {
				if st.Object == "memory32" || st.Object == "memory42" {
					skipped = append(skipped, st.Object+": "+st.Skipped)
				}
			}
			require.Equal(t, []string{"memory32: 1 slab frames cannot be migrated"}, skipped, "the all-free Normal block is left alone silently")
		})
	}
}
