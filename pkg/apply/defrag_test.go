package apply

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// fakeDefrag records its calls and what IHK had done by then.
type fakeDefrag struct {
	rec       *recorder
	callsSeen []string
	policy    config.DefragPolicy
	err       error
	// movable and offline are the job blocks JobBlocks lists.
	movable, offline []int
	// journal is read during the call: the step's intent must be there,
	// with the Movable blocks when the policy onlines kernel memory.
	journal       *journal.Store
	intent        bool
	intentBlocks  []int
	intentOffline []int
}

func (f *fakeDefrag) JobBlocks() ([]int, []int, error) { return f.movable, f.offline, nil }

func (f *fakeDefrag) Defrag(_ context.Context, p config.DefragPolicy) (json.RawMessage, error) {
	f.callsSeen = append([]string{}, f.rec.calls...)
	f.policy = p
	if rec, err := f.journal.Read(9); err == nil {
		st, ok := rec.Find(steps.DefragMemory)
		f.intent = ok && st.State == journal.StateIntent
		var d steps.Defrag
		if ok && st.DecodeData(&d) == nil {
			f.intentBlocks = d.MovableBlocks
			f.intentOffline = d.OfflineBlocks
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	return json.RawMessage(`{"contiguous_share_before":0.5,"contiguous_share_after":0.99}`), nil
}

type restoreCall struct {
	movable, offline []int
	kernel           bool
}

// fakeRestorer records the teardown's block restorations.
type fakeRestorer struct{ calls []restoreCall }

func (f *fakeRestorer) RestoreJobBlocks(movable, offline []int, kernel bool) ([]int, []int, error) {
	f.calls = append(f.calls, restoreCall{movable: movable, offline: offline, kernel: kernel})
	return movable, nil, nil
}

func TestDefragRunsBeforeReservingAndIsJournaled(t *testing.T) {
	for _, tc := range []struct {
		name         string
		err          error
		onlineKernel bool
		// journaled are the Movable blocks the intent must list.
		journaled []int
	}{
		{name: "ok"},
		{name: "failure does not fail the prolog", err: errors.New("node1/compact: no such file")},
		{name: "online kernel journals the Movable blocks first", onlineKernel: true, journaled: []int{33, 34, 41}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "reserve_cpus:EIO") // stop early: the journal stays for inspection
			f := &fakeDefrag{rec: e.rec, err: tc.err, journal: e.deps.Journal, movable: []int{33, 34, 41}, offline: []int{43}}
			e.deps.Defrag = f
			blocks := &fakeRestorer{}
			e.deps.Memory = blocks
			e.plan.Defrag = config.DefragPolicy{Enabled: true, DropCaches: true, Budget: 7 * time.Second, OnlineKernel: tc.onlineKernel}
			_, err := Run(context.Background(), e.deps, Job{ID: 9, User: "root", Spec: "mck"}, e.plan)
			var se *StepError
			require.ErrorAs(t, err, &se)
			require.Equal(t, steps.ReserveCPUs, se.Step, "the injected failure, not the defragmentation")
			require.Empty(t, f.callsSeen, "defragmentation runs before any reservation")
			require.Equal(t, e.plan.Defrag, f.policy)
			require.True(t, f.intent, "intent journaled before defragmenting")
			require.Equal(t, tc.journaled, f.intentBlocks)
			require.Equal(t, []int{43}, f.intentOffline, "the blocks offline before the step are journaled")
			// The rollback of the failed prolog restored what the done
			// entry names.
			if tc.onlineKernel {
				require.Equal(t, []restoreCall{{movable: tc.journaled, offline: []int{43}, kernel: true}}, blocks.calls)
			} else {
				require.Empty(t, blocks.calls, "nothing to restore after a finished defragmentation without OnlineKernel")
			}
		})
	}
}

func TestDefragOffOrUnavailable(t *testing.T) {
	e := newEnv(t, "reserve_memory:EIO")
	f := &fakeDefrag{rec: e.rec, journal: e.deps.Journal}
	e.deps.Defrag = f
	_, err := Run(context.Background(), e.deps, Job{ID: 9, User: "root", Spec: "mck"}, e.plan)
	require.Error(t, err)
	require.Nil(t, f.callsSeen, "profile without Defrag=yes: not called")

	e = newEnv(t, "reserve_memory:EIO")
	e.plan.Defrag = config.DefragPolicy{Enabled: true, Budget: time.Second}
	_, err = Run(context.Background(), e.deps, Job{ID: 9, User: "root", Spec: "mck"}, e.plan)
	var se *StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, steps.ReserveMemory, se.Step, "no job nodes: skipped with a warning, prolog goes on")
}
