package slurm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeRunner records the argv it is given and answers with canned output.
type fakeRunner struct {
	calls  [][]string
	stdout []byte
	err    error
}

func (f *fakeRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	f.calls = append(f.calls, append([]string{}, argv...))
	return f.stdout, f.err
}

const scontrol = "/usr/bin/scontrol"

func TestShowJob(t *testing.T) {
	invalid := &CommandError{
		Argv: []string{scontrol, "show", "job", "-d", "999999"}, ExitCode: 1,
		Stderr: "slurm_load_jobs error: Invalid job id specified", Err: errors.New("exit status 1"),
	}
	tests := []struct {
		name     string
		scontrol string
		jobID    uint32
		node     string
		stdout   []byte
		runErr   error
		wantArgv []string
		wantCPUs string
		wantErr  string
	}{
		{
			name: "running job", scontrol: scontrol, jobID: 8, node: "vm",
			stdout:   fixture(t, "22.05.8-running.txt"),
			wantArgv: []string{scontrol, "show", "job", "-d", "8"},
			wantCPUs: "4-5",
		},
		{
			name: "array master output, task record chosen", scontrol: scontrol, jobID: 16, node: "vm",
			stdout:   fixture(t, "22.05.8-array.txt"),
			wantArgv: []string{scontrol, "show", "job", "-d", "16"},
			wantCPUs: "4-5",
		},
		{
			name: "scontrol fails", scontrol: scontrol, jobID: 999999, node: "vm", runErr: invalid,
			wantArgv: []string{scontrol, "show", "job", "-d", "999999"},
			wantErr:  "show job 999999: run /usr/bin/scontrol show job -d 999999: exit status 1: slurm_load_jobs error: Invalid job id specified",
		},
		{
			name: "output for another job", scontrol: scontrol, jobID: 9, node: "vm",
			stdout:   fixture(t, "22.05.8-running.txt"),
			wantArgv: []string{scontrol, "show", "job", "-d", "9"},
			wantErr:  "no record for job 9",
		},
		{name: "relative scontrol", scontrol: "scontrol", jobID: 8, node: "vm", wantErr: "clean absolute path"},
		{name: "job 0", scontrol: scontrol, jobID: 0, node: "vm", wantErr: "job ID 0"},
		{name: "node with option syntax", scontrol: scontrol, jobID: 8, node: "--all", wantErr: "node name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRunner{stdout: tc.stdout, err: tc.runErr}
			got, err := ShowJob(context.Background(), r, tc.scontrol, tc.jobID, tc.node)
			if tc.wantArgv == nil {
				require.Empty(t, r.calls, "nothing may run on invalid input")
			} else {
				require.Equal(t, [][]string{tc.wantArgv}, r.calls)
			}
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantCPUs, got.CPUIDs.String())
			require.Equal(t, tc.jobID, got.JobID)
		})
	}

	// The runner's error stays inspectable through the wrapping.
	_, err := ShowJob(context.Background(), &fakeRunner{err: invalid}, scontrol, 999999, "vm")
	var ce *CommandError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 1, ce.ExitCode)
}

func TestSanitizeReason(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain", in: "lwk: boot: timeout after 120s", want: "lwk: boot: timeout after 120s"},
		{name: "newlines and tabs", in: "lwk: destroy_os\n\tEBUSY\r\n", want: "lwk: destroy_os EBUSY"},
		{name: "control characters", in: "a\x1b[31mb\x00c", want: "a?[31mb?c"},
		{name: "non-ASCII, one mark per character", in: "mémoire épuisée", want: "m?moire ?puis?e"},
		{name: "invalid UTF-8", in: "a\xffb", want: "a?b"},
		{name: "leading and repeated spaces", in: "   a    b   ", want: "a b"},
		{name: "only spaces", in: " \n\t ", want: ""},
		{name: "quotes and equals survive (argv, no shell)", in: `Reason="x" State=RESUME; rm -rf /`, want: `Reason="x" State=RESUME; rm -rf /`},
		{name: "cut to 200 bytes", in: strings.Repeat("x", 300), want: strings.Repeat("x", 200)},
		{name: "cut does not end in a space", in: strings.Repeat("x", 199) + " yyyy", want: strings.Repeat("x", 199)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SanitizeReason(tc.in)
			require.Equal(t, tc.want, got)
			require.LessOrEqual(t, len(got), MaxReasonBytes)
			for i := 0; i < len(got); i++ {
				require.True(t, got[i] >= 0x20 && got[i] <= 0x7e, "byte %q at %d", got[i], i)
			}
		})
	}
}

func TestDrainNode(t *testing.T) {
	tests := []struct {
		name     string
		node     string
		reason   string
		runErr   error
		wantArgv []string
		wantErr  string
	}{
		{
			name: "drain", node: "vm", reason: "lwk: epilog: release_cpus 4-15: EBUSY",
			wantArgv: []string{scontrol, "update", "NodeName=vm", "State=DRAIN", "Reason=lwk: epilog: release_cpus 4-15: EBUSY"},
		},
		{
			name: "reason sanitised", node: "node01", reason: "lwk: boot\nfailed",
			wantArgv: []string{scontrol, "update", "NodeName=node01", "State=DRAIN", "Reason=lwk: boot failed"},
		},
		{name: "empty reason", node: "vm", reason: "\n", wantErr: "empty reason"},
		{name: "bad node", node: "vm State=RESUME", reason: "x", wantErr: "node name"},
		{
			name: "scontrol fails", node: "vm", reason: "x", runErr: errors.New("exit status 1"),
			wantArgv: []string{scontrol, "update", "NodeName=vm", "State=DRAIN", "Reason=x"},
			wantErr:  "drain node vm: exit status 1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRunner{err: tc.runErr}
			err := DrainNode(context.Background(), r, scontrol, tc.node, tc.reason)
			if tc.wantArgv == nil {
				require.Empty(t, r.calls)
			} else {
				require.Equal(t, [][]string{tc.wantArgv}, r.calls)
			}
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
	require.ErrorContains(t, DrainNode(context.Background(), &fakeRunner{}, "/usr/bin/../bin/scontrol", "vm", "x"), "clean absolute path")
}

func TestSetAdminComment(t *testing.T) {
	tests := []struct {
		name     string
		jobID    uint32
		comment  string
		runErr   error
		wantArgv []string
		wantErr  string
	}{
		{
			name: "JSON survives as one argument", jobID: 13, comment: `lwk1:{"os":0,"cpus":"4-15"}`,
			wantArgv: []string{scontrol, "update", "JobId=13", `AdminComment=lwk1:{"os":0,"cpus":"4-15"}`},
		},
		{
			name: "empty clears", jobID: 13, comment: "",
			wantArgv: []string{scontrol, "update", "JobId=13", "AdminComment="},
		},
		{
			name: "UTF-8 allowed", jobID: 13, comment: "mémoire",
			wantArgv: []string{scontrol, "update", "JobId=13", "AdminComment=mémoire"},
		},
		{name: "newline refused", jobID: 13, comment: "a\nb", wantErr: "control character U+000A"},
		{name: "invalid UTF-8 refused", jobID: 13, comment: "a\xff", wantErr: "not valid UTF-8"},
		{name: "too long", jobID: 13, comment: strings.Repeat("x", MaxAdminCommentBytes+1), wantErr: "limit 16384"},
		{name: "job 0", jobID: 0, comment: "x", wantErr: "job ID 0"},
		{
			name: "finished job", jobID: 13, comment: "x",
			runErr:   &CommandError{Argv: []string{scontrol}, ExitCode: 1, Stderr: "Job has already finished for job 13", Err: errors.New("exit status 1")},
			wantArgv: []string{scontrol, "update", "JobId=13", "AdminComment=x"},
			wantErr:  "set admin comment of job 13: run /usr/bin/scontrol: exit status 1: Job has already finished for job 13",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRunner{err: tc.runErr}
			err := SetAdminComment(context.Background(), r, scontrol, tc.jobID, tc.comment)
			if tc.wantArgv == nil {
				require.Empty(t, r.calls)
			} else {
				require.Equal(t, [][]string{tc.wantArgv}, r.calls)
			}
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestCancelJob(t *testing.T) {
	const scancel = "/usr/bin/scancel"
	r := &fakeRunner{}
	require.NoError(t, CancelJob(context.Background(), r, scancel, 42))
	require.Equal(t, [][]string{{scancel, "42"}}, r.calls)

	r = &fakeRunner{err: errors.New("exit status 1")}
	require.ErrorContains(t, CancelJob(context.Background(), r, scancel, 42), "cancel job 42: exit status 1")
	require.ErrorContains(t, CancelJob(context.Background(), &fakeRunner{}, scancel, 0), "job ID 0")
	require.ErrorContains(t, CancelJob(context.Background(), &fakeRunner{}, "scancel", 1), "clean absolute path")
}

func TestRequeueJob(t *testing.T) {
	r := &fakeRunner{}
	require.NoError(t, RequeueJob(context.Background(), r, scontrol, 42))
	require.Equal(t, [][]string{{scontrol, "requeue", "42"}}, r.calls)

	r = &fakeRunner{err: errors.New("exit status 1")}
	require.ErrorContains(t, RequeueJob(context.Background(), r, scontrol, 42), "requeue job 42: exit status 1")
	require.ErrorContains(t, RequeueJob(context.Background(), &fakeRunner{}, scontrol, 0), "job ID 0")
	require.ErrorContains(t, RequeueJob(context.Background(), &fakeRunner{}, "scontrol", 1), "clean absolute path")
}
