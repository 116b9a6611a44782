package monitor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
)

// slurmLog stands in for scontrol, scancel and squeue: it records each
// command line and answers squeue with the job's current comment.
type slurmLog struct {
	mu      sync.Mutex
	calls   [][]string
	comment string
}

func (s *slurmLog) Run(_ context.Context, argv []string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, append([]string{}, argv...))
	if strings.HasSuffix(argv[0], "/squeue") {
		return []byte(fmt.Sprintf("%-24d%s\n", 71, s.comment)), nil
	}
	return nil, nil
}

func (s *slurmLog) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		out = append(out, strings.Join(c, " "))
	}
	return out
}

// TestFailureReasonAppendedToTheJobField: on a simulated panic the monitor
// drains the node, appends the reason to the configured job field after
// reading what it held (a site's note stays), and only then cancels the
// job; with FailureReasonField=none it only drains and cancels.
func TestFailureReasonAppendedToTheJobField(t *testing.T) {
	for _, tc := range []struct {
		field    string
		existing string
		read     string // the squeue format read; "" none
		set      string // the scontrol update argument prefix; "" none
	}{
		{field: "AdminComment", existing: "jobstats=pending", read: "jobid:24,admin_comment:0", set: "AdminComment=jobstats=pending; lwk: LWK kernel panic on n1"},
		{field: "Comment", existing: "(null)", read: "jobid:24,comment:0", set: "Comment=lwk: LWK kernel panic on n1"},
		{field: "none"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			e := newEnv(t)
			e.boot(71)
			proxy, _ := e.startProxy()
			defer stopProxy(proxy)
			log := &slurmLog{comment: tc.existing}
			cmds := monitor.SlurmCommands{Runner: log, Scontrol: "/usr/bin/scontrol", Scancel: "/usr/bin/scancel",
				Squeue: "/usr/bin/squeue", Node: "n1", ReasonField: monitor.ReasonFieldOf(tc.field)}
			m := e.newMonitor(e.sim, cmds, nil)
			run(t, m)
			waitFor(t, "registered", func() bool { in, ok := instanceOf(m, 71); return ok && in.Registered })
			require.NoError(t, e.sim.InjectPanic(context.Background(), e.os))
			waitFor(t, "the job cancelled", func() bool {
				l := log.lines()
				return len(l) > 0 && l[len(l)-1] == "/usr/bin/scancel 71"
			})
			l := log.lines()
			require.True(t, strings.HasPrefix(l[0], "/usr/bin/scontrol update NodeName=n1 State=DRAIN Reason=lwk: LWK kernel panic on n1"), l[0])
			want := 2
			if tc.read != "" {
				require.Equal(t, "/usr/bin/squeue -h -j 71 -O "+tc.read, l[1])
				require.True(t, strings.HasPrefix(l[2], "/usr/bin/scontrol update JobId=71 "+tc.set), l[2])
				require.Contains(t, l[2], e.spool.KmsgPath(71, e.os, "panic"), "the reason names the saved kernel log")
				want = 4
			}
			require.Len(t, l, want, "%q", l)
		})
	}
	require.Equal(t, slurm.FieldAdminComment, monitor.ReasonFieldOf("AdminComment"))
}
