package apply

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// The plan's IKC map reaches the driver before BOOT (SET_IKC_MAP works only
// while the instance is INITIAL), in the assign_cpus step.
func TestIKCMapIsSet(t *testing.T) {
	e := newEnv(t, "boot:EIO") // the map is read back at BOOT, then the boot fails and rolls back
	e.plan.IKCMap = []ihk.IKCRoute{{CPU: 2, Target: 0}, {CPU: 4, Target: 0}, {CPU: 3, Target: 1}, {CPU: 5, Target: 1}}
	var got []ihk.IKCRoute
	e.deps.IHK = &mapReader{recorder: e.rec, sim: e.sim, got: &got}
	_, err := Run(context.Background(), e.deps, Job{ID: 9, Spec: "mck"}, e.plan)
	var se *StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, steps.Boot, se.Step)
	require.Equal(t, e.plan.IKCMap, got, "routes in LWK order, as the driver lists them")
}

// mapReader reads the instance's IKC map when the prolog boots it.
type mapReader struct {
	*recorder
	sim *sim.Backend
	got *[]ihk.IKCRoute
}

func (m *mapReader) Boot(ctx context.Context, os int) error {
	routes, err := m.sim.IKCMap(ctx, os)
	if err != nil {
		return err
	}
	*m.got = routes
	return m.recorder.Boot(ctx, os)
}

// A driver whose build id differs from mcexec's fails the prolog before any
// boot, naming both ids, and rolls back.
func TestBuildIDMismatchFailsBeforeBoot(t *testing.T) {
	e := newEnv(t, "")
	e.deps.McexecBuildID = "3114d9e7"
	_, err := Run(context.Background(), e.deps, Job{ID: 9, Spec: "mck"}, e.plan)
	require.ErrorIs(t, err, ErrBuildID)
	var se *StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, steps.CreateOS, se.Step)
	require.ErrorContains(t, err, `ihk build id "`+sim.BuildID+`"`)
	require.ErrorContains(t, err, `differs from mcexec's "3114d9e7"`)
	require.NotContains(t, e.rec.calls, "boot")
	ids, err := e.rec.ListOS(context.Background())
	require.NoError(t, err)
	require.Empty(t, ids, "rolled back")

	e = newEnv(t, "boot:EIO")
	e.deps.McexecBuildID = sim.BuildID
	_, err = Run(context.Background(), e.deps, Job{ID: 9, Spec: "mck"}, e.plan)
	require.False(t, errors.Is(err, ErrBuildID), "matching ids pass: %v", err)
	require.Contains(t, e.rec.calls, "boot")
}
