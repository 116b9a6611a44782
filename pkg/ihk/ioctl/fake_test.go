//go:build linux && (amd64 || arm64)

package ioctl

import (
	"encoding/binary"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The fake reads argument memory at the offsets IHK's headers define
// (the IHK headers named in doc.go), not through the Go mirrors, so a wrong mirror shows
// up as wrong bytes. Run the tests with -gcflags=-d=checkptr (or -race) to
// also have every array access checked against its allocation's size.

const fakeDevDir = "/fake/dev"

// call is one expected ioctl, in order.
type call struct {
	dev string // "mcd0" or "mcos<N>": which node the fd must be open on
	req uint32
	// ptr says the request must come through IoctlPointer; otherwise
	// IoctlValue with argument val.
	ptr bool
	val uintptr
	// arg inspects (and for out-requests fills) the pointed-to memory.
	arg   func(t *testing.T, p unsafe.Pointer)
	ret   uintptr
	errno syscall.Errno
}

// fakeSys is a sysLayer that checks a script of ioctls.
type fakeSys struct {
	t        *testing.T
	calls    []call
	next     int
	leftover bool // allow unconsumed calls (polling and retry tests)
	openErr  map[string]error
	fds      map[int]string
	nextFD   int
	opens    []string
	eventfds []int
}

func newFake(t *testing.T, calls ...call) *fakeSys {
	f := &fakeSys{t: t, calls: calls, fds: map[int]string{}, nextFD: 100, openErr: map[string]error{}}
	t.Cleanup(func() {
		require.Empty(t, f.fds, "file descriptors left open")
		if !f.leftover {
			require.Equal(t, len(f.calls), f.next, "not every expected ioctl was issued")
		}
		for _, fd := range f.eventfds {
			_ = unix.Close(fd) // closing twice only returns EBADF
		}
	})
	return f
}

func (f *fakeSys) client(opts ...Option) *Client {
	c, err := New(fakeDevDir, append([]Option{withSys(f)}, opts...)...)
	require.NoError(f.t, err)
	return c
}

func (f *fakeSys) Open(path string, flags int) (int, error) {
	require.Equal(f.t, fakeDevDir, filepath.Dir(path), "opened outside the device dir")
	require.Equal(f.t, unix.O_RDONLY|unix.O_CLOEXEC, flags, "open flags of %s", path)
	name := filepath.Base(path)
	f.opens = append(f.opens, name)
	if err := f.openErr[name]; err != nil {
		return -1, err
	}
	f.nextFD++
	f.fds[f.nextFD] = name
	return f.nextFD, nil
}

func (f *fakeSys) Close(fd int) error {
	_, ok := f.fds[fd]
	require.True(f.t, ok, "close of unknown fd %d", fd)
	delete(f.fds, fd)
	return nil
}

func (f *fakeSys) expect(fd int, req uint32) call {
	f.t.Helper()
	require.Less(f.t, f.next, len(f.calls), "unexpected ioctl %#x (%s)", req, requestNames[req])
	c := f.calls[f.next]
	f.next++
	require.Equal(f.t, c.req, req, "ioctl #%d: want %s, got %s", f.next, requestNames[c.req], requestNames[req])
	dev, ok := f.fds[fd]
	require.True(f.t, ok, "ioctl on fd %d that is not open", fd)
	require.Equal(f.t, c.dev, dev, "%s issued on the wrong device", requestNames[req])
	return c
}

func (f *fakeSys) result(c call) (uintptr, syscall.Errno) {
	if c.errno != 0 {
		return ^uintptr(0), c.errno // -1, as the syscall returns it
	}
	return c.ret, 0
}

func (f *fakeSys) IoctlValue(fd int, req uint32, arg uintptr) (uintptr, syscall.Errno) {
	c := f.expect(fd, req)
	require.False(f.t, c.ptr, "%s must take a pointer", requestNames[req])
	require.Equal(f.t, c.val, arg, "%s value argument", requestNames[req])
	return f.result(c)
}

func (f *fakeSys) IoctlPointer(fd int, req uint32, arg unsafe.Pointer) (uintptr, syscall.Errno) {
	c := f.expect(fd, req)
	require.True(f.t, c.ptr, "%s must take its argument by value", requestNames[req])
	require.NotNil(f.t, arg, "%s pointer", requestNames[req])
	if c.arg != nil {
		c.arg(f.t, arg)
	}
	return f.result(c)
}

// Eventfd creates a real eventfd so that tests can signal and read it.
func (f *fakeSys) Eventfd(initval uint, flags int) (int, error) {
	require.Equal(f.t, unix.EFD_CLOEXEC, flags)
	fd, err := unix.Eventfd(initval, flags)
	require.NoError(f.t, err)
	f.eventfds = append(f.eventfds, fd)
	return fd, nil
}

// ---- argument memory helpers -------------------------------------------------

var ne = binary.NativeEndian

func mem(p unsafe.Pointer, n int) []byte { return unsafe.Slice((*byte)(p), n) }

// ptrAt reads the user pointer stored at offset off.
func ptrAt(p unsafe.Pointer, off uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Add(p, off))
}

func int32s(p unsafe.Pointer, n int) []int32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(p), n)
}

func uint64s(p unsafe.Pointer, n int) []uint64 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*uint64)(p), n)
}

// cpuReqIs checks an ihk_cpu_req: cpus at 0, num_cpus at 8, zero padding.
func cpuReqIs(want ...int32) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, 16)
		require.Equal(t, int32(len(want)), int32(ne.Uint32(b[8:])), "num_cpus")
		require.Zero(t, ne.Uint32(b[12:]), "padding")
		require.Equal(t, want, int32s(ptrAt(p, 0), len(want)), "cpus[]")
	}
}

// cpuQuery checks num_cpus == n and writes the answer into cpus[].
func cpuQuery(n int32, answer ...int32) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		require.Equal(t, n, int32(ne.Uint32(mem(p, 16)[8:])), "num_cpus")
		copy(int32s(ptrAt(p, 0), int(n)), answer)
	}
}

// memReqIs checks an ihk_mem_req: sizes at 0, numa_ids at 8, num_chunks at
// 16, min_chunk_size at 20, max_size_ratio_all at 24, timeout at 28.
func memReqIs(sizes []uint64, nodes []int32, minChunk, ratio, timeout int32) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, 32)
		n := int(int32(ne.Uint32(b[16:])))
		require.Equal(t, len(sizes), n, "num_chunks")
		require.Equal(t, minChunk, int32(ne.Uint32(b[20:])), "min_chunk_size")
		require.Equal(t, ratio, int32(ne.Uint32(b[24:])), "max_size_ratio_all")
		require.Equal(t, timeout, int32(ne.Uint32(b[28:])), "timeout")
		require.Equal(t, sizes, uint64s(ptrAt(p, 0), n), "sizes[]")
		require.Equal(t, nodes, int32s(ptrAt(p, 8), n), "numa_ids[]")
	}
}

// memCount answers a count-only QUERY_MEM (num_chunks 0, no arrays).
func memCount(count int32) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, 32)
		require.Zero(t, int32(ne.Uint32(b[16:])), "num_chunks of the count call")
		require.Nil(t, ptrAt(p, 0), "sizes of the count call")
		require.Nil(t, ptrAt(p, 8), "numa_ids of the count call")
		ne.PutUint32(b[16:], uint32(count))
	}
}

// memList checks num_chunks == slots, fills the arrays and writes the count.
func memList(slots int32, sizes []uint64, nodes []int32) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, 32)
		require.Equal(t, slots, int32(ne.Uint32(b[16:])), "num_chunks of the list call")
		copy(uint64s(ptrAt(p, 0), int(slots)), sizes)
		copy(int32s(ptrAt(p, 8), int(slots)), nodes)
		ne.PutUint32(b[16:], uint32(len(sizes)))
	}
}

// cStringIs checks a NUL-terminated string argument.
func cStringIs(want string) func(*testing.T, unsafe.Pointer) {
	return func(t *testing.T, p unsafe.Pointer) {
		b := mem(p, len(want)+1)
		require.Equal(t, want, string(b[:len(want)]))
		require.Zero(t, b[len(want)], "terminating NUL")
	}
}
