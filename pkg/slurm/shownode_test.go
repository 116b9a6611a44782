package slurm

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// What 22.05's scontrol show node -o prints for the demo node (one line).
const showNodeVM = "NodeName=vm Arch=x86_64 CoresPerSocket=4 CPUAlloc=0 CPUEfctv=12 CPUTot=16 CPULoad=0.00 " +
	"AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=127.0.0.1 NodeHostName=vm Version=22.05.8 " +
	"OS=Linux 6.18.44 #1 SMP RealMemory=12000 AllocMem=0 FreeMem=20000 Sockets=2 Boards=1 " +
	"CoreSpecCount=2 CPUSpecList=0-1,8-9 MemSpecLimit=2000 State=IDLE ThreadsPerCore=2 TmpDisk=0 Weight=1 " +
	"Owner=N/A MCS_label=N/A Partitions=debug,lwk BootTime=2026-11-25T07:00:00 SlurmdStartTime=2026-11-25T07:10:00 " +
	"LastBusyTime=2026-11-25T07:20:00 CfgTRES=cpu=12,mem=12000M,billing=12 AllocTRES= CapWatts=n/a " +
	"CurrentWatts=0 AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"

func TestParseShowNode(t *testing.T) {
	l, err := ParseShowNode([]byte(showNodeVM), "vm")
	require.NoError(t, err)
	require.Equal(t, NodeLayout{Sockets: 2, CoresPerSocket: 4, ThreadsPerCore: 2}, l)
	require.Equal(t, "2 sockets x 4 cores x 2 threads", l.String())

	for _, tc := range []struct{ name, out, node, want string }{
		{"other node", showNodeVM, "node01", "not about node node01"},
		{"missing field", "NodeName=vm Sockets=2 CoresPerSocket=4\n", "vm", "ThreadsPerCore"},
		{"zero", "NodeName=vm Sockets=0 CoresPerSocket=4 ThreadsPerCore=1\n", "vm", "bad Sockets"},
		{"twice", "NodeName=vm Sockets=2 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1\n", "vm", "want one Sockets="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseShowNode([]byte(tc.out), tc.node)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestShowNodeArgv(t *testing.T) {
	r := &fakeRunner{stdout: []byte(showNodeVM)}
	l, err := ShowNode(context.Background(), r, scontrol, "vm")
	require.NoError(t, err)
	require.Equal(t, 2, l.ThreadsPerCore)
	require.Equal(t, [][]string{{scontrol, "show", "node", "-o", "vm"}}, r.calls)
	_, err = ShowNode(context.Background(), r, scontrol, "vm Sockets=9")
	require.ErrorContains(t, err, "node name")
}
