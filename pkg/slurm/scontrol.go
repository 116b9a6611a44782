package slurm

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxReasonBytes bounds a drain reason after sanitising.
const MaxReasonBytes = 200

// MaxAdminCommentBytes bounds an AdminComment. Slurm stores it in a MySQL
// TEXT column (64 KiB); the bound stays well below that and below argv limits.
const MaxAdminCommentBytes = 16 << 10

// ShowJob runs `scontrol show job -d <jobID>` through r and returns the
// job's allocation on node. scontrol is the absolute path of the scontrol
// binary (lwk.conf ScontrolPath). Slurm advises against calling its commands
// from Prolog/Epilog (one RPC to slurmctld per node per job); callers should
// bound ctx.
func ShowJob(ctx context.Context, r Runner, scontrol string, jobID uint32, node string) (JobAllocation, error) {
	if err := checkProgram(scontrol); err != nil {
		return JobAllocation{}, err
	}
	if jobID == 0 {
		return JobAllocation{}, fmt.Errorf("show job: job ID 0")
	}
	if err := CheckNodeName(node); err != nil {
		return JobAllocation{}, fmt.Errorf("show job %d: %w", jobID, err)
	}
	id := strconv.FormatUint(uint64(jobID), 10)
	out, err := r.Run(ctx, []string{scontrol, "show", "job", "-d", id})
	if err != nil {
		return JobAllocation{}, fmt.Errorf("show job %d: %w", jobID, err)
	}
	a, err := ParseShowJobFor(out, jobID, node)
	if err != nil {
		return JobAllocation{}, fmt.Errorf("show job %d: %w", jobID, err)
	}
	return a, nil
}

// DrainNode runs `scontrol update NodeName=<node> State=DRAIN Reason=<reason>`.
// The reason is sanitised with SanitizeReason; an empty result is an error
// (Slurm requires a reason to drain).
func DrainNode(ctx context.Context, r Runner, scontrol, node, reason string) error {
	if err := checkProgram(scontrol); err != nil {
		return err
	}
	if err := CheckNodeName(node); err != nil {
		return fmt.Errorf("drain node: %w", err)
	}
	reason = SanitizeReason(reason)
	if reason == "" {
		return fmt.Errorf("drain node %s: empty reason", node)
	}
	if _, err := r.Run(ctx, []string{scontrol, "update", "NodeName=" + node, "State=DRAIN", "Reason=" + reason}); err != nil {
		return fmt.Errorf("drain node %s: %w", node, err)
	}
	return nil
}

// SetAdminComment runs `scontrol update JobId=<jobID> AdminComment=<comment>`
// (SetJobField with FieldAdminComment).
func SetAdminComment(ctx context.Context, r Runner, scontrol string, jobID uint32, comment string) error {
	return SetJobField(ctx, r, scontrol, jobID, FieldAdminComment, comment)
}

// SetJobField runs `scontrol update JobId=<jobID> <field>=<value>`. It needs
// root (or SlurmUser) and a job that has not finished: slurmctld refuses
// updates to finished jobs, so it works from a prolog or a running monitor,
// not from the epilog. The value is not rewritten: it must be valid UTF-8
// without control characters and at most MaxAdminCommentBytes; empty clears
// the field.
func SetJobField(ctx context.Context, r Runner, scontrol string, jobID uint32, f JobField, value string) error {
	if err := checkProgram(scontrol); err != nil {
		return err
	}
	what, ok := fieldLabel[f]
	if !ok {
		return fmt.Errorf("set job field %q: not an annotatable field", string(f))
	}
	if jobID == 0 {
		return fmt.Errorf("set %s: job ID 0", what)
	}
	if len(value) > MaxAdminCommentBytes {
		return fmt.Errorf("set %s of job %d: %d bytes, limit %d", what, jobID, len(value), MaxAdminCommentBytes)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("set %s of job %d: not valid UTF-8", what, jobID)
	}
	for _, c := range value {
		if unicode.IsControl(c) {
			return fmt.Errorf("set %s of job %d: contains control character %U", what, jobID, c)
		}
	}
	id := strconv.FormatUint(uint64(jobID), 10)
	if _, err := r.Run(ctx, []string{scontrol, "update", "JobId=" + id, string(f) + "=" + value}); err != nil {
		return fmt.Errorf("set %s of job %d: %w", what, jobID, err)
	}
	return nil
}

// CancelJob runs `scancel <jobID>`. scancel is the absolute path of the
// scancel binary (lwk.conf ScancelPath).
func CancelJob(ctx context.Context, r Runner, scancel string, jobID uint32) error {
	if err := checkProgram(scancel); err != nil {
		return err
	}
	if jobID == 0 {
		return fmt.Errorf("cancel job: job ID 0")
	}
	if _, err := r.Run(ctx, []string{scancel, strconv.FormatUint(uint64(jobID), 10)}); err != nil {
		return fmt.Errorf("cancel job %d: %w", jobID, err)
	}
	return nil
}

// RequeueJob runs `scontrol requeue <jobID>`: the job goes back to the
// queue (slurmctld delays its next start by the credential lifetime, 120 s by
// default). Slurm refuses it for jobs that are not batch jobs.
func RequeueJob(ctx context.Context, r Runner, scontrol string, jobID uint32) error {
	if err := checkProgram(scontrol); err != nil {
		return err
	}
	if jobID == 0 {
		return fmt.Errorf("requeue job: job ID 0")
	}
	if _, err := r.Run(ctx, []string{scontrol, "requeue", strconv.FormatUint(uint64(jobID), 10)}); err != nil {
		return fmt.Errorf("requeue job %d: %w", jobID, err)
	}
	return nil
}

// SanitizeReason makes text safe as a Slurm drain reason: tabs and line
// breaks become spaces, other characters outside printable ASCII (and
// invalid UTF-8) become '?',
// runs of spaces collapse, the ends are trimmed, and the result is cut to
// MaxReasonBytes.
func SanitizeReason(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			space = true
			continue
		case r < 0x20 || r > 0x7e:
			r = '?'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(byte(r))
		if b.Len() >= MaxReasonBytes {
			break
		}
	}
	out := b.String()
	if len(out) > MaxReasonBytes {
		out = out[:MaxReasonBytes]
	}
	return strings.TrimRight(out, " ")
}

func checkProgram(p string) error {
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("slurm command path %q: must be a clean absolute path", p)
	}
	return nil
}
