package verdict

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
)

const (
	scontrol = "/usr/bin/scontrol"
	scancel  = "/usr/bin/scancel"
)

// fakeSlurm records every command and fails those whose argv joined by
// spaces starts with one of fail.
type fakeSlurm struct {
	calls []string
	fail  []string
}

func (f *fakeSlurm) Run(_ context.Context, argv []string) ([]byte, error) {
	line := strings.Join(argv, " ")
	f.calls = append(f.calls, line)
	for _, p := range f.fail {
		if strings.HasPrefix(line, p) {
			return nil, &slurm.CommandError{Argv: argv, ExitCode: 1, Stderr: "refused by the test", Err: errors.New("exit status 1")}
		}
	}
	return nil, nil
}

var env = slurm.JobEnv{JobID: 42, UID: 1000, GID: 1000, User: "alice", Node: "cn001"}

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Action
	}{
		{name: "no error", err: nil, want: 0},
		{name: "unsatisfiable request", err: fmt.Errorf("plan job 42: mem=64 GiB: more than the job's memory: %w", plan.ErrRequest), want: Cancel},
		{name: "malformed spec in the environment", err: fmt.Errorf("job environment: %w", &slurm.SpecError{Var: "LWK_MODE", Err: errors.New("spec contains byte 0x09")}), want: Cancel},
		{name: "job name with a line break", err: fmt.Errorf("show job 42: %w", slurm.ErrAmbiguous), want: Cancel},
		{name: "another job's LWK", err: fmt.Errorf("job 41 holds os 0: %w", ErrNodeBusy), want: Requeue},
		{name: "boot failure", err: errors.New("boot: ihk: os 0: EIO"), want: Drain},
		{name: "environment broken", err: errors.New("job environment: SLURM_JOB_UID is not set"), want: Drain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Decide(tc.err))
		})
	}
}

func TestHandle(t *testing.T) {
	request := fmt.Errorf("plan job 42: cores=4: the job has 2 whole cores here: %w", plan.ErrRequest)
	busy := fmt.Errorf("job 41's lwk is on this node: %w", ErrNodeBusy)
	fault := errors.Join(errors.New("boot: os 0: EIO"), errors.New("rollback: destroy os 0: EBUSY"))
	comment := func(text string) string { return scontrol + " update JobId=42 AdminComment=" + text }
	drain := func(text string) string { return scontrol + " update NodeName=cn001 State=DRAIN Reason=" + text }
	tests := []struct {
		name       string
		cause      error
		env        slurm.JobEnv
		fail       []string
		wantAction Action
		wantCalls  []string
		// wantErr is "" when the prolog exits 0.
		wantErr string
	}{
		{
			name: "request: comment and cancel", cause: request, env: env, wantAction: Cancel,
			wantCalls: []string{comment("lwk: plan job 42: cores=4: the job has 2 whole cores here: request cannot be satisfied"), scancel + " 42"},
		},
		{
			name: "request: cancelled even when the comment fails", cause: request, env: env, fail: []string{scontrol + " update JobId"}, wantAction: Cancel,
			wantCalls: []string{comment("lwk: plan job 42: cores=4: the job has 2 whole cores here: request cannot be satisfied"), scancel + " 42"},
		},
		{
			name: "request: cancel fails, node drained", cause: request, env: env, fail: []string{scancel}, wantAction: Drain,
			wantCalls: []string{
				comment("lwk: plan job 42: cores=4: the job has 2 whole cores here: request cannot be satisfied"), scancel + " 42",
				drain("lwk: job 42: plan job 42: cores=4: the job has 2 whole cores here: request cannot be satisfied"),
			},
			wantErr: "request cannot be satisfied (and cancel job 42: run /usr/bin/scancel 42: exit status 1: refused by the test)",
		},
		{
			name: "malformed spec: a tab is not sent to Slurm", env: env, wantAction: Cancel,
			cause:     fmt.Errorf("job environment: %w", &slurm.SpecError{Var: "LWK_MODE", Err: errors.New("spec contains byte 0x09; only printable ASCII is allowed")}),
			wantCalls: []string{comment("lwk: job environment: LWK_MODE: spec contains byte 0x09; only printable ASCII is allowed"), scancel + " 42"},
		},
		{
			name: "ambiguous job record", env: env, wantAction: Cancel,
			cause:     fmt.Errorf("show job 42: job 42: JOB_GRES appears twice in the record (a job name or comment with newlines?): %w", slurm.ErrAmbiguous),
			wantCalls: []string{comment("lwk: show job 42: job 42: JOB_GRES appears twice in the record (a job name or comment with newlines?): ambiguous scontrol output"), scancel + " 42"},
		},
		{
			name: "busy: comment and requeue", cause: busy, env: env, wantAction: Requeue,
			wantCalls: []string{comment("lwk: requeued: job 41's lwk is on this node: another job's lwk is on this node"), scontrol + " requeue 42"},
		},
		{
			name: "busy, not a batch job: cancelled", cause: busy, env: env, fail: []string{scontrol + " requeue"}, wantAction: Cancel,
			wantCalls: []string{
				comment("lwk: requeued: job 41's lwk is on this node: another job's lwk is on this node"), scontrol + " requeue 42",
				comment("lwk: cannot requeue: job 41's lwk is on this node: another job's lwk is on this node"), scancel + " 42",
			},
		},
		{
			name: "busy, neither requeue nor cancel: drained", cause: busy, env: env, fail: []string{scontrol + " requeue", scancel}, wantAction: Drain,
			wantCalls: []string{
				comment("lwk: requeued: job 41's lwk is on this node: another job's lwk is on this node"), scontrol + " requeue 42",
				comment("lwk: cannot requeue: job 41's lwk is on this node: another job's lwk is on this node"), scancel + " 42",
				drain("lwk: job 42: job 41's lwk is on this node: another job's lwk is on this node"),
			},
			wantErr: "another job's lwk is on this node (and requeue job 42",
		},
		{
			name: "node fault: drain reason on one line", cause: fault, env: env, wantAction: Drain,
			wantCalls: []string{drain("lwk: job 42: boot: os 0: EIO; rollback: destroy os 0: EBUSY")},
			wantErr:   "boot: os 0: EIO\nrollback: destroy os 0: EBUSY",
		},
		{
			name: "node fault, drain reason refused", cause: fault, env: env, fail: []string{scontrol + " update NodeName"}, wantAction: Drain,
			wantCalls: []string{drain("lwk: job 42: boot: os 0: EIO; rollback: destroy os 0: EBUSY")},
			wantErr:   "EBUSY (and setting the drain reason failed: drain node cn001",
		},
		{
			name: "node fault without a node name", cause: fault, env: slurm.JobEnv{JobID: 42}, wantAction: Drain,
			wantErr: "(and cannot set the drain reason: SLURMD_NODENAME is not set)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSlurm{fail: tc.fail}
			res, err := Handle(context.Background(), Slurm{Runner: f, Scontrol: scontrol, Scancel: scancel}, tc.env, tc.cause)
			require.Equal(t, tc.wantCalls, f.calls)
			require.Equal(t, tc.wantAction, res.Action)
			require.Equal(t, Decide(tc.cause), res.Decided)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorIs(t, err, tc.cause, "the prolog's error keeps its cause")
		})
	}
}
