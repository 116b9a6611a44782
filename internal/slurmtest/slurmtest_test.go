package slurmtest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFields(t *testing.T) {
	tests := []struct {
		name string
		line string
		want map[string]string
	}{
		{name: "job record", line: "JobId=42 JobName=lwk.sh UserId=nobody(65534) JobState=RUNNING Reason=None TresPerNode=gres:lwk:1",
			want: map[string]string{"JobId": "42", "JobName": "lwk.sh", "UserId": "nobody(65534)", "JobState": "RUNNING",
				"Reason": "None", "TresPerNode": "gres:lwk:1"}},
		{name: "a reason with spaces continues its value",
			line: "NodeName=vm State=IDLE+DRAIN Reason=lwk: job 7: boot: injected [root@2026-12-05T08:00:00] Comment=(null)",
			want: map[string]string{"NodeName": "vm", "State": "IDLE+DRAIN",
				"Reason": "lwk: job 7: boot: injected [root@2026-12-05T08:00:00]", "Comment": "(null)"}},
		{name: "a value holding '='", line: "AdminComment=a=b Features=x",
			want: map[string]string{"AdminComment": "a=b", "Features": "x"}},
		{name: "words before any key are dropped", line: "stray JobId=1", want: map[string]string{"JobId": "1"}},
		{name: "empty", line: "", want: map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ParseFields(tc.line))
		})
	}
}

func TestTerminal(t *testing.T) {
	for _, s := range []string{"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"} {
		require.True(t, Terminal(s), s)
	}
	for _, s := range []string{"PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "REQUEUED", ""} {
		require.False(t, Terminal(s), s)
	}
}
