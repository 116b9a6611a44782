package verdict

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
)

// ErrNodeBusy is wrapped by the prolog's error when another job's LWK is
// booted (or being booted or torn down) on the node.
var ErrNodeBusy = errors.New("another job's lwk is on this node")

// Action is what the prolog does about a failure.
type Action int

// Actions, from the mildest for the node to the harshest.
const (
	// Cancel cancels the job: its request cannot be met.
	Cancel Action = iota + 1
	// Requeue puts the job back in the queue: the node is busy.
	Requeue
	// Drain drains the node and fails the prolog: the node is at fault.
	Drain
)

func (a Action) String() string {
	switch a {
	case Cancel:
		return "cancel"
	case Requeue:
		return "requeue"
	case Drain:
		return "drain"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decide classifies the prolog's error.
func Decide(err error) Action {
	var se *slurm.SpecError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNodeBusy):
		return Requeue
	case errors.Is(err, plan.ErrRequest), errors.As(err, &se), errors.Is(err, slurm.ErrAmbiguous):
		return Cancel
	}
	return Drain
}

// Slurm is how Handle reaches Slurm: the runner and the absolute paths of
// scontrol and scancel (lwk.conf ScontrolPath, ScancelPath).
type Slurm struct {
	Runner   slurm.Runner
	Scontrol string
	Scancel  string
}

// Result is what Handle did.
type Result struct {
	// Action is what was done in the end: a failed cancel or requeue ends
	// in Drain.
	Action Action
	// Decided is what Decide said.
	Decided Action
	// Reason is the one-line text put into the AdminComment or the drain
	// reason.
	Reason string
}

// Handle carries out the decision for the failed prolog of job env. It
// returns nil when the job was cancelled or requeued (the prolog exits 0),
// else the error the prolog must fail with: cause, joined with what went
// wrong on the way. ctx bounds all Slurm calls.
func Handle(ctx context.Context, s Slurm, env slurm.JobEnv, cause error) (Result, error) {
	res := Result{Decided: Decide(cause)}
	if res.Decided == 0 {
		return res, nil
	}
	msg := oneLine(cause)
	var errs []error
	switch res.Decided {
	case Cancel:
		res.Reason = "lwk: " + msg
		if err := cancel(ctx, s, env.JobID, res.Reason); err != nil {
			errs = append(errs, err)
			break
		}
		res.Action = Cancel
		return res, nil
	case Requeue:
		res.Reason = "lwk: requeued: " + msg
		err := comment(ctx, s, env.JobID, res.Reason)
		if err == nil {
			err = slurm.RequeueJob(ctx, s.Runner, s.Scontrol, env.JobID)
		}
		if err == nil {
			res.Action = Requeue
			return res, nil
		}
		// Not a batch job (or requeue refused): it cannot wait, so it
		// cannot run here either.
		res.Reason = "lwk: cannot requeue: " + msg
		if cerr := cancel(ctx, s, env.JobID, res.Reason); cerr != nil {
			errs = append(errs, err, cerr)
			break
		}
		res.Action = Cancel
		return res, nil
	}
	res.Action = Drain
	res.Reason = fmt.Sprintf("lwk: job %d: %s", env.JobID, msg)
	if env.Node == "" {
		errs = append(errs, fmt.Errorf("cannot set the drain reason: SLURMD_NODENAME is not set"))
	} else if err := slurm.DrainNode(ctx, s.Runner, s.Scontrol, env.Node, res.Reason); err != nil {
		errs = append(errs, fmt.Errorf("setting the drain reason failed: %w", err))
	}
	if len(errs) == 0 {
		return res, cause
	}
	return res, fmt.Errorf("%w (and %s)", cause, oneLine(errors.Join(errs...)))
}

// cancel records why on the job (AdminComment, shown by scontrol show job
// and sacct) and cancels it. Without the comment the user sees only
// CANCELLED; still cancel.
func cancel(ctx context.Context, s Slurm, jobID uint32, reason string) error {
	cerr := comment(ctx, s, jobID, reason)
	if err := slurm.CancelJob(ctx, s.Runner, s.Scancel, jobID); err != nil {
		return errors.Join(err, cerr)
	}
	return nil
}

func comment(ctx context.Context, s Slurm, jobID uint32, reason string) error {
	return slurm.SetAdminComment(ctx, s.Runner, s.Scontrol, jobID, slurm.SanitizeReason(reason))
}

// oneLine flattens an error message (errors.Join separates with newlines).
func oneLine(err error) string {
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(err.Error())
}
