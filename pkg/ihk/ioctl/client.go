//go:build linux && (amd64 || arm64)

package ioctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

const (
	// queryMemSlack is extra room in device QUERY_MEM arrays: with a non-zero
	// num_chunks the driver copies every current chunk without checking the
	// count, so a reservation racing between our count and list calls would
	// otherwise be written past the end of our arrays.
	queryMemSlack = 16
	// maxPerfEvents caps PerfSet and sizes every PERF_GET buffer: mcctrl
	// writes as many counters as are registered, whatever the caller asked.
	maxPerfEvents = 256
	// maxChunks caps the chunk count of one memory request.
	maxChunks = 1024
)

// Option configures a Client.
type Option func(*Client)

// withSys replaces the system-call layer (tests only).
func withSys(s sysLayer) Option { return func(c *Client) { c.sys = s } }

// Client is the real IHK backend: ioctls on <devDir>/mcd0 and
// <devDir>/mcos<N>. It keeps no file descriptors open between calls and is
// safe for concurrent use (the driver itself does not serialise callers; see
// ihk.Client).
//
// Every call issues one driver request (a query: the count, then the list)
// and returns its errno as an *ihk.Error, EINTR and EBUSY included: waiting
// and retrying belong to the caller (package retry holds the rules).
type Client struct {
	devDir   string
	sys      sysLayer
	pageSize int
}

var _ ihk.Client = (*Client)(nil)

// New returns a backend for the IHK device nodes in devDir (normally "/dev",
// lwk.conf DevDir). devDir must be an absolute, clean path.
func New(devDir string, opts ...Option) (*Client, error) {
	if devDir == "" || !filepath.IsAbs(devDir) || filepath.Clean(devDir) != devDir {
		return nil, fmt.Errorf("ihk device dir %q: must be an absolute, clean path", devDir)
	}
	c := &Client{devDir: devDir, sys: unixSys{}, pageSize: os.Getpagesize()}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// DevicePath is the IHK device node, <devDir>/mcd0.
func (c *Client) DevicePath() string { return filepath.Join(c.devDir, "mcd0") }

// OSPath is the node of OS instance os, <devDir>/mcos<os>.
func (c *Client) OSPath(os int) string { return filepath.Join(c.devDir, "mcos"+strconv.Itoa(os)) }

// ---- plumbing ---------------------------------------------------------------

const openFlags = unix.O_RDONLY | unix.O_CLOEXEC

// withDevice opens /dev/mcd0 (read-only is enough: the driver checks no
// access mode or euid) for the duration of fn.
func (c *Client) withDevice(ctx context.Context, fn func(fd int) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := c.DevicePath()
	fd, err := c.sys.Open(path, openFlags)
	if err != nil {
		// Not an *ihk.Error on purpose: a missing /dev/mcd0 means the module
		// is not loaded, which must not read as "no such OS instance".
		return fmt.Errorf("open ihk device %s: %w", path, err)
	}
	defer func() { _ = c.sys.Close(fd) }() // read-only fd: nothing to flush
	return fn(fd)
}

// withOS opens /dev/mcos<os> for the duration of fn. An open fd makes
// DESTROY_OS fail with EBUSY, so it is never kept.
func (c *Client) withOS(ctx context.Context, op string, os int, fn func(fd int) error) error {
	if err := checkOS(op, os); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := c.OSPath(os)
	fd, err := c.sys.Open(path, openFlags)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			// ENOENT: no such instance, or it is being torn down.
			return &ihk.Error{Op: "open", OS: os, Errno: errno, Detail: path}
		}
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = c.sys.Close(fd) }() // read-only fd: nothing to flush
	return fn(fd)
}

func checkOS(op string, os int) error {
	if os < 0 || os >= ihk.MaxOSInstances {
		return &ihk.Error{Op: op, OS: -1, Errno: syscall.EINVAL,
			Detail: fmt.Sprintf("os index %d out of range 0-%d", os, ihk.MaxOSInstances-1)}
	}
	return nil
}

// value issues a request that takes its argument by value (or none).
func (c *Client) value(fd int, req uint32, arg uintptr) (int, syscall.Errno) {
	r, errno := c.sys.IoctlValue(fd, req, arg)
	return int(r), errno
}

// pointer issues a request whose argument points to user memory.
func (c *Client) pointer(fd int, req uint32, arg unsafe.Pointer) (int, syscall.Errno) {
	r, errno := c.sys.IoctlPointer(fd, req, arg)
	return int(r), errno
}

func fail(req uint32, os int, errno syscall.Errno, detail string) *ihk.Error {
	return &ihk.Error{Op: requestNames[req], OS: os, Errno: errno, Detail: detail}
}

// zero turns the result of a request that returns 0 on success into an
// error. A positive return is a failure too: some handlers leak the residual
// byte count of a failed copy_{from,to}_user instead of -EFAULT.
func zero(req uint32, os int, r int, errno syscall.Errno, detail string) error {
	if errno != 0 {
		return fail(req, os, errno, detail)
	}
	if r != 0 {
		return fail(req, os, syscall.EFAULT, joinDetail(detail, fmt.Sprintf("returned %d, want 0", r)))
	}
	return nil
}

// count checks a request that returns a count in [0, limit].
func count(req uint32, os int, r int, errno syscall.Errno, limit int) (int, error) {
	if errno != 0 {
		return 0, fail(req, os, errno, "")
	}
	if r < 0 || r > limit {
		return 0, fail(req, os, syscall.EIO, fmt.Sprintf("returned %d, want 0-%d", r, limit))
	}
	return r, nil
}

func status(req uint32, os int, r int, errno syscall.Errno) (ihk.Status, error) {
	if errno != 0 {
		return 0, fail(req, os, errno, "")
	}
	if r < int(ihk.StatusNotBooted) || r > int(ihk.StatusHungup) {
		return 0, fail(req, os, syscall.EIO, fmt.Sprintf("unknown status %d", r))
	}
	return ihk.Status(r), nil
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + ": " + b
}

func invalid(op string, os int, detail string) *ihk.Error {
	return &ihk.Error{Op: op, OS: os, Errno: syscall.EINVAL, Detail: detail}
}

// cpuList formats CPUs in kernel list syntax for error details.
func cpuList(cpus []int) string { return "cpus " + cpuset.New(cpus...).String() }

func chunkList(chunks []ihk.MemChunk) string {
	s := make([]string, len(chunks))
	for i, ch := range chunks {
		s[i] = ch.String()
	}
	return "memory " + strings.Join(s, ",")
}

// checkCPUs validates CPU ids before they reach the driver (SMP_MAX_CPUS).
func checkCPUs(op string, os int, cpus []int) error {
	if len(cpus) > maxCPUs {
		return invalid(op, os, fmt.Sprintf("%d cpus, at most %d per request", len(cpus), maxCPUs))
	}
	seen := make(map[int]bool, len(cpus))
	for _, cpu := range cpus {
		if cpu < 0 || cpu >= maxCPUs {
			return invalid(op, os, fmt.Sprintf("cpu %d out of range 0-%d", cpu, maxCPUs-1))
		}
		if seen[cpu] {
			return invalid(op, os, fmt.Sprintf("cpu %d listed twice", cpu))
		}
		seen[cpu] = true
	}
	return nil
}

// checkChunks validates a memory request. granule is the size multiple
// required (ihk.MemoryGranule for reservations, 1 otherwise).
func checkChunks(op string, os int, chunks []ihk.MemChunk, granule uint64) error {
	if len(chunks) > maxChunks {
		return invalid(op, os, fmt.Sprintf("%d chunks, at most %d per request", len(chunks), maxChunks))
	}
	for _, ch := range chunks {
		switch {
		case ch.Bytes == 0 || ch.Bytes == ^uint64(0):
			// ^0 is IHK_SMP_MEM_ALL, which Client does not expose.
			return invalid(op, os, fmt.Sprintf("chunk %s: size must be positive", ch))
		case ch.Bytes%granule != 0:
			return invalid(op, os, fmt.Sprintf("chunk %s: size not a multiple of %d bytes", ch, granule))
		case ch.NUMANode < 0 || ch.NUMANode >= maxNUMANodes:
			return invalid(op, os, fmt.Sprintf("chunk %s: numa node out of range 0-%d", ch, maxNUMANodes-1))
		}
	}
	return nil
}

// cpuRequest issues an ihk_cpu_req request (reserve, release, assign).
func (c *Client) cpuRequest(fd int, req uint32, os int, cpus []int) error {
	ids := make([]int32, len(cpus))
	for i, cpu := range cpus {
		ids[i] = int32(cpu)
	}
	r := &cpuReq{CPUs: &ids[0], NumCPUs: int32(len(ids))}
	ret, errno := c.pointer(fd, req, unsafe.Pointer(r))
	return zero(req, os, ret, errno, cpuList(cpus))
}

// memRequest issues an ihk_mem_req request carrying chunks; reserve adds the
// tuning fields that libihk fills for RESERVE_MEM.
func (c *Client) memRequest(fd int, req uint32, os int, chunks []ihk.MemChunk, reserve bool) error {
	sizes := make([]uint64, len(chunks))
	nodes := make([]int32, len(chunks))
	for i, ch := range chunks {
		sizes[i] = ch.Bytes
		nodes[i] = int32(ch.NUMANode)
	}
	r := &memReq{Sizes: &sizes[0], NUMAIDs: &nodes[0], NumChunks: int32(len(chunks))}
	if reserve {
		// Zero in any of these makes the driver fail or give up early
		// (smp-driver.c, the reservation path): min_chunk_size 0 is EINVAL, max_size_ratio_all 0 stops
		// "all" after 4 MiB, timeout 0 tries only 4 MiB blocks.
		r.MinChunkSize = int32(c.pageSize)
		r.MaxSizeRatioAll = maxSizeRatioAll
		r.Timeout = reserveTimeoutSeconds
	}
	ret, errno := c.pointer(fd, req, unsafe.Pointer(r))
	return zero(req, os, ret, errno, chunkList(chunks))
}

// queryCPUs runs GET_NUM_CPUS then QUERY_CPU with exactly that count.
func (c *Client) queryCPUs(fd int, numReq, queryReq uint32, os int) ([]int, error) {
	ret, errno := c.value(fd, numReq, 0)
	n, err := count(numReq, os, ret, errno, maxCPUs)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return []int{}, nil
	}
	ids := make([]int32, n)
	r := &cpuReq{CPUs: &ids[0], NumCPUs: int32(n)}
	ret, errno = c.pointer(fd, queryReq, unsafe.Pointer(r))
	if err := zero(queryReq, os, ret, errno, fmt.Sprintf("%d cpus", n)); err != nil {
		return nil, err
	}
	cpus := make([]int, n)
	for i, id := range ids {
		cpus[i] = int(id)
	}
	return cpus, nil
}

// queryMem runs QUERY_MEM with num_chunks 0 (count only), then again with
// arrays for that many chunks. slack extra entries are allocated and
// announced (device level only; the OS level insists on the exact count).
func (c *Client) queryMem(fd int, req uint32, os int, slack int) ([]ihk.MemChunk, error) {
	cr := &memReq{}
	ret, errno := c.pointer(fd, req, unsafe.Pointer(cr))
	if err := zero(req, os, ret, errno, "count"); err != nil {
		return nil, err
	}
	n := int(cr.NumChunks)
	if n < 0 || n > 1<<20 {
		return nil, fail(req, os, syscall.EIO, fmt.Sprintf("chunk count %d", n))
	}
	if n == 0 {
		return []ihk.MemChunk{}, nil
	}
	size := n + slack
	sizes := make([]uint64, size)
	nodes := make([]int32, size)
	r := &memReq{Sizes: &sizes[0], NUMAIDs: &nodes[0], NumChunks: int32(size)}
	ret, errno = c.pointer(fd, req, unsafe.Pointer(r))
	if err := zero(req, os, ret, errno, fmt.Sprintf("%d chunks", n)); err != nil {
		return nil, err
	}
	got := int(r.NumChunks)
	if got < 0 || got > size {
		return nil, fail(req, os, syscall.EIO, fmt.Sprintf("driver reported %d chunks for %d slots", got, size))
	}
	chunks := make([]ihk.MemChunk, got)
	for i := range chunks {
		chunks[i] = ihk.MemChunk{Bytes: sizes[i], NUMANode: int(nodes[i])}
	}
	return chunks, nil
}

// ---- device operations ------------------------------------------------------

// ReserveCPUs implements ihk.Client (IHK_DEVICE_RESERVE_CPU). The driver
// hot-unplugs the CPUs from Linux; a failed unplug (e.g. CPU0 on x86) comes
// back as EPERM.
func (c *Client) ReserveCPUs(ctx context.Context, cpus []int) error {
	return c.deviceCPUs(ctx, reqDeviceReserveCPU, cpus)
}

// ReleaseCPUs implements ihk.Client (IHK_DEVICE_RELEASE_CPU).
func (c *Client) ReleaseCPUs(ctx context.Context, cpus []int) error {
	return c.deviceCPUs(ctx, reqDeviceReleaseCPU, cpus)
}

func (c *Client) deviceCPUs(ctx context.Context, req uint32, cpus []int) error {
	if err := checkCPUs(requestNames[req], -1, cpus); err != nil {
		return err
	}
	if len(cpus) == 0 {
		return ctx.Err() // the driver treats zero CPUs as a no-op
	}
	return c.withDevice(ctx, func(fd int) error { return c.cpuRequest(fd, req, -1, cpus) })
}

// ReservedCPUs implements ihk.Client (IHK_DEVICE_GET_NUM_CPUS, then
// IHK_DEVICE_QUERY_CPU with exactly that count).
func (c *Client) ReservedCPUs(ctx context.Context) ([]int, error) {
	var cpus []int
	err := c.withDevice(ctx, func(fd int) error {
		var err error
		cpus, err = c.queryCPUs(fd, reqDeviceGetNumCPUs, reqDeviceQueryCPU, -1)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(cpus)
	return cpus, nil
}

// ReserveMemory implements ihk.Client (IHK_DEVICE_RESERVE_MEM). Sizes must be
// multiples of ihk.MemoryGranule. The driver handles chunks in order and stops
// at the first failure, leaving earlier chunks of the same call reserved;
// callers release what ReservedMemory reports.
func (c *Client) ReserveMemory(ctx context.Context, chunks []ihk.MemChunk) error {
	if err := checkChunks(requestNames[reqDeviceReserveMem], -1, chunks, ihk.MemoryGranule); err != nil {
		return err
	}
	if len(chunks) == 0 {
		return ctx.Err()
	}
	return c.withDevice(ctx, func(fd int) error {
		return c.memRequest(fd, reqDeviceReserveMem, -1, chunks, true)
	})
}

// ReleaseMemory implements ihk.Client (IHK_DEVICE_RELEASE_MEM). Sizes are not
// required to be multiples of ihk.MemoryGranule: the driver may reserve
// smaller chunks (down to the page size) when memory is fragmented.
func (c *Client) ReleaseMemory(ctx context.Context, chunks []ihk.MemChunk) error {
	if err := checkChunks(requestNames[reqDeviceReleaseMem], -1, chunks, 1); err != nil {
		return err
	}
	if len(chunks) == 0 {
		return ctx.Err()
	}
	return c.withDevice(ctx, func(fd int) error {
		return c.memRequest(fd, reqDeviceReleaseMem, -1, chunks, false)
	})
}

// ReservedMemory implements ihk.Client (IHK_DEVICE_QUERY_MEM, count then list).
func (c *Client) ReservedMemory(ctx context.Context) ([]ihk.MemChunk, error) {
	var chunks []ihk.MemChunk
	err := c.withDevice(ctx, func(fd int) error {
		var err error
		chunks, err = c.queryMem(fd, reqDeviceQueryMem, -1, queryMemSlack)
		return err
	})
	return chunks, err
}

// CreateOS implements ihk.Client (IHK_DEVICE_CREATE_OS, which returns the new
// index).
func (c *Client) CreateOS(ctx context.Context) (int, error) {
	var idx int
	err := c.withDevice(ctx, func(fd int) error {
		var err error
		r, errno := c.value(fd, reqDeviceCreateOS, 0)
		idx, err = count(reqDeviceCreateOS, -1, r, errno, ihk.MaxOSInstances-1)
		return err
	})
	return idx, err
}

// DestroyOS implements ihk.Client (IHK_DEVICE_DESTROY_OS, index by value). It
// reports EINVAL (the driver's answer for a missing index) as not found, and
// EBUSY (/dev/mcos<os> is open) as it comes.
func (c *Client) DestroyOS(ctx context.Context, os int) error {
	const req = reqDeviceDestroyOS
	if err := checkOS(requestNames[req], os); err != nil {
		return err
	}
	return c.withDevice(ctx, func(fd int) error {
		r, errno := c.value(fd, req, uintptr(os))
		if errno == syscall.EINVAL {
			return &ihk.Error{Op: requestNames[req], OS: os, Errno: errno, NotFound: true}
		}
		return zero(req, os, r, errno, "")
	})
}

// ListOS implements ihk.Client. Like libihk it scans the device directory for
// mcos<N> nodes.
func (c *Client) ListOS(ctx context.Context) ([]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(c.devDir)
	if err != nil {
		return nil, fmt.Errorf("list os instances in %s: %w", c.devDir, err)
	}
	idx := []int{}
	for _, e := range entries {
		if n, ok := parseOSName(e.Name()); ok {
			idx = append(idx, n)
		}
	}
	slices.Sort(idx)
	return idx, nil
}

// parseOSName accepts "mcos<N>" with N in 0..63 written without leading zeros.
func parseOSName(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "mcos")
	if !ok || digits == "" || len(digits) > 2 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || n >= ihk.MaxOSInstances || strconv.Itoa(n) != digits {
		return 0, false
	}
	return n, true
}

// DetectHangup implements ihk.Client (IHK_DEVICE_DETECT_HUNGUP, index by
// value). Only one caller per node may run the detector: each call resets the
// per-CPU counters the next call compares against.
func (c *Client) DetectHangup(ctx context.Context, os int) (ihk.Status, error) {
	const req = reqDeviceDetectHungup
	if err := checkOS(requestNames[req], os); err != nil {
		return 0, err
	}
	var st ihk.Status
	err := c.withDevice(ctx, func(fd int) error {
		r, errno := c.value(fd, req, uintptr(os))
		if errno == syscall.EINVAL {
			return &ihk.Error{Op: requestNames[req], OS: os, Errno: errno, NotFound: true}
		}
		var err error
		st, err = status(req, os, r, errno)
		return err
	})
	return st, err
}

// ---- OS instance operations -------------------------------------------------

// AssignCPUs implements ihk.Client (IHK_OS_ASSIGN_CPU). The slice order is
// the LWK CPU numbering.
func (c *Client) AssignCPUs(ctx context.Context, os int, cpus []int) error {
	const req = reqOSAssignCPU
	if err := checkCPUs(requestNames[req], os, cpus); err != nil {
		return err
	}
	if len(cpus) == 0 {
		return ctx.Err()
	}
	return c.withOS(ctx, requestNames[req], os, func(fd int) error { return c.cpuRequest(fd, req, os, cpus) })
}

// AssignedCPUs implements ihk.Client (IHK_OS_GET_NUM_CPUS, then
// IHK_OS_QUERY_CPU with exactly that count), in LWK order.
func (c *Client) AssignedCPUs(ctx context.Context, os int) ([]int, error) {
	var cpus []int
	err := c.withOS(ctx, requestNames[reqOSQueryCPU], os, func(fd int) error {
		var err error
		cpus, err = c.queryCPUs(fd, reqOSGetNumCPUs, reqOSQueryCPU, os)
		return err
	})
	return cpus, err
}

// AssignMemory implements ihk.Client (IHK_OS_ASSIGN_MEM).
func (c *Client) AssignMemory(ctx context.Context, os int, chunks []ihk.MemChunk) error {
	const req = reqOSAssignMem
	if err := checkChunks(requestNames[req], os, chunks, 1); err != nil {
		return err
	}
	if len(chunks) == 0 {
		return ctx.Err()
	}
	return c.withOS(ctx, requestNames[req], os, func(fd int) error {
		return c.memRequest(fd, req, os, chunks, false)
	})
}

// AssignedMemory implements ihk.Client (IHK_OS_QUERY_MEM, count then list
// with exactly that count).
func (c *Client) AssignedMemory(ctx context.Context, os int) ([]ihk.MemChunk, error) {
	var chunks []ihk.MemChunk
	err := c.withOS(ctx, requestNames[reqOSQueryMem], os, func(fd int) error {
		var err error
		chunks, err = c.queryMem(fd, reqOSQueryMem, os, 0)
		return err
	})
	return chunks, err
}

// cString validates s for a string request and returns it NUL-terminated.
func cString(op string, os int, what, s string, limit int) ([]byte, error) {
	switch {
	case s == "":
		return nil, invalid(op, os, what+" is empty")
	case len(s) > limit:
		return nil, invalid(op, os, fmt.Sprintf("%s is %d bytes, at most %d", what, len(s), limit))
	case strings.IndexByte(s, 0) >= 0:
		return nil, invalid(op, os, what+" contains a NUL byte")
	}
	return append([]byte(s), 0), nil
}

// LoadImage implements ihk.Client (IHK_OS_LOAD). The kernel opens path
// itself, in the caller's mount namespace; it must be absolute.
func (c *Client) LoadImage(ctx context.Context, os int, path string) error {
	const req = reqOSLoad
	op := requestNames[req]
	b, err := cString(op, os, "image path", path, ihk.MaxPathLen)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(path) {
		return invalid(op, os, fmt.Sprintf("image path %q is not absolute", path))
	}
	return c.withOS(ctx, op, os, func(fd int) error {
		r, errno := c.pointer(fd, req, unsafe.Pointer(&b[0]))
		return zero(req, os, r, errno, path)
	})
}

// SetKernelArgs implements ihk.Client (IHK_OS_SET_KARGS). The driver would
// silently truncate past 255 bytes, and McKernel needs the token "hidos"
// (libihk refuses without it), so both are checked here.
func (c *Client) SetKernelArgs(ctx context.Context, os int, kargs string) error {
	const req = reqOSSetKargs
	op := requestNames[req]
	b, err := cString(op, os, "kernel arguments", kargs, ihk.MaxKargsLen)
	if err != nil {
		return err
	}
	if !slices.Contains(strings.Fields(kargs), ihk.RequiredKarg) {
		return invalid(op, os, fmt.Sprintf("kernel arguments %q lack the token %s", kargs, ihk.RequiredKarg))
	}
	return c.withOS(ctx, op, os, func(fd int) error {
		r, errno := c.pointer(fd, req, unsafe.Pointer(&b[0]))
		return zero(req, os, r, errno, kargs)
	})
}

// Boot implements ihk.Client (IHK_OS_BOOT). The request blocks in the kernel
// (up to 60 s) until the LWK reports READY; RUNNING follows when McKernel
// finishes its init, and waiting for it is the caller's job.
func (c *Client) Boot(ctx context.Context, os int) error {
	return c.osNoArg(ctx, reqOSBoot, os)
}

// Shutdown implements ihk.Client (IHK_OS_SHUTDOWN, flag 0 by value). The
// kernel busy-waits for the LWK (up to about 50 s for a wedged instance).
func (c *Client) Shutdown(ctx context.Context, os int) error {
	return c.osNoArg(ctx, reqOSShutdown, os)
}

// Status implements ihk.Client (IHK_OS_STATUS). On x86 every call writes two
// lines to the kernel log; poll sparingly.
func (c *Client) Status(ctx context.Context, os int) (ihk.Status, error) {
	const req = reqOSStatus
	var st ihk.Status
	err := c.withOS(ctx, requestNames[req], os, func(fd int) error {
		r, errno := c.value(fd, req, 0)
		var err error
		st, err = status(req, os, r, errno)
		return err
	})
	return st, err
}

// Freeze implements ihk.Client (IHK_OS_FREEZE). It returns at once; the status
// goes FREEZING, then FROZEN.
func (c *Client) Freeze(ctx context.Context, os int) error { return c.osNoArg(ctx, reqOSFreeze, os) }

// Thaw implements ihk.Client (IHK_OS_THAW).
func (c *Client) Thaw(ctx context.Context, os int) error { return c.osNoArg(ctx, reqOSThaw, os) }

// osNoArg issues an OS request without argument that returns 0.
func (c *Client) osNoArg(ctx context.Context, req uint32, os int) error {
	return c.withOS(ctx, requestNames[req], os, func(fd int) error {
		r, errno := c.value(fd, req, 0)
		return zero(req, os, r, errno, "")
	})
}

// RegisterEvent implements ihk.Client (IHK_OS_REGISTER_EVENT). The eventfd is
// created blocking and close-on-exec; the kernel keeps its own reference until
// DestroyOS, so register once per instance.
func (c *Client) RegisterEvent(ctx context.Context, os int, t ihk.EventType) (ihk.EventFD, error) {
	const req = reqOSRegisterEvent
	op := requestNames[req]
	switch t {
	case ihk.EventOOM, ihk.EventStatus, ihk.EventKmsg:
	default:
		return nil, invalid(op, os, fmt.Sprintf("unknown event type %d", t))
	}
	var ev ihk.EventFD
	err := c.withOS(ctx, op, os, func(fd int) error {
		efd, err := c.sys.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return fmt.Errorf("create eventfd for os %d: %w", os, err)
		}
		d := &eventfdDesc{FD: int32(efd), Type: int32(t)}
		r, errno := c.pointer(fd, req, unsafe.Pointer(d))
		if err := zero(req, os, r, errno, fmt.Sprintf("event type %d", t)); err != nil {
			_ = unix.Close(efd)
			return err
		}
		ev = &eventFD{fd: efd}
		return nil
	})
	return ev, err
}

// ReadKmsg implements ihk.Client (IHK_OS_READ_KMSG into a 4,190,208-byte
// buffer; the return value is the byte count). Read it before Shutdown or
// DestroyOS: the ring is dropped at shutdown.
func (c *Client) ReadKmsg(ctx context.Context, os int) ([]byte, error) {
	const req = reqOSReadKmsg
	var out []byte
	err := c.withOS(ctx, requestNames[req], os, func(fd int) error {
		buf := make([]byte, kmsgSize)
		r, errno := c.pointer(fd, req, unsafe.Pointer(&buf[0]))
		n, err := count(req, os, r, errno, kmsgSize)
		if err != nil {
			return err
		}
		out = append([]byte(nil), buf[:n]...)
		return nil
	})
	return out, err
}

// Rusage implements ihk.Client (mcctrl's IHK_OS_GETRUSAGE, full 16,568-byte
// struct). The per-NUMA and per-CPU arrays are trimmed to the instance's
// counts (IHK_OS_GET_NUM_NUMA_NODES, IHK_OS_GET_NUM_CPUS), or to their last
// non-zero entry when the driver cannot say.
func (c *Client) Rusage(ctx context.Context, os int) (*ihk.Rusage, error) {
	const req = reqAuxGetrusage
	var ru *ihk.Rusage
	err := c.withOS(ctx, requestNames[req], os, func(fd int) error {
		buf := make([]byte, rusageSize)
		d := &getrusageDesc{Rusage: &buf[0], SizeRusage: rusageSize}
		r, errno := c.pointer(fd, req, unsafe.Pointer(d))
		if err := zero(req, os, r, errno, ""); err != nil {
			return err
		}
		// The counts only trim the arrays; without them decodeRusage
		// trims trailing zeros instead.
		r, errno = c.value(fd, reqOSGetNumNUMANodes, 0)
		nodes, err := count(reqOSGetNumNUMANodes, os, r, errno, maxNUMANodes)
		if err != nil {
			nodes = -1
		}
		r, errno = c.value(fd, reqOSGetNumCPUs, 0)
		cpus, err := count(reqOSGetNumCPUs, os, r, errno, maxRusageCPUs)
		if err != nil {
			cpus = -1
		}
		ru = decodeRusage(buf, nodes, cpus)
		return nil
	})
	return ru, err
}

// ---- perf ---------------------------------------------------------------------

// PerfSet implements ihk.Client (IHK_OS_AUX_PERF_NUM with the count by value,
// then IHK_OS_AUX_PERF_SET, which returns how many events were registered).
func (c *Client) PerfSet(ctx context.Context, os int, attrs []ihk.PerfAttr) (int, error) {
	op := requestNames[reqAuxPerfSet]
	if len(attrs) == 0 || len(attrs) > maxPerfEvents {
		return 0, invalid(op, os, fmt.Sprintf("%d events, want 1-%d", len(attrs), maxPerfEvents))
	}
	raw := make([]perfEventAttr, len(attrs))
	for i, a := range attrs {
		raw[i] = encodePerfAttr(a)
	}
	var n int
	err := c.withOS(ctx, op, os, func(fd int) error {
		r, errno := c.value(fd, reqAuxPerfNum, uintptr(len(raw)))
		if err := zero(reqAuxPerfNum, os, r, errno, fmt.Sprintf("%d events", len(raw))); err != nil {
			return err
		}
		r, errno = c.pointer(fd, reqAuxPerfSet, unsafe.Pointer(&raw[0]))
		var err error
		n, err = count(reqAuxPerfSet, os, r, errno, len(raw))
		return err
	})
	return n, err
}

func encodePerfAttr(a ihk.PerfAttr) perfEventAttr {
	var f uint32
	for _, b := range []struct {
		set bool
		bit uint32
	}{
		{a.Disabled, perfFlagDisabled},
		{a.Pinned, perfFlagPinned},
		{a.ExcludeUser, perfFlagExcludeUser},
		{a.ExcludeKernel, perfFlagExcludeKernel},
		{a.ExcludeHV, perfFlagExcludeHV},
		{a.ExcludeIdle, perfFlagExcludeIdle},
	} {
		if b.set {
			f |= b.bit
		}
	}
	return perfEventAttr{Config: a.Config, Flags: f}
}

// PerfControl implements ihk.Client (IHK_OS_AUX_PERF_ENABLE, _DISABLE or
// _DESTROY).
func (c *Client) PerfControl(ctx context.Context, os int, op ihk.PerfOp) error {
	var req uint32
	switch op {
	case ihk.PerfEnable:
		req = reqAuxPerfEnable
	case ihk.PerfDisable:
		req = reqAuxPerfDisable
	case ihk.PerfDestroy:
		req = reqAuxPerfDestroy
	default:
		return invalid("IHK_OS_AUX_PERF_ENABLE/DISABLE/DESTROY", os, fmt.Sprintf("unknown perf operation %d", op))
	}
	return c.osNoArg(ctx, req, os)
}

// PerfRead implements ihk.Client (IHK_OS_AUX_PERF_GET). mcctrl writes one
// counter per registered event whatever n is, so the buffer always has room
// for maxPerfEvents and the first n values are returned.
func (c *Client) PerfRead(ctx context.Context, os int, n int) ([]uint64, error) {
	const req = reqAuxPerfGet
	if n <= 0 || n > maxPerfEvents {
		return nil, invalid(requestNames[req], os, fmt.Sprintf("%d counters, want 1-%d", n, maxPerfEvents))
	}
	var out []uint64
	err := c.withOS(ctx, requestNames[req], os, func(fd int) error {
		buf := make([]uint64, maxPerfEvents)
		r, errno := c.pointer(fd, req, unsafe.Pointer(&buf[0]))
		if err := zero(req, os, r, errno, fmt.Sprintf("%d counters", n)); err != nil {
			return err
		}
		out = buf[:n:n]
		return nil
	})
	return out, err
}
