package slurm

import (
	"context"
	"fmt"
	"strconv"
)

// SetComment runs `scontrol update JobId=<jobID> Comment=<comment>`: the
// job's user sees it in `scontrol show job` and, with
// AccountingStoreFlags=job_comment, in `sacct -o Comment`. lwk-monitor
// puts the reason there when it fails a job. The comment is sanitised like
// a drain reason (one line of printable ASCII, bounded); it needs root or
// SlurmUser and a job that has not finished.
func SetComment(ctx context.Context, r Runner, scontrol string, jobID uint32, comment string) error {
	if err := checkProgram(scontrol); err != nil {
		return err
	}
	if jobID == 0 {
		return fmt.Errorf("set comment: job ID 0")
	}
	comment = SanitizeReason(comment)
	id := strconv.FormatUint(uint64(jobID), 10)
	if _, err := r.Run(ctx, []string{scontrol, "update", "JobId=" + id, "Comment=" + comment}); err != nil {
		return fmt.Errorf("set comment of job %d: %w", jobID, err)
	}
	return nil
}
