package monitor

import (
	"context"
	"errors"

	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
)

// SlurmCommands acts on Slurm with its commands (never through a shell).
type SlurmCommands struct {
	Runner slurm.Runner
	// Scontrol, Scancel and Squeue are the absolute paths of the commands
	// (lwk.conf ScontrolPath, ScancelPath, SqueuePath).
	Scontrol, Scancel, Squeue string
	// Node is this node's Slurm name.
	Node string
	// ReasonField is the job field FailJob appends the reason to
	// (slurm.FieldAdminComment or slurm.FieldComment); "" appends nowhere.
	ReasonField slurm.JobField
}

// FailJob implements Slurm: it appends the reason to the job's
// ReasonField while the job still runs (`scontrol show job` shows it to
// the user, sacct after the end), keeping what the field held, then
// cancels the job. The cancel is attempted even when the annotation fails.
func (s SlurmCommands) FailJob(ctx context.Context, jobID uint32, reason string) error {
	var errNote error
	if s.ReasonField != "" {
		errNote = slurm.AppendJobField(ctx, s.Runner, s.Squeue, s.Scontrol, jobID, s.ReasonField, reason)
	}
	return errors.Join(errNote, slurm.CancelJob(ctx, s.Runner, s.Scancel, jobID))
}

// DrainNode implements Slurm.
func (s SlurmCommands) DrainNode(ctx context.Context, reason string) error {
	return slurm.DrainNode(ctx, s.Runner, s.Scontrol, s.Node, reason)
}

// ReasonFieldOf maps lwk.conf's FailureReasonField to the job field
// ("none" and "" to none).
func ReasonFieldOf(conf string) slurm.JobField {
	switch conf {
	case string(slurm.FieldAdminComment):
		return slurm.FieldAdminComment
	case string(slurm.FieldComment):
		return slurm.FieldComment
	}
	return ""
}
