//go:build linux && (amd64 || arm64)

package ioctl

import (
	"context"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// ikcReqIs checks an ihk_ikc_req at the offsets of IHK's struct ihk_ikc_req
// (linux/include/ihk/ihk_host_user.h):
// src_cpus pointer at 0, dst_cpus pointer at 8, num_cpus int at 16.
func ikcReqIs(src, dst []int32) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		n := int(int32(ne.Uint32(mem(p, 24)[16:])))
		require.Equal(t, len(src), n, "num_cpus")
		require.Equal(t, src, int32s(ptrAt(p, 0), n), "src_cpus")
		require.Equal(t, dst, int32s(ptrAt(p, 8), n), "dst_cpus")
	}
}

// ikcAnswer fills a GET_IKC_MAP request after checking its count.
func ikcAnswer(src, dst []int32) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		n := int(int32(ne.Uint32(mem(p, 24)[16:])))
		require.Equal(t, len(src), n, "num_cpus must equal the assigned count")
		copy(int32s(ptrAt(p, 0), n), src)
		copy(int32s(ptrAt(p, 8), n), dst)
	}
}

func TestIKCMapAndBuildID(t *testing.T) {
	tests := []struct {
		name    string
		calls   []call
		run     func(context.Context, *Client) (any, error)
		want    any
		wantErr wantErr
	}{
		{
			name: "set sends sources and targets in order",
			calls: []call{{dev: mcos2, req: reqOSSetIKCMap, ptr: true,
				arg: ikcReqIs([]int32{4, 5, 12}, []int32{0, 0, 1})}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetIKCMap(ctx, 2, []ihk.IKCRoute{{CPU: 4, Target: 0}, {CPU: 5, Target: 0}, {CPU: 12, Target: 1}})
			},
		},
		{
			name:  "set after boot is busy",
			calls: []call{{dev: mcos2, req: reqOSSetIKCMap, ptr: true, errno: syscall.EBUSY}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetIKCMap(ctx, 2, []ihk.IKCRoute{{CPU: 4, Target: 0}})
			},
			wantErr: wantErr{is: ihk.ErrBusy, op: "IHK_OS_SET_IKC_MAP", os: 2, errno: syscall.EBUSY, detail: "ikc map 4:0"},
		},
		{
			name: "set refuses a target beyond the driver's range before the ioctl",
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetIKCMap(ctx, 2, []ihk.IKCRoute{{CPU: 4, Target: 512}})
			},
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_SET_IKC_MAP", os: 2, errno: syscall.EINVAL, detail: "target cpu 512"},
		},
		{
			name: "get asks with exactly the assigned count",
			calls: []call{
				{dev: mcos0, req: reqOSGetNumCPUs, ret: 2},
				{dev: mcos0, req: reqOSGetIKCMap, ptr: true, arg: ikcAnswer([]int32{9, 4}, []int32{1, 0})},
			},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.IKCMap(ctx, 0) },
			want: []ihk.IKCRoute{{CPU: 9, Target: 1}, {CPU: 4, Target: 0}},
		},
		{
			name: "build id is read up to its NUL",
			calls: []call{{dev: mcos0, req: reqOSGetBuildID, ptr: true, arg: func(t *testing.T, p unsafe.Pointer) {
				b := mem(p, buildIDSize)
				require.Equal(t, make([]byte, buildIDSize), b, "the buffer must be zeroed")
				copy(b, "3114d9e7\x00garbage")
			}}},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.BuildID(ctx, 0) },
			want: "3114d9e7",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.calls...)
			got, err := tc.run(context.Background(), f.client())
			checkErr(t, tc.wantErr, err)
			if tc.want != nil {
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestFormatIKCMap(t *testing.T) {
	got := ihk.FormatIKCMap([]ihk.IKCRoute{{CPU: 8, Target: 1}, {CPU: 2, Target: 0}, {CPU: 3, Target: 0}, {CPU: 9, Target: 1}})
	require.Equal(t, "2-3:0+8-9:1", got)
}
