package plan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckTasks(t *testing.T) {
	two := &Plan{JobID: 7, CPUs: []int{2, 10}, Kargs: "hidos"}
	over := &Plan{JobID: 7, CPUs: []int{2, 10}, Kargs: "hidos allow_oversubscribe dump_level=24"}
	tests := []struct {
		name           string
		p              *Plan
		ntasks, nnodes uint32
		wantErr        string
	}{
		{name: "one task per LWK CPU", p: two, ntasks: 2, nnodes: 1},
		{name: "fewer tasks", p: two, ntasks: 1, nnodes: 1},
		// The reproduction: sbatch -n4 --lwk-mode=mck:cores=1.
		{name: "four tasks on one core's two CPUs", p: two, ntasks: 4, nnodes: 1,
			wantErr: "plan job 7: 4 tasks on this node (4 tasks on 1 nodes) but the LWK has 2 CPUs"},
		{name: "spread over nodes", p: two, ntasks: 4, nnodes: 2},
		{name: "uneven spread rounds up", p: two, ntasks: 5, nnodes: 2, wantErr: "3 tasks on this node"},
		{name: "allow_oversubscribe", p: over, ntasks: 4, nnodes: 1},
		{name: "task count unknown", p: two, ntasks: 0, nnodes: 1},
		{name: "node count unknown", p: two, ntasks: 4, nnodes: 0},
		{name: "not fooled by a longer karg", p: &Plan{CPUs: []int{2}, Kargs: "allow_oversubscribe_x"}, ntasks: 2, nnodes: 1, wantErr: "the LWK has 1 CPUs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTasks(tc.p, tc.ntasks, tc.nnodes)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorIs(t, err, ErrRequest)
		})
	}
}
