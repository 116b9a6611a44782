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
	rec        *recorder
	callsSeen  []string
	dropCaches bool
	budget     time.Duration
	err        error
	// journal is read during the call: the step's intent must be there.
	journal *journal.Store
	intent  bool
}

func (f *fakeDefrag) Defrag(_ context.Context, drop bool, budget time.Duration) (json.RawMessage, error) {
	f.callsSeen = append([]string{}, f.rec.calls...)
	f.dropCaches, f.budget = drop, budget
	if rec, err := f.journal.Read(9); err == nil {
		st, ok := rec.Find(steps.DefragMemory)
		f.intent = ok && st.State == journal.StateIntent
	}
	if f.err != nil {
		return nil, f.err
	}
	return json.RawMessage(`{"contiguous_share_before":0.5,"contiguous_share_after":0.99}`), nil
}

func TestDefragRunsBeforeReservingAndIsJournaled(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{name: "ok"},
		{name: "failure does not fail the prolog", err: errors.New("node1/compact: no such file")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "reserve_cpus:EIO") // stop early: the journal stays for inspection
			f := &fakeDefrag{rec: e.rec, err: tc.err, journal: e.deps.Journal}
			e.deps.Defrag = f
			e.plan.Defrag = config.DefragPolicy{Enabled: true, DropCaches: true, Budget: 7 * time.Second}
			_, err := Run(context.Background(), e.deps, Job{ID: 9, User: "root", Spec: "mck"}, e.plan)
			var se *StepError
			require.ErrorAs(t, err, &se)
			require.Equal(t, steps.ReserveCPUs, se.Step, "the injected failure, not the defragmentation")
			require.Empty(t, f.callsSeen, "defragmentation runs before any reservation")
			require.True(t, f.dropCaches)
			require.Equal(t, 7*time.Second, f.budget)
			require.True(t, f.intent, "intent journaled before defragmenting")
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
