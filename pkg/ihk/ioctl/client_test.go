//go:build linux && (amd64 || arm64)

package ioctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

const (
	mcd0  = "mcd0"
	mcos0 = "mcos0"
	mcos2 = "mcos2"
	mib   = 1 << 20
)

// wantErr describes the expected error of a case; the zero value means none.
type wantErr struct {
	is       error // sentinel matched with errors.Is
	notIs    error // sentinel that must not match
	op       string
	os       int
	errno    syscall.Errno
	notFound bool
	detail   string // substring of Detail
}

func checkErr(t *testing.T, want wantErr, err error) {
	t.Helper()
	if want.is == nil && want.op == "" {
		require.NoError(t, err)
		return
	}
	require.Error(t, err)
	if want.is != nil {
		require.ErrorIs(t, err, want.is)
	}
	if want.notIs != nil {
		require.NotErrorIs(t, err, want.notIs)
	}
	if want.op == "" {
		return
	}
	var ie *ihk.Error
	require.ErrorAs(t, err, &ie)
	require.Equal(t, want.op, ie.Op)
	require.Equal(t, want.os, ie.OS)
	require.Equal(t, want.errno, ie.Errno)
	require.Equal(t, want.notFound, ie.NotFound)
	require.Contains(t, ie.Detail, want.detail)
}

func TestDeviceOperations(t *testing.T) {
	page := int32(os.Getpagesize())
	tests := []struct {
		name    string
		calls   []call
		run     func(context.Context, *Client) (any, error)
		want    any
		wantErr wantErr
	}{
		{
			name:  "reserve cpus passes an ihk_cpu_req",
			calls: []call{{dev: mcd0, req: reqDeviceReserveCPU, ptr: true, arg: cpuReqIs(2, 3, 4, 5)}},
			run:   func(ctx context.Context, c *Client) (any, error) { return nil, c.ReserveCPUs(ctx, []int{2, 3, 4, 5}) },
		},
		{
			name:    "reserve cpus hot-unplug failure is EPERM",
			calls:   []call{{dev: mcd0, req: reqDeviceReserveCPU, ptr: true, arg: cpuReqIs(0, 1), errno: syscall.EPERM}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.ReserveCPUs(ctx, []int{0, 1}) },
			wantErr: wantErr{is: ihk.ErrPermission, op: "IHK_DEVICE_RESERVE_CPU", os: -1, errno: syscall.EPERM, detail: "cpus 0-1"},
		},
		{
			name:    "a positive residual from a returns-0 request is a failure",
			calls:   []call{{dev: mcd0, req: reqDeviceReserveCPU, ptr: true, ret: 8}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.ReserveCPUs(ctx, []int{2, 3}) },
			wantErr: wantErr{op: "IHK_DEVICE_RESERVE_CPU", os: -1, errno: syscall.EFAULT, detail: "returned 8, want 0"},
		},
		{
			// One request per call: package retry retries EINTR.
			name:    "EINTR is returned, not retried",
			calls:   []call{{dev: mcd0, req: reqDeviceReleaseCPU, ptr: true, arg: cpuReqIs(7), errno: syscall.EINTR}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.ReleaseCPUs(ctx, []int{7}) },
			wantErr: wantErr{op: "IHK_DEVICE_RELEASE_CPU", os: -1, errno: syscall.EINTR, detail: "cpus 7"},
		},
		{
			name:    "cpu ids past SMP_MAX_CPUS are rejected before the ioctl",
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.ReserveCPUs(ctx, []int{2, 512}) },
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_DEVICE_RESERVE_CPU", os: -1, errno: syscall.EINVAL, detail: "cpu 512"},
		},
		{
			name:    "duplicate cpus are rejected",
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.ReleaseCPUs(ctx, []int{3, 3}) },
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_DEVICE_RELEASE_CPU", os: -1, errno: syscall.EINVAL, detail: "twice"},
		},
		{
			name: "no cpus is a no-op",
			run:  func(ctx context.Context, c *Client) (any, error) { return nil, c.ReserveCPUs(ctx, nil) },
		},
		{
			name: "reserved cpus: count, then query with exactly that count",
			calls: []call{
				{dev: mcd0, req: reqDeviceGetNumCPUs, ret: 3},
				{dev: mcd0, req: reqDeviceQueryCPU, ptr: true, arg: cpuQuery(3, 9, 2, 5)},
			},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.ReservedCPUs(ctx) },
			want: []int{2, 5, 9},
		},
		{
			name:  "reserved cpus: none",
			calls: []call{{dev: mcd0, req: reqDeviceGetNumCPUs, ret: 0}},
			run:   func(ctx context.Context, c *Client) (any, error) { return c.ReservedCPUs(ctx) },
			want:  []int{},
		},
		{
			name: "reserved cpus: count changed in between",
			calls: []call{
				{dev: mcd0, req: reqDeviceGetNumCPUs, ret: 2},
				{dev: mcd0, req: reqDeviceQueryCPU, ptr: true, arg: cpuQuery(2), errno: syscall.EINVAL},
			},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.ReservedCPUs(ctx) },
			want:    []int(nil),
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_DEVICE_QUERY_CPU", os: -1, errno: syscall.EINVAL},
		},
		{
			name: "reserve memory fills libihk's tuning fields",
			calls: []call{{dev: mcd0, req: reqDeviceReserveMem, ptr: true,
				arg: memReqIs([]uint64{512 * mib, 1024 * mib}, []int32{1, 3}, page, 98, 30)}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: 512 * mib, NUMANode: 1}, {Bytes: 1024 * mib, NUMANode: 3}})
			},
		},
		{
			name:  "reserve memory: ENOMEM",
			calls: []call{{dev: mcd0, req: reqDeviceReserveMem, ptr: true, errno: syscall.ENOMEM}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: 64 * mib, NUMANode: 0}})
			},
			wantErr: wantErr{is: ihk.ErrNoMemory, op: "IHK_DEVICE_RESERVE_MEM", os: -1, errno: syscall.ENOMEM, detail: "memory 67108864@0"},
		},
		{
			name: "reserve memory: size not a multiple of 4 MiB",
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: 6 * mib, NUMANode: 0}})
			},
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_DEVICE_RESERVE_MEM", os: -1, errno: syscall.EINVAL, detail: "multiple of 4194304"},
		},
		{
			name: "reserve memory: zero size",
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: 0, NUMANode: 0}})
			},
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_DEVICE_RESERVE_MEM", os: -1, errno: syscall.EINVAL},
		},
		{
			name: "reserve memory: negative node",
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReserveMemory(ctx, []ihk.MemChunk{{Bytes: 4 * mib, NUMANode: -1}})
			},
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_DEVICE_RESERVE_MEM", os: -1, errno: syscall.EINVAL, detail: "numa node"},
		},
		{
			name: "release memory takes fragmented chunk sizes and no tuning fields",
			calls: []call{{dev: mcd0, req: reqDeviceReleaseMem, ptr: true,
				arg: memReqIs([]uint64{2 * mib, 4096}, []int32{0, 0}, 0, 0, 0)}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReleaseMemory(ctx, []ihk.MemChunk{{Bytes: 2 * mib, NUMANode: 0}, {Bytes: 4096, NUMANode: 0}})
			},
		},
		{
			name: "reserved memory: count, then list with spare room",
			calls: []call{
				{dev: mcd0, req: reqDeviceQueryMem, ptr: true, arg: memCount(2)},
				{dev: mcd0, req: reqDeviceQueryMem, ptr: true,
					arg: memList(18, []uint64{256 * mib, 8 * mib}, []int32{2, 3})},
			},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.ReservedMemory(ctx) },
			want: []ihk.MemChunk{{Bytes: 256 * mib, NUMANode: 2}, {Bytes: 8 * mib, NUMANode: 3}},
		},
		{
			name:  "reserved memory: none",
			calls: []call{{dev: mcd0, req: reqDeviceQueryMem, ptr: true, arg: memCount(0)}},
			run:   func(ctx context.Context, c *Client) (any, error) { return c.ReservedMemory(ctx) },
			want:  []ihk.MemChunk{},
		},
		{
			name:  "create os returns the index",
			calls: []call{{dev: mcd0, req: reqDeviceCreateOS, val: 0, ret: 3}},
			run:   func(ctx context.Context, c *Client) (any, error) { return c.CreateOS(ctx) },
			want:  3,
		},
		{
			name:    "create os: out of slots",
			calls:   []call{{dev: mcd0, req: reqDeviceCreateOS, errno: syscall.ENOMEM}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.CreateOS(ctx) },
			want:    0,
			wantErr: wantErr{is: ihk.ErrNoMemory, op: "IHK_DEVICE_CREATE_OS", os: -1, errno: syscall.ENOMEM},
		},
		{
			name:    "create os: impossible index",
			calls:   []call{{dev: mcd0, req: reqDeviceCreateOS, ret: 64}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.CreateOS(ctx) },
			want:    0,
			wantErr: wantErr{op: "IHK_DEVICE_CREATE_OS", os: -1, errno: syscall.EIO, detail: "returned 64"},
		},
		{
			name:  "destroy os passes the index by value",
			calls: []call{{dev: mcd0, req: reqDeviceDestroyOS, val: 2}},
			run:   func(ctx context.Context, c *Client) (any, error) { return nil, c.DestroyOS(ctx, 2) },
		},
		{
			name:    "destroy os: EINVAL for a missing index is not found",
			calls:   []call{{dev: mcd0, req: reqDeviceDestroyOS, val: 5, errno: syscall.EINVAL}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.DestroyOS(ctx, 5) },
			wantErr: wantErr{is: ihk.ErrNotFound, notIs: ihk.ErrInvalid, op: "IHK_DEVICE_DESTROY_OS", os: 5, errno: syscall.EINVAL, notFound: true},
		},
		{
			// One request per call: teardown retries EBUSY.
			name:    "destroy os: EBUSY is returned, not retried",
			calls:   []call{{dev: mcd0, req: reqDeviceDestroyOS, val: 1, errno: syscall.EBUSY}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.DestroyOS(ctx, 1) },
			wantErr: wantErr{is: ihk.ErrBusy, op: "IHK_DEVICE_DESTROY_OS", os: 1, errno: syscall.EBUSY},
		},
		{
			name:    "destroy os: index 64 never reaches the driver",
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.DestroyOS(ctx, 64) },
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_DEVICE_DESTROY_OS", os: -1, errno: syscall.EINVAL, detail: "out of range"},
		},
		{
			name:  "detect hangup returns the status",
			calls: []call{{dev: mcd0, req: reqDeviceDetectHungup, val: 4, ret: 10}},
			run:   func(ctx context.Context, c *Client) (any, error) { return c.DetectHangup(ctx, 4) },
			want:  ihk.StatusHungup,
		},
		{
			name:    "detect hangup: missing index",
			calls:   []call{{dev: mcd0, req: reqDeviceDetectHungup, val: 4, errno: syscall.EINVAL}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.DetectHangup(ctx, 4) },
			want:    ihk.StatusNotBooted,
			wantErr: wantErr{is: ihk.ErrNotFound, op: "IHK_DEVICE_DETECT_HUNGUP", os: 4, errno: syscall.EINVAL, notFound: true},
		},
		{
			name:    "detect hangup: not booted is EAGAIN",
			calls:   []call{{dev: mcd0, req: reqDeviceDetectHungup, val: 0, errno: syscall.EAGAIN}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.DetectHangup(ctx, 0) },
			want:    ihk.StatusNotBooted,
			wantErr: wantErr{op: "IHK_DEVICE_DETECT_HUNGUP", os: 0, errno: syscall.EAGAIN},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.calls...)
			c := f.client()
			got, err := tc.run(context.Background(), c)
			checkErr(t, tc.wantErr, err)
			if tc.want != nil {
				require.Equal(t, tc.want, got)
			}
			if len(tc.calls) == 0 {
				require.Empty(t, f.opens, "rejected before opening the device")
			}
		})
	}
}

func TestOSOperations(t *testing.T) {
	tests := []struct {
		name    string
		calls   []call
		openErr map[string]error
		run     func(context.Context, *Client) (any, error)
		want    any
		wantErr wantErr
	}{
		{
			name:  "assign cpus keeps the LWK order",
			calls: []call{{dev: mcos2, req: reqOSAssignCPU, ptr: true, arg: cpuReqIs(5, 3, 4)}},
			run:   func(ctx context.Context, c *Client) (any, error) { return nil, c.AssignCPUs(ctx, 2, []int{5, 3, 4}) },
		},
		{
			name:    "assign cpus: configured os is busy",
			calls:   []call{{dev: mcos2, req: reqOSAssignCPU, ptr: true, errno: syscall.EBUSY}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.AssignCPUs(ctx, 2, []int{5}) },
			wantErr: wantErr{is: ihk.ErrBusy, op: "IHK_OS_ASSIGN_CPU", os: 2, errno: syscall.EBUSY, detail: "cpus 5"},
		},
		{
			name:    "an os being torn down (ENOENT on open) is not found",
			openErr: map[string]error{mcos2: syscall.ENOENT},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.AssignCPUs(ctx, 2, []int{5}) },
			wantErr: wantErr{is: ihk.ErrNotFound, op: "open", os: 2, errno: syscall.ENOENT, detail: "/fake/dev/mcos2"},
		},
		{
			name:    "a missing /dev/mcd0 is not an os not found",
			openErr: map[string]error{mcd0: syscall.ENOENT},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.CreateOS(ctx) },
			want:    0,
			wantErr: wantErr{is: os.ErrNotExist, notIs: ihk.ErrNotFound},
		},
		{
			name: "assigned cpus: count, exact query, LWK order kept",
			calls: []call{
				{dev: mcos0, req: reqOSGetNumCPUs, ret: 2},
				{dev: mcos0, req: reqOSQueryCPU, ptr: true, arg: cpuQuery(2, 9, 4)},
			},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.AssignedCPUs(ctx, 0) },
			want: []int{9, 4},
		},
		{
			name: "assign memory sends only sizes, nodes and count",
			calls: []call{{dev: mcos0, req: reqOSAssignMem, ptr: true,
				arg: memReqIs([]uint64{512 * mib}, []int32{1}, 0, 0, 0)}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.AssignMemory(ctx, 0, []ihk.MemChunk{{Bytes: 512 * mib, NUMANode: 1}})
			},
		},
		{
			name: "assigned memory: count, then list with exactly that count",
			calls: []call{
				{dev: mcos0, req: reqOSQueryMem, ptr: true, arg: memCount(2)},
				{dev: mcos0, req: reqOSQueryMem, ptr: true, arg: memList(2, []uint64{508 * mib, 4 * mib}, []int32{1, 1})},
			},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.AssignedMemory(ctx, 0) },
			want: []ihk.MemChunk{{Bytes: 508 * mib, NUMANode: 1}, {Bytes: 4 * mib, NUMANode: 1}},
		},
		{
			name:  "load image passes the NUL-terminated path",
			calls: []call{{dev: mcos0, req: reqOSLoad, ptr: true, arg: cStringIs("/opt/mck/smp-x86/kernel/mckernel.img")}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.LoadImage(ctx, 0, "/opt/mck/smp-x86/kernel/mckernel.img")
			},
		},
		{
			name:  "load image: 255 bytes is the limit",
			calls: []call{{dev: mcos0, req: reqOSLoad, ptr: true, arg: cStringIs("/" + strings.Repeat("a", 254))}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.LoadImage(ctx, 0, "/"+strings.Repeat("a", 254))
			},
		},
		{
			name: "load image: 256 bytes is rejected",
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.LoadImage(ctx, 0, "/"+strings.Repeat("a", 255))
			},
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_LOAD", os: 0, errno: syscall.EINVAL, detail: "256 bytes"},
		},
		{
			name:    "load image: relative path",
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.LoadImage(ctx, 0, "mckernel.img") },
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_LOAD", os: 0, errno: syscall.EINVAL, detail: "not absolute"},
		},
		{
			name:    "load image: image too big",
			calls:   []call{{dev: mcos0, req: reqOSLoad, ptr: true, errno: syscall.E2BIG}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.LoadImage(ctx, 0, "/big.img") },
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_LOAD", os: 0, errno: syscall.E2BIG, detail: "/big.img"},
		},
		{
			name:  "set kargs passes the string",
			calls: []call{{dev: mcos0, req: reqOSSetKargs, ptr: true, arg: cStringIs("hidos dump_level=24 time_sharing")}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetKernelArgs(ctx, 0, "hidos dump_level=24 time_sharing")
			},
		},
		{
			name:    "set kargs: hidos must be a token",
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.SetKernelArgs(ctx, 0, "nohidos") },
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_SET_KARGS", os: 0, errno: syscall.EINVAL, detail: "hidos"},
		},
		{
			name: "set kargs: 256 bytes is rejected",
			run: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetKernelArgs(ctx, 0, "hidos "+strings.Repeat("x", 250))
			},
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_SET_KARGS", os: 0, errno: syscall.EINVAL, detail: "at most 255"},
		},
		{
			name:  "shutdown passes flag 0 by value",
			calls: []call{{dev: mcos0, req: reqOSShutdown, val: 0}},
			run:   func(ctx context.Context, c *Client) (any, error) { return nil, c.Shutdown(ctx, 0) },
		},
		{
			name:  "status returns the kernel value",
			calls: []call{{dev: mcos2, req: reqOSStatus, ret: 7}},
			run:   func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, 2) },
			want:  ihk.StatusFrozen,
		},
		{
			name:    "status: unknown value",
			calls:   []call{{dev: mcos2, req: reqOSStatus, ret: 11}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, 2) },
			want:    ihk.StatusNotBooted,
			wantErr: wantErr{op: "IHK_OS_STATUS", os: 2, errno: syscall.EIO, detail: "unknown status 11"},
		},
		{
			name:  "freeze",
			calls: []call{{dev: mcos0, req: reqOSFreeze}},
			run:   func(ctx context.Context, c *Client) (any, error) { return nil, c.Freeze(ctx, 0) },
		},
		{
			name:    "thaw: not frozen",
			calls:   []call{{dev: mcos0, req: reqOSThaw, errno: syscall.EINVAL}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.Thaw(ctx, 0) },
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_THAW", os: 0, errno: syscall.EINVAL},
		},
		{
			name: "read kmsg returns the byte count the ioctl reports",
			calls: []call{{dev: mcos0, req: reqOSReadKmsg, ptr: true, ret: 12, arg: func(t *testing.T, p unsafe.Pointer) {
				buf := mem(p, 4190208) // checkptr fails here if the buffer is short
				copy(buf, "IHK/McKernel started.")
				buf[len(buf)-1] = 'x'
			}}},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.ReadKmsg(ctx, 0) },
			want: []byte("IHK/McKernel"),
		},
		{
			name:    "read kmsg: after shutdown",
			calls:   []call{{dev: mcos0, req: reqOSReadKmsg, ptr: true, errno: syscall.EINVAL}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.ReadKmsg(ctx, 0) },
			want:    []byte(nil),
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_READ_KMSG", os: 0, errno: syscall.EINVAL},
		},
		{
			name:    "read kmsg: count larger than the buffer",
			calls:   []call{{dev: mcos0, req: reqOSReadKmsg, ptr: true, ret: 4190209}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.ReadKmsg(ctx, 0) },
			want:    []byte(nil),
			wantErr: wantErr{op: "IHK_OS_READ_KMSG", os: 0, errno: syscall.EIO},
		},
		{
			name: "rusage: full struct, arrays trimmed to the instance",
			calls: []call{
				{dev: mcos0, req: reqAuxGetrusage, ptr: true, arg: func(t *testing.T, p unsafe.Pointer) {
					b := mem(p, 16)
					require.Equal(t, uint64(16568), ne.Uint64(b[8:]), "size_rusage")
					copy(mem(ptrAt(p, 0), 16568), rusageFixture(2, 3, true))
				}},
				{dev: mcos0, req: reqOSGetNumNUMANodes, ret: 2},
				{dev: mcos0, req: reqOSGetNumCPUs, ret: 3},
			},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.Rusage(ctx, 0) },
			want: rusageWant(seq(4000, 2), seq(6000, 3)),
		},
		{
			name: "rusage: counts unavailable, trailing zeros trimmed",
			calls: []call{
				{dev: mcos0, req: reqAuxGetrusage, ptr: true, arg: func(t *testing.T, p unsafe.Pointer) {
					copy(mem(ptrAt(p, 0), 16568), rusageFixture(2, 3, false))
				}},
				{dev: mcos0, req: reqOSGetNumNUMANodes, errno: syscall.ENOSYS},
				{dev: mcos0, req: reqOSGetNumCPUs, errno: syscall.EINVAL},
			},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.Rusage(ctx, 0) },
			want: rusageWant(seq(4000, 2), seq(6000, 3)),
		},
		{
			name:    "rusage: residual byte count from mcctrl",
			calls:   []call{{dev: mcos0, req: reqAuxGetrusage, ptr: true, ret: 16568}},
			run:     func(ctx context.Context, c *Client) (any, error) { return c.Rusage(ctx, 0) },
			want:    (*ihk.Rusage)(nil),
			wantErr: wantErr{op: "IHK_OS_GETRUSAGE", os: 0, errno: syscall.EFAULT, detail: "returned 16568"},
		},
		{
			name: "perf set: count by value, then the attrs; returns the number registered",
			calls: []call{
				{dev: mcos0, req: reqAuxPerfNum, val: 2},
				{dev: mcos0, req: reqAuxPerfSet, ptr: true, ret: 1, arg: func(t *testing.T, p unsafe.Pointer) {
					b := mem(p, 32)
					require.Equal(t, uint64(0x3c), ne.Uint64(b[0:]), "attr[0].config")
					require.Equal(t, []byte{0x09, 0, 0, 0, 0, 0, 0, 0}, b[8:16], "attr[0] bits")
					require.Equal(t, uint64(0xc0), ne.Uint64(b[16:]), "attr[1].config")
					require.Equal(t, []byte{0x04, 0, 0, 0, 0, 0, 0, 0}, b[24:32], "attr[1] bits")
				}},
			},
			run: func(ctx context.Context, c *Client) (any, error) {
				return c.PerfSet(ctx, 0, []ihk.PerfAttr{
					{Config: 0x3c, Disabled: true, ExcludeKernel: true},
					{Config: 0xc0, ExcludeUser: true},
				})
			},
			want: 1,
		},
		{
			name: "perf set: more registered than asked",
			calls: []call{
				{dev: mcos0, req: reqAuxPerfNum, val: 1},
				{dev: mcos0, req: reqAuxPerfSet, ptr: true, ret: 2},
			},
			run: func(ctx context.Context, c *Client) (any, error) {
				return c.PerfSet(ctx, 0, []ihk.PerfAttr{{Config: 1}})
			},
			want:    0,
			wantErr: wantErr{op: "IHK_OS_AUX_PERF_SET", os: 0, errno: syscall.EIO},
		},
		{
			name:  "perf set: not booted (no mcctrl handler)",
			calls: []call{{dev: mcos0, req: reqAuxPerfNum, val: 1, errno: syscall.EINVAL}},
			run: func(ctx context.Context, c *Client) (any, error) {
				return c.PerfSet(ctx, 0, []ihk.PerfAttr{{Config: 1}})
			},
			want:    0,
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_AUX_PERF_NUM", os: 0, errno: syscall.EINVAL},
		},
		{
			name:    "perf set: no events",
			run:     func(ctx context.Context, c *Client) (any, error) { return c.PerfSet(ctx, 0, nil) },
			want:    0,
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_AUX_PERF_SET", os: 0, errno: syscall.EINVAL},
		},
		{
			name:  "perf enable",
			calls: []call{{dev: mcos0, req: reqAuxPerfEnable}},
			run:   func(ctx context.Context, c *Client) (any, error) { return nil, c.PerfControl(ctx, 0, ihk.PerfEnable) },
		},
		{
			name:  "perf disable",
			calls: []call{{dev: mcos0, req: reqAuxPerfDisable}},
			run:   func(ctx context.Context, c *Client) (any, error) { return nil, c.PerfControl(ctx, 0, ihk.PerfDisable) },
		},
		{
			name:    "perf destroy: root only",
			calls:   []call{{dev: mcos0, req: reqAuxPerfDestroy, errno: syscall.EPERM}},
			run:     func(ctx context.Context, c *Client) (any, error) { return nil, c.PerfControl(ctx, 0, ihk.PerfDestroy) },
			wantErr: wantErr{is: ihk.ErrPermission, op: "IHK_OS_AUX_PERF_DESTROY", os: 0, errno: syscall.EPERM},
		},
		{
			name: "perf read: buffer sized for every registered event",
			calls: []call{{dev: mcos0, req: reqAuxPerfGet, ptr: true, arg: func(t *testing.T, p unsafe.Pointer) {
				v := uint64s(p, maxPerfEvents)
				v[0], v[1], v[2] = 111, 222, 333
				v[maxPerfEvents-1] = 999
			}}},
			run:  func(ctx context.Context, c *Client) (any, error) { return c.PerfRead(ctx, 0, 2) },
			want: []uint64{111, 222},
		},
		{
			name:    "os index out of range",
			run:     func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, -1) },
			want:    ihk.StatusNotBooted,
			wantErr: wantErr{is: ihk.ErrInvalid, op: "IHK_OS_STATUS", os: -1, errno: syscall.EINVAL, detail: "os index -1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.calls...)
			for k, v := range tc.openErr {
				f.openErr[k] = v
			}
			c := f.client()
			got, err := tc.run(context.Background(), c)
			checkErr(t, tc.wantErr, err)
			if tc.want != nil {
				require.Equal(t, tc.want, got)
			}
			if len(tc.calls) == 0 && len(tc.openErr) == 0 {
				require.Empty(t, f.opens, "rejected before opening the device")
			}
		})
	}
}

func rusageWant(numa, percpu []uint64) *ihk.Rusage {
	return &ihk.Rusage{
		MemoryRSSBytes:        [8]uint64{1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007},
		MemoryMappedFileBytes: [8]uint64{2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007},
		MemoryMaxUsageBytes:   3000,
		KmemUsageBytes:        3001,
		KmemMaxUsageBytes:     3002,
		NUMABytes:             numa,
		SystemTicks:           5000,
		UserTicks:             5001,
		UserNanoseconds:       5002,
		PerCPUUserNanoseconds: percpu,
		Threads:               7,
		MaxThreads:            -10,
	}
}

func TestBoot(t *testing.T) {
	tests := []struct {
		name    string
		calls   []call
		wantErr wantErr
	}{
		{
			// BOOT returns at READY; apply waits for RUNNING, not the backend.
			name:  "one BOOT request, no STATUS polling",
			calls: []call{{dev: mcos0, req: reqOSBoot, val: 0}},
		},
		{
			name:    "BOOT itself fails: another OS is booted",
			calls:   []call{{dev: mcos0, req: reqOSBoot, val: 0, errno: syscall.EBUSY}},
			wantErr: wantErr{is: ihk.ErrBusy, op: "IHK_OS_BOOT", os: 0, errno: syscall.EBUSY},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.calls...)
			checkErr(t, tc.wantErr, f.client().Boot(context.Background(), 0))
			require.Equal(t, []string{mcos0}, f.opens)
		})
	}
}

func TestRegisterEvent(t *testing.T) {
	var registered int32 = -1
	f := newFake(t, call{dev: mcos0, req: reqOSRegisterEvent, ptr: true, arg: func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, 8)
		registered = int32(ne.Uint32(b[0:]))
		require.Equal(t, int32(2), int32(ne.Uint32(b[4:])), "type")
	}})
	c := f.client()
	ev, err := c.RegisterEvent(context.Background(), 0, ihk.EventStatus)
	require.NoError(t, err)
	require.Equal(t, []int{int(registered)}, f.eventfds, "registers the eventfd it created")
	require.Equal(t, int(registered), ev.Fd())

	// The kernel signals with eventfd_signal(ctx, 1); emulate two signals.
	var one [8]byte
	ne.PutUint64(one[:], 1)
	for range 2 {
		_, err := unix.Write(ev.Fd(), one[:])
		require.NoError(t, err)
	}
	n, err := ev.Read()
	require.NoError(t, err)
	require.Equal(t, uint64(2), n)

	flags, err := unix.FcntlInt(uintptr(ev.Fd()), unix.F_GETFD, 0)
	require.NoError(t, err)
	require.NotZero(t, flags&unix.FD_CLOEXEC, "close-on-exec")
	require.NoError(t, ev.Close())
	require.NoError(t, ev.Close(), "second close is harmless")
}

func TestRegisterEventFailureClosesTheEventfd(t *testing.T) {
	f := newFake(t, call{dev: mcos0, req: reqOSRegisterEvent, ptr: true, errno: syscall.EPERM})
	c := f.client()
	ev, err := c.RegisterEvent(context.Background(), 0, ihk.EventOOM)
	checkErr(t, wantErr{is: ihk.ErrPermission, op: "IHK_OS_REGISTER_EVENT", os: 0, errno: syscall.EPERM}, err)
	require.Nil(t, ev)
	require.Len(t, f.eventfds, 1)
	_, err = unix.FcntlInt(uintptr(f.eventfds[0]), unix.F_GETFD, 0)
	require.ErrorIs(t, err, unix.EBADF, "eventfd closed after the failed registration")
}

func TestRegisterEventUnknownType(t *testing.T) {
	f := newFake(t)
	_, err := f.client().RegisterEvent(context.Background(), 0, ihk.EventType(1))
	checkErr(t, wantErr{is: ihk.ErrInvalid, op: "IHK_OS_REGISTER_EVENT", os: 0, errno: syscall.EINVAL}, err)
	require.Empty(t, f.opens)
}

func TestListOS(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"mcd0", "mcos0", "mcos2", "mcos10", "mcos63", "mcos64", "mcos01", "mcos", "mcosx", "mcos-1", "null"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o600))
	}
	c, err := New(dir)
	require.NoError(t, err)
	got, err := c.ListOS(context.Background())
	require.NoError(t, err)
	require.Equal(t, []int{0, 2, 10, 63}, got)

	empty, err := New(t.TempDir())
	require.NoError(t, err)
	got, err = empty.ListOS(context.Background())
	require.NoError(t, err)
	require.Equal(t, []int{}, got)
}

func TestNewValidatesDevDir(t *testing.T) {
	tests := []struct {
		name    string
		dir     string
		opts    []Option
		wantErr bool
	}{
		{name: "dev", dir: "/dev"},
		{name: "relative", dir: "dev", wantErr: true},
		{name: "empty", dir: "", wantErr: true},
		{name: "unclean", dir: "/var/lib/../dev", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.dir, tc.opts...)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "/dev/mcd0", c.DevicePath())
			require.Equal(t, "/dev/mcos12", c.OSPath(12))
		})
	}
}

func TestCanceledContextIssuesNothing(t *testing.T) {
	f := newFake(t)
	c := f.client()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.ReservedCPUs(ctx)
	require.True(t, errors.Is(err, context.Canceled))
	_, err = c.Status(ctx, 0)
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, f.opens)
}
