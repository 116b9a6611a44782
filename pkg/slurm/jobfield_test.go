package slurm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// scriptedRunner answers each command by its program's base name.
type scriptedRunner struct {
	calls [][]string
	out   map[string][]byte
	err   map[string]error
}

func (s *scriptedRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	s.calls = append(s.calls, append([]string{}, argv...))
	name := argv[0][strings.LastIndexByte(argv[0], '/')+1:]
	return s.out[name], s.err[name]
}

const squeue = "/usr/bin/squeue"

func TestAppendJobField(t *testing.T) {
	reason := "lwk: LWK kernel panic on n1 (os 0, job 42)"
	tests := []struct {
		name      string
		field     JobField
		squeueOut string
		squeueErr error
		wantRead  []string
		wantSet   []string // nil: no update
		wantErr   string
	}{
		{name: "empty admin comment", field: FieldAdminComment, squeueOut: "42                      (null)\n",
			wantRead: []string{squeue, "-h", "-j", "42", "-O", "jobid:24,admin_comment:0"},
			wantSet:  []string{scontrol, "update", "JobId=42", "AdminComment=" + reason}},
		{name: "keeps a site's admin comment", field: FieldAdminComment, squeueOut: "42                      site=abc key=1   \n",
			wantRead: []string{squeue, "-h", "-j", "42", "-O", "jobid:24,admin_comment:0"},
			wantSet:  []string{scontrol, "update", "JobId=42", "AdminComment=site=abc key=1; " + reason}},
		{name: "keeps the user's comment", field: FieldComment, squeueOut: "42                      my run 3\n",
			wantRead: []string{squeue, "-h", "-j", "42", "-O", "jobid:24,comment:0"},
			wantSet:  []string{scontrol, "update", "JobId=42", "Comment=my run 3; " + reason}},
		{name: "already appended", field: FieldComment, squeueOut: "42                      my run 3; " + reason + "\n",
			wantRead: []string{squeue, "-h", "-j", "42", "-O", "jobid:24,comment:0"}},
		{name: "job gone", field: FieldAdminComment, squeueErr: &CommandError{ExitCode: 1, Stderr: "slurm_load_jobs error: Invalid job id specified", Err: errors.New("exit status 1")},
			wantRead: []string{squeue, "-h", "-j", "42", "-O", "jobid:24,admin_comment:0"}, wantErr: "read AdminComment of job 42"},
		{name: "too long", field: FieldAdminComment, squeueOut: "42                      " + strings.Repeat("x", MaxAdminCommentBytes) + "\n",
			wantRead: []string{squeue, "-h", "-j", "42", "-O", "jobid:24,admin_comment:0"}, wantErr: "limit 16384"},
		{name: "not a field", field: "Name", wantErr: `read job field "Name": not an annotatable field`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &scriptedRunner{out: map[string][]byte{"squeue": []byte(tc.squeueOut)}, err: map[string]error{"squeue": tc.squeueErr}}
			err := AppendJobField(context.Background(), r, squeue, scontrol, 42, tc.field, reason)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			var want [][]string
			if tc.wantRead != nil {
				want = append(want, tc.wantRead)
			}
			if tc.wantSet != nil {
				want = append(want, tc.wantSet)
			}
			require.Equal(t, want, r.calls)
		})
	}
}

// TestReadJobField: squeue -j of a heterogeneous job's leader prints every
// component; only the line with the asked job's own ID is its field.
func TestReadJobField(t *testing.T) {
	tests := []struct {
		name    string
		jobID   uint32
		out     string
		want    string
		wantErr string
	}{
		{name: "plain job", jobID: 42, out: "42                      site=abc key=1\n", want: "site=abc key=1"},
		{name: "unset", jobID: 42, out: "42                      (null)\n", want: ""},
		{name: "het leader", jobID: 1017, out: "1017                    lwk: LWK kernel panic on n1\n" +
			"1018                    (null)\n", want: "lwk: LWK kernel panic on n1"},
		{name: "het leader printed last", jobID: 1017, out: "1018                    other component\n" +
			"1017                    (null)\n", want: ""},
		{name: "het component", jobID: 1018, out: "1018                    second\n", want: "second"},
		{name: "ID is a prefix of another", jobID: 101, out: "1017                    not this\n" +
			"101                     this one\n", want: "this one"},
		{name: "job not printed", jobID: 42, out: "", wantErr: "read AdminComment of job 42: squeue did not print the job"},
		{name: "job printed twice", jobID: 42, out: "42                      a\n42                      b\n",
			wantErr: "read AdminComment of job 42: squeue printed the job twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &scriptedRunner{out: map[string][]byte{"squeue": []byte(tc.out)}}
			got, err := ReadJobField(context.Background(), r, squeue, tc.jobID, FieldAdminComment)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
