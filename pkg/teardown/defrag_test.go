package teardown_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
)

type fakeBlocks struct{ calls int }

func (f *fakeBlocks) OnlineOfflineJobBlocks() ([]int, error) {
	f.calls++
	return []int{33}, nil
}

// A prolog killed in the middle of its pre-boot defragmentation may have
// left a job-node block offline: the epilog brings the blocks back; a
// finished defragmentation needs nothing.
func TestInterruptedDefragIsRepaired(t *testing.T) {
	for _, tc := range []struct {
		name  string
		done  bool
		calls int
	}{
		{name: "intent only", done: false, calls: 1},
		{name: "done", done: true, calls: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fb := &fakeBlocks{}
			e.deps.Memory = fb
			rec := &journal.Record{JobID: 5}
			require.NoError(t, rec.Begin(steps.DefragMemory, steps.Defrag{}))
			if tc.done {
				require.NoError(t, rec.Done(steps.DefragMemory, nil))
				require.NoError(t, rec.Begin(steps.ReserveMemory, steps.Memory{Requested: []ihk.MemChunk{{NUMANode: 2, Bytes: 64 << 20}}}))
			}
			require.NoError(t, e.deps.Journal.Write(rec))
			_, err := teardown.Run(ctx, e.deps, 5)
			require.NoError(t, err)
			require.Equal(t, tc.calls, fb.calls)
		})
	}
}
