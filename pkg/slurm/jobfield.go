package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// JobField is a job's free-text field that slurm-lwk may annotate while the
// job runs (scontrol update refuses finished jobs).
type JobField string

// The annotatable fields. AdminComment is only readable by root, SlurmUser
// and operators in accounting but is shown by `scontrol show job` to the
// job's user; Comment is the user's own field, stored in accounting only with
// AccountingStoreFlags=job_comment.
const (
	FieldAdminComment JobField = "AdminComment"
	FieldComment      JobField = "Comment"
)

// fieldLabel names each in errors.
var fieldLabel = map[JobField]string{
	FieldAdminComment: "admin comment",
	FieldComment:      "comment",
}

// squeueFormat is the `squeue -O` field of each, without a width (":0"
// prints the whole value).
var squeueFormat = map[JobField]string{
	FieldAdminComment: "admin_comment:0",
	FieldComment:      "comment:0",
}

// squeueIDColumn precedes the field in ReadJobField's query: the job's own
// ID (squeue's JobID is the component's ID for a heterogeneous job, unlike
// JobArrayID), left-justified in a column wider than any uint32.
const squeueIDColumn = "jobid:24"

// appendSeparator joins an appended note to what the field held.
const appendSeparator = "; "

// ReadJobField runs `squeue -h -j <jobID> -O jobid:24,<field>:0` and returns
// the field's value, "" when unset (squeue prints "(null)"). squeue is the
// absolute path of the squeue binary (lwk.conf SqueuePath). For the leader
// of a heterogeneous job squeue prints a line per component; only the line
// whose JobID is jobID counts.
func ReadJobField(ctx context.Context, r Runner, squeue string, jobID uint32, f JobField) (string, error) {
	if err := checkProgram(squeue); err != nil {
		return "", err
	}
	format, ok := squeueFormat[f]
	if !ok {
		return "", fmt.Errorf("read job field %q: not an annotatable field", f)
	}
	if jobID == 0 {
		return "", fmt.Errorf("read %s: job ID 0", f)
	}
	id := strconv.FormatUint(uint64(jobID), 10)
	out, err := r.Run(ctx, []string{squeue, "-h", "-j", id, "-O", squeueIDColumn + "," + format})
	if err != nil {
		return "", fmt.Errorf("read %s of job %d: %w", f, jobID, err)
	}
	var v string
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		lineID, rest, _ := strings.Cut(strings.TrimLeft(line, " "), " ")
		if lineID != id {
			continue
		}
		if found {
			return "", fmt.Errorf("read %s of job %d: squeue printed the job twice", f, jobID)
		}
		found = true
		v = strings.TrimSpace(rest)
	}
	if !found {
		return "", fmt.Errorf("read %s of job %d: squeue did not print the job", f, jobID)
	}
	if v == "(null)" {
		v = ""
	}
	return v, nil
}

// AppendJobField adds text to a running job's field: it reads the field
// with squeue and sets it with `scontrol update JobId=<jobID> <field>=<old>;
// <text>` (text alone when the field was empty), so that what others put
// there (a site's AdminComment, the user's Comment) is kept. text is
// sanitised like a drain reason. When old plus text would exceed
// MaxAdminCommentBytes the field is left alone and an error returned.
func AppendJobField(ctx context.Context, r Runner, squeue, scontrol string, jobID uint32, f JobField, text string) error {
	if err := checkProgram(scontrol); err != nil {
		return err
	}
	text = SanitizeReason(text)
	if text == "" {
		return fmt.Errorf("append to %s of job %d: empty text", f, jobID)
	}
	old, err := ReadJobField(ctx, r, squeue, jobID, f)
	if err != nil {
		return err
	}
	if strings.HasSuffix(old, text) {
		return nil // already there (a second reaction to the same event)
	}
	v := text
	if old != "" {
		v = old + appendSeparator + text
	}
	return SetJobField(ctx, r, scontrol, jobID, f, v)
}
