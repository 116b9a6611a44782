//go:build linux && (amd64 || arm64)

package ioctl

import (
	"context"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// monitorHeader fills the 1032-byte ihk_os_monitor header: num_processors at 0.
func monitorHeader(n uint64) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, 1032) // checkptr: the buffer must hold the whole header
		ne.PutUint64(b[0:], n)
		b[1031] = 0xff // reserve[127]; must not be mistaken for data
	}
}

// monitorCPUs fills n 24-byte ihk_os_cpu_monitor entries: status at 0,
// status_bak at 4, counter at 8, ocounter at 16.
func monitorCPUs(status []uint32, counter []uint64) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, 24*len(status))
		for i := range status {
			e := b[24*i:]
			ne.PutUint32(e[0:], status[i])
			ne.PutUint32(e[4:], 77) // status_bak
			ne.PutUint64(e[8:], counter[i])
			ne.PutUint64(e[16:], 88) // ocounter
		}
	}
}

func TestCPUActivity(t *testing.T) {
	tests := []struct {
		name    string
		calls   []call
		want    []CPUActivity
		wantErr wantErr
	}{
		{
			name: "header, then one entry per LWK cpu",
			calls: []call{
				{dev: mcos0, req: reqOSGetUsage, ptr: true, arg: monitorHeader(3)},
				{dev: mcos0, req: reqOSGetCPUUsage, ptr: true,
					arg: monitorCPUs([]uint32{CPUUser, CPUKernel | 1<<31, CPUPanic}, []uint64{10, 20, 30})},
			},
			want: []CPUActivity{{State: CPUUser, Counter: 10}, {State: CPUKernel, Counter: 20}, {State: CPUPanic, Counter: 30}},
		},
		{
			name:    "not booted",
			calls:   []call{{dev: mcos0, req: reqOSGetUsage, ptr: true, errno: syscall.ENOSYS}},
			wantErr: wantErr{op: "IHK_OS_GET_USAGE", os: 0, errno: syscall.ENOSYS},
		},
		{
			name:    "implausible cpu count",
			calls:   []call{{dev: mcos0, req: reqOSGetUsage, ptr: true, arg: monitorHeader(4096)}},
			wantErr: wantErr{op: "IHK_OS_GET_USAGE", os: 0, errno: syscall.EIO, detail: "num_processors 4096"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.calls...)
			got, err := f.client().CPUActivity(context.Background(), 0)
			checkErr(t, tc.wantErr, err)
			require.Equal(t, tc.want, got)
		})
	}
}
