package teardown_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
)

type restoreCall struct {
	movable, offline []int
	kernel           bool
}

// fakeBlocks records restorations; the ones in busy refuse.
type fakeBlocks struct {
	calls []restoreCall
	busy  map[int]bool
}

func (f *fakeBlocks) RestoreJobBlocks(movable, offline []int, kernel bool) (changed, refused []int, err error) {
	f.calls = append(f.calls, restoreCall{movable: movable, offline: offline, kernel: kernel})
	for _, b := range movable {
		if f.busy[b] {
			refused = append(refused, b)
		} else {
			changed = append(changed, b)
		}
	}
	return changed, refused, nil
}

// A prolog killed in the middle of its pre-boot defragmentation may have
// left a job-node block offline: the epilog brings the blocks back. A
// finished one that onlined Movable blocks as kernel memory
// (DefragOnlineKernel) has them turned back into ZONE_MOVABLE; any other
// finished one needs nothing. A block that refuses stays kernel memory
// without failing the epilog.
func TestInterruptedDefragIsRepaired(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  steps.Defrag
		done  bool
		calls []restoreCall
	}{
		{name: "intent only", data: steps.Defrag{OfflineBlocks: []int{43}}, calls: []restoreCall{{offline: []int{43}}}},
		{name: "done", data: steps.Defrag{}, done: true},
		{name: "online kernel, intent only", data: steps.Defrag{OnlineKernel: true, MovableBlocks: []int{33, 34}},
			calls: []restoreCall{{movable: []int{33, 34}, kernel: true}}},
		{name: "online kernel, done", data: steps.Defrag{OnlineKernel: true, MovableBlocks: []int{33, 34}, OfflineBlocks: []int{43}}, done: true,
			calls: []restoreCall{{movable: []int{33, 34}, offline: []int{43}, kernel: true}}},
		{name: "online kernel, no Movable blocks, done", data: steps.Defrag{OnlineKernel: true}, done: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fb := &fakeBlocks{busy: map[int]bool{34: true}}
			e.deps.Memory = fb
			rec := &journal.Record{JobID: 5}
			require.NoError(t, rec.Begin(steps.DefragMemory, tc.data))
			if tc.done {
				require.NoError(t, rec.Done(steps.DefragMemory, tc.data))
				require.NoError(t, rec.Begin(steps.ReserveMemory, steps.Memory{Requested: []ihk.MemChunk{{NUMANode: 2, Bytes: 64 << 20}}}))
			}
			require.NoError(t, e.deps.Journal.Write(rec))
			_, err := teardown.Run(ctx, e.deps, 5)
			require.NoError(t, err)
			require.Equal(t, tc.calls, fb.calls)
		})
	}
}

// A job whose epilog already ran but whose journal remains (its prolog
// booted after it) is collected by the next teardown: the Movable blocks
// its DefragOnlineKernel step turned into kernel memory go back too, before
// its journal is dropped.
func TestCollectedJobsBlocksAreRestored(t *testing.T) {
	e := newEnv(t)
	fb := &fakeBlocks{}
	e.deps.Memory = fb
	e.deps.Ended = jobend.Open(filepath.Join(t.TempDir(), "ended"))
	require.NoError(t, e.deps.Ended.Record(jobend.Key{JobID: 6}))
	other := &journal.Record{JobID: 6}
	data := steps.Defrag{OnlineKernel: true, MovableBlocks: []int{40, 41}, OfflineBlocks: []int{47}}
	require.NoError(t, other.Begin(steps.DefragMemory, data))
	require.NoError(t, other.Done(steps.DefragMemory, data))
	require.NoError(t, e.deps.Journal.Write(other))

	res, err := teardown.Run(ctx, e.deps, 5)
	require.NoError(t, err)
	require.Equal(t, []uint32{6}, res.Collected)
	require.Equal(t, []restoreCall{{movable: []int{40, 41}, offline: []int{47}, kernel: true}}, fb.calls)
	_, err = e.deps.Journal.Read(6)
	require.Error(t, err, "the collected job's journal is dropped")
}
