package accounting

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Runner runs a command given as argv (never through a shell) and returns
// its standard output; pkg/slurm's ExecRunner is one.
type Runner interface {
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// Fields a record may be stored in. SystemComment is the default, so that
// the record coexists with jobstats, which uses AdminComment.
var Fields = []string{"SystemComment", "AdminComment", "Comment"}

// CheckField refuses a field that is not one of Fields.
func CheckField(field string) error {
	for _, f := range Fields {
		if f == field {
			return nil
		}
	}
	return fmt.Errorf("accounting field %q: want one of %s", field, strings.Join(Fields, ", "))
}

// Store writes the encoded record into the job's field in the accounting
// database: `sacctmgr -i modify job where jobid=N set <field>=<record>`.
// It works after the job has ended (scontrol no longer does) and needs an
// operator or SlurmUser.
func Store(ctx context.Context, r Runner, sacctmgr string, jobID uint32, field, encoded string) error {
	if err := CheckField(field); err != nil {
		return err
	}
	if !strings.HasPrefix(encoded, Prefix) || strings.ContainsAny(encoded, " \t\n\"'`") {
		return fmt.Errorf("store record of job %d: not an encoded record", jobID)
	}
	id := strconv.FormatUint(uint64(jobID), 10)
	argv := []string{sacctmgr, "-i", "modify", "job", "where", "jobid=" + id, "set", field + "=" + encoded}
	if _, err := r.Run(ctx, argv); err != nil {
		return fmt.Errorf("store record of job %d in %s: %w", jobID, field, err)
	}
	return nil
}

// Fetch reads the job's field from the accounting database with sacct and
// decodes the record in it.
func Fetch(ctx context.Context, r Runner, sacct string, jobID uint32, field string) (*JobRecord, error) {
	if err := CheckField(field); err != nil {
		return nil, err
	}
	id := strconv.FormatUint(uint64(jobID), 10)
	// -P: no column width, so the record is never cut.
	out, err := r.Run(ctx, []string{sacct, "-n", "-X", "-P", "-j", id, "-o", field})
	if err != nil {
		return nil, fmt.Errorf("read %s of job %d: %w", field, jobID, err)
	}
	rec, err := Decode(string(out))
	if err != nil {
		return nil, fmt.Errorf("job %d %s: %w", jobID, field, err)
	}
	if rec.JobID != jobID {
		return nil, fmt.Errorf("job %d %s holds the record of job %d", jobID, field, rec.JobID)
	}
	return rec, nil
}
