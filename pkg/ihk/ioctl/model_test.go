//go:build linux && (amd64 || arm64)

package ioctl

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ihktest"
)

// driverModel is a sysLayer that models the IHK-SMP driver and mcctrl at the
// ioctl level, from the semantics of IHK's host_driver.c and smp-driver.c:
// it decodes argument memory at the documented offsets, keeps the driver's state
// (reserved CPUs and chunks, instances, the one-booted-OS rule, open counts)
// and answers with the driver's errno values. It lets the shared conformance
// suite run against the real backend on machines without IHK. It is a model
// written from IHK's headers, not the driver; the live tests are the proof.
type driverModel struct {
	t         *testing.T
	devDir    string
	nodeBytes uint64 // capacity of each NUMA node for reservations
	numNodes  int

	mu     sync.Mutex
	online map[int]bool // Linux CPUs that exist and are online
	avail  map[int]bool // reserved, unassigned
	free   []ihk.MemChunk
	oses   map[int]*modelOS
	booted bool
	fds    map[int]string
	nextFD int
}

type modelOS struct {
	status ihk.Status
	cpus   []int
	ikc    map[int]int // assigned cpu → IKC target; missing means 0
	mem    []ihk.MemChunk
	image  string
	opens  int
	perfN  int
}

func newDriverModel(t *testing.T, cpus, numNodes int, nodeBytes uint64) *driverModel {
	m := &driverModel{t: t, devDir: t.TempDir(), nodeBytes: nodeBytes, numNodes: numNodes,
		online: map[int]bool{}, avail: map[int]bool{}, oses: map[int]*modelOS{}, fds: map[int]string{}, nextFD: 10}
	for c := range cpus {
		m.online[c] = true
	}
	require.NoError(t, os.WriteFile(filepath.Join(m.devDir, "mcd0"), nil, 0o600))
	return m
}

func (m *driverModel) Open(path string, flags int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	require.Equal(m.t, m.devDir, filepath.Dir(path))
	name := filepath.Base(path)
	if name != "mcd0" {
		o := m.oses[m.osIndex(name)]
		if o == nil {
			return -1, syscall.ENOENT
		}
		o.opens++
	}
	m.nextFD++
	m.fds[m.nextFD] = name
	return m.nextFD, nil
}

func (m *driverModel) Close(fd int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.fds[fd]
	if !ok {
		return syscall.EBADF
	}
	delete(m.fds, fd)
	if o := m.oses[m.osIndex(name)]; name != "mcd0" && o != nil {
		o.opens--
	}
	return nil
}

func (m *driverModel) osIndex(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "mcos"))
	if err != nil {
		return -1
	}
	return n
}

func (m *driverModel) Eventfd(initval uint, flags int) (int, error) {
	fd, err := unix.Eventfd(initval, flags)
	if err == nil {
		m.t.Cleanup(func() { _ = unix.Close(fd) })
	}
	return fd, err
}

func (m *driverModel) IoctlValue(fd int, req uint32, arg uintptr) (uintptr, syscall.Errno) {
	return m.ioctl(fd, req, arg, nil)
}

func (m *driverModel) IoctlPointer(fd int, req uint32, arg unsafe.Pointer) (uintptr, syscall.Errno) {
	return m.ioctl(fd, req, 0, arg)
}

func (m *driverModel) ioctl(fd int, req uint32, val uintptr, p unsafe.Pointer) (uintptr, syscall.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.fds[fd]
	if !ok {
		return 0, syscall.EBADF
	}
	if name == "mcd0" {
		if req>>8 != deviceBase>>8 {
			return 0, syscall.EINVAL
		}
		return m.device(req, val, p)
	}
	o := m.oses[m.osIndex(name)]
	if o == nil {
		return 0, syscall.ENOENT
	}
	if req>>8 == auxBase>>8 {
		return m.aux(o, req, val, p)
	}
	if req>>8 != osBase>>8 {
		return 0, syscall.EINVAL
	}
	return m.os(o, req, p)
}

func (m *driverModel) nodeUsed(node int) uint64 {
	var sum uint64
	add := func(chunks []ihk.MemChunk) {
		for _, c := range chunks {
			if c.NUMANode == node {
				sum += c.Bytes
			}
		}
	}
	add(m.free)
	for _, o := range m.oses {
		add(o.mem)
	}
	return sum
}

// cpuArg decodes an ihk_cpu_req.
func cpuArg(p unsafe.Pointer) []int {
	n := int(int32(ne.Uint32(mem(p, 16)[8:])))
	var out []int
	for _, c := range int32s(ptrAt(p, 0), n) {
		out = append(out, int(c))
	}
	return out
}

// ikcArg decodes an ihk_ikc_req: sources and targets.
func ikcArg(p unsafe.Pointer) (src, dst []int) {
	n := int(int32(ne.Uint32(mem(p, 24)[16:])))
	for i, c := range int32s(ptrAt(p, 0), n) {
		src = append(src, int(c))
		dst = append(dst, int(int32s(ptrAt(p, 8), n)[i]))
	}
	return src, dst
}

// memArg decodes an ihk_mem_req: chunks and the three tuning fields.
func memArg(p unsafe.Pointer) (chunks []ihk.MemChunk, minChunk, ratio, timeout int32) {
	b := mem(p, 32)
	n := int(int32(ne.Uint32(b[16:])))
	sizes, nodes := uint64s(ptrAt(p, 0), n), int32s(ptrAt(p, 8), n)
	for i := range n {
		chunks = append(chunks, ihk.MemChunk{Bytes: sizes[i], NUMANode: int(nodes[i])})
	}
	return chunks, int32(ne.Uint32(b[20:])), int32(ne.Uint32(b[24:])), int32(ne.Uint32(b[28:]))
}

// memAnswer answers a QUERY_MEM: count only for num_chunks 0, else the list.
func (m *driverModel) memAnswer(p unsafe.Pointer, chunks []ihk.MemChunk, exact bool) syscall.Errno {
	b := mem(p, 32)
	n := int(int32(ne.Uint32(b[16:])))
	if n == 0 {
		ne.PutUint32(b[16:], uint32(len(chunks)))
		return 0
	}
	if exact && n != len(chunks) {
		return syscall.EINVAL
	}
	require.GreaterOrEqual(m.t, n, len(chunks), "the real driver would overrun these arrays")
	sizes, nodes := uint64s(ptrAt(p, 0), n), int32s(ptrAt(p, 8), n)
	for i, c := range chunks {
		sizes[i], nodes[i] = c.Bytes, int32(c.NUMANode)
	}
	ne.PutUint32(b[16:], uint32(len(chunks)))
	return 0
}

func (m *driverModel) device(req uint32, val uintptr, p unsafe.Pointer) (uintptr, syscall.Errno) {
	switch req {
	case reqDeviceReserveCPU:
		cpus := cpuArg(p)
		for i, c := range cpus {
			if !m.online[c] || slices.Contains(cpus[:i], c) {
				return 0, syscall.EINVAL
			}
		}
		for _, c := range cpus {
			m.online[c], m.avail[c] = false, true
		}
	case reqDeviceReleaseCPU:
		cpus := cpuArg(p)
		for _, c := range cpus {
			if !m.avail[c] {
				return 0, syscall.EINVAL
			}
		}
		for _, c := range cpus {
			delete(m.avail, c)
			m.online[c] = true
		}
	case reqDeviceGetNumCPUs:
		return uintptr(len(m.avail)), 0
	case reqDeviceQueryCPU:
		n := int(int32(ne.Uint32(mem(p, 16)[8:])))
		if n != len(m.avail) {
			return 0, syscall.EINVAL
		}
		ids := int32s(ptrAt(p, 0), n)
		var list []int
		for c := range m.avail {
			list = append(list, c)
		}
		slices.Sort(list)
		for i, c := range list {
			ids[i] = int32(c)
		}
	case reqDeviceReserveMem:
		chunks, minChunk, ratio, timeout := memArg(p)
		if minChunk <= 0 || ratio <= 0 || ratio > 98 || timeout <= 0 {
			return 0, syscall.EINVAL // the tuning fields libihk would fill
		}
		for _, c := range chunks { // in order; earlier chunks stay reserved
			switch {
			case c.Bytes%ihk.MemoryGranule != 0 || c.NUMANode < 0 || c.NUMANode >= m.numNodes:
				return 0, syscall.EINVAL
			case m.nodeUsed(c.NUMANode)+c.Bytes > m.nodeBytes:
				return 0, syscall.ENOMEM
			}
			m.free = append(m.free, c)
		}
	case reqDeviceReleaseMem:
		chunks, _, _, _ := memArg(p)
		for _, c := range chunks { // exact matches, stopping at the first miss
			i := slices.Index(m.free, c)
			if i < 0 {
				return 0, syscall.EINVAL
			}
			m.free = slices.Delete(m.free, i, i+1)
		}
	case reqDeviceQueryMem:
		return 0, m.memAnswer(p, m.free, false)
	case reqDeviceCreateOS:
		for i := range ihk.MaxOSInstances {
			if m.oses[i] == nil {
				m.oses[i] = &modelOS{}
				require.NoError(m.t, os.WriteFile(filepath.Join(m.devDir, "mcos"+strconv.Itoa(i)), nil, 0o600))
				return uintptr(i), 0
			}
		}
		return 0, syscall.ENOMEM
	case reqDeviceDestroyOS:
		o := m.oses[int(val)]
		switch {
		case o == nil:
			return 0, syscall.EINVAL
		case o.opens > 0:
			return 0, syscall.EBUSY
		}
		m.shutdown(o)
		m.release(o) // an unbooted instance's assignments go back too
		delete(m.oses, int(val))
		require.NoError(m.t, os.Remove(filepath.Join(m.devDir, "mcos"+strconv.Itoa(int(val)))))
	case reqDeviceDetectHungup:
		o := m.oses[int(val)]
		switch {
		case o == nil:
			return 0, syscall.EINVAL
		case o.status != ihk.StatusReady && o.status != ihk.StatusRunning:
			return 0, syscall.EAGAIN
		}
		return uintptr(o.status), 0
	default:
		return 0, syscall.EINVAL
	}
	return 0, 0
}

// shutdown returns a booted instance's CPUs and memory to the device pool;
// on a NOT_BOOTED instance it does nothing.
func (m *driverModel) shutdown(o *modelOS) {
	if o.status == ihk.StatusNotBooted {
		return
	}
	m.release(o)
	o.image, o.status, o.perfN = "", ihk.StatusNotBooted, 0
	m.booted = false
}

func (m *driverModel) release(o *modelOS) {
	for _, c := range o.cpus {
		m.avail[c] = true
	}
	m.free = append(m.free, o.mem...)
	o.cpus, o.mem = nil, nil
}

func (m *driverModel) os(o *modelOS, req uint32, p unsafe.Pointer) (uintptr, syscall.Errno) {
	initial := o.status == ihk.StatusNotBooted
	switch req {
	case reqOSAssignCPU:
		if !initial {
			return 0, syscall.EBUSY
		}
		cpus := cpuArg(p)
		for i, c := range cpus {
			if !m.avail[c] || slices.Contains(cpus[:i], c) {
				return 0, syscall.EINVAL
			}
		}
		for _, c := range cpus {
			delete(m.avail, c)
			delete(o.ikc, c) // assignment resets the route to CPU 0
		}
		o.cpus = append(o.cpus, cpus...)
	case reqOSSetIKCMap:
		if !initial {
			return 0, syscall.EBUSY
		}
		src, dst := ikcArg(p)
		for i := range src {
			if src[i] >= maxCPUs || dst[i] >= maxCPUs || !slices.Contains(o.cpus, src[i]) || !m.online[dst[i]] {
				return 0, syscall.EINVAL
			}
		}
		if o.ikc == nil {
			o.ikc = map[int]int{}
		}
		for i := range src {
			o.ikc[src[i]] = dst[i]
		}
	case reqOSGetIKCMap:
		b := mem(p, 24)
		n := int(int32(ne.Uint32(b[16:])))
		// The driver copies into a kernel buffer sized by num_cpus and
		// overruns it when num_cpus is short: never send that.
		require.GreaterOrEqual(m.t, n, len(o.cpus), "GET_IKC_MAP with a short num_cpus overruns a kernel buffer")
		if n != len(o.cpus) {
			return 0, syscall.EINVAL
		}
		src, dst := int32s(ptrAt(p, 0), n), int32s(ptrAt(p, 8), n)
		for i, c := range o.cpus {
			src[i], dst[i] = int32(c), int32(o.ikc[c])
		}
	case reqOSGetBuildID:
		copy(mem(p, 9), "3114d9e7\x00")
	case reqOSGetNumCPUs:
		return uintptr(len(o.cpus)), 0
	case reqOSQueryCPU:
		n := int(int32(ne.Uint32(mem(p, 16)[8:])))
		if n != len(o.cpus) {
			return 0, syscall.EINVAL
		}
		ids := int32s(ptrAt(p, 0), n)
		for i, c := range o.cpus {
			ids[i] = int32(c)
		}
	case reqOSAssignMem:
		if !initial {
			return 0, syscall.EBUSY
		}
		chunks, _, _, _ := memArg(p)
		taken := 0
		for _, c := range chunks {
			if !m.assignChunk(o, c) {
				// Give back what this request assigned, as the driver tries to.
				m.free = append(m.free, o.mem[len(o.mem)-taken:]...)
				o.mem = o.mem[:len(o.mem)-taken]
				return 0, syscall.ENOMEM
			}
			taken++
		}
	case reqOSQueryMem:
		return 0, m.memAnswer(p, o.mem, true)
	case reqOSLoad:
		path := cStringArg(p, 256)
		switch {
		case !initial:
			return 0, syscall.EBUSY
		case len(o.cpus) == 0 || len(o.mem) == 0:
			return 0, syscall.EINVAL
		}
		if _, err := os.Stat(path); err != nil {
			return 0, syscall.ENOENT
		}
		o.image = path
	case reqOSSetKargs:
		if !initial {
			return 0, syscall.EBUSY
		}
		_ = cStringArg(p, 1024)
	case reqOSBoot:
		switch {
		case !initial || m.booted:
			return 0, syscall.EBUSY
		case o.image == "":
			return 0, syscall.EINVAL
		}
		o.status, m.booted = ihk.StatusReady, true
	case reqOSStatus:
		st := o.status
		if st == ihk.StatusReady {
			o.status = ihk.StatusRunning // done_init follows READY
		}
		return uintptr(st), 0
	case reqOSShutdown:
		m.shutdown(o)
	case reqOSFreeze:
		switch o.status {
		case ihk.StatusRunning:
			o.status = ihk.StatusFrozen
		case ihk.StatusFreezing, ihk.StatusFrozen:
			return 0, syscall.EBUSY
		default:
			return 0, syscall.EINVAL
		}
	case reqOSThaw:
		if o.status != ihk.StatusFrozen && o.status != ihk.StatusFreezing {
			return 0, syscall.EINVAL
		}
		o.status = ihk.StatusRunning
	case reqOSRegisterEvent:
		b := mem(p, 8)
		if _, err := unix.FcntlInt(uintptr(int32(ne.Uint32(b[0:]))), unix.F_GETFD, 0); err != nil {
			return 0, syscall.EBADF
		}
	case reqOSReadKmsg:
		if initial {
			return 0, syscall.EINVAL
		}
		return uintptr(copy(mem(p, kmsgSize), "IHK/McKernel model booted.\n")), 0
	case reqOSGetNumNUMANodes:
		return 1, 0
	default:
		return 0, syscall.EINVAL
	}
	return 0, 0
}

// assignChunk takes c from the free chunks of its node: an exact match, or
// a split of the largest chunk.
func (m *driverModel) assignChunk(o *modelOS, c ihk.MemChunk) bool {
	if i := slices.Index(m.free, c); i >= 0 {
		m.free = slices.Delete(m.free, i, i+1)
		o.mem = append(o.mem, c)
		return true
	}
	best := -1
	for i, f := range m.free {
		if f.NUMANode == c.NUMANode && f.Bytes > c.Bytes && (best < 0 || f.Bytes > m.free[best].Bytes) {
			best = i
		}
	}
	if best < 0 {
		return false
	}
	m.free[best].Bytes -= c.Bytes
	o.mem = append(o.mem, c)
	return true
}

func cStringArg(p unsafe.Pointer, limit int) string {
	var b []byte
	for i := range limit {
		c := *(*byte)(unsafe.Add(p, i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// aux models mcctrl's handlers, which exist only while the OS is booted.
func (m *driverModel) aux(o *modelOS, req uint32, val uintptr, p unsafe.Pointer) (uintptr, syscall.Errno) {
	if o.status == ihk.StatusNotBooted {
		return 0, syscall.EINVAL
	}
	switch req {
	case reqAuxGetrusage:
		b := mem(p, 16)
		if ne.Uint64(b[8:]) > rusageSize {
			return 0, syscall.EINVAL
		}
		ru := mem(ptrAt(p, 0), int(ne.Uint64(b[8:])))
		for i := range o.cpus {
			ne.PutUint64(ru[8368+8*i:], 1000*uint64(i+1)) // cpuacct_usage_percpu
		}
		ne.PutUint32(ru[16560:], 1) // num_threads
		ne.PutUint32(ru[16564:], 2) // max_num_threads
	case reqAuxPerfNum:
		o.perfN = int(val)
	case reqAuxPerfSet:
		_ = mem(p, 16*o.perfN)
		return uintptr(o.perfN), 0
	case reqAuxPerfGet:
		v := uint64s(p, o.perfN)
		for i := range v {
			v[i] = uint64(i + 1)
		}
	case reqAuxPerfEnable, reqAuxPerfDisable:
	case reqAuxPerfDestroy:
		o.perfN = 0
	default:
		return 0, syscall.EINVAL
	}
	return 0, 0
}

// TestConformanceModel runs the shared suite against the backend on top of
// the driver model: 4 CPUs, 2 NUMA nodes of 256 MiB.
func TestConformanceModel(t *testing.T) {
	m := newDriverModel(t, 4, 2, 256<<20)
	image := filepath.Join(t.TempDir(), "mckernel.img")
	require.NoError(t, os.WriteFile(image, []byte("\x7fELF"), 0o600))
	ihktest.Run(t, func(t *testing.T) ihk.Client {
		c, err := New(m.devDir, withSys(m))
		require.NoError(t, err)
		return c
	}, ihktest.Capabilities{
		CPUs:           []int{1, 2},
		MissingCPU:     4,
		NUMANode:       1,
		ChunkBytes:     64 << 20,
		TooMuchMemory:  512 << 20,
		Image:          image,
		Kargs:          "hidos dump_level=24",
		ReserveOverlap: ihk.ErrInvalid,
		Hold: func(t *testing.T, c ihk.Client, os int) func() {
			fd, err := m.Open(c.(*Client).OSPath(os), unix.O_RDWR|unix.O_CLOEXEC)
			require.NoError(t, err)
			return func() { require.NoError(t, m.Close(fd)) }
		},
		// Perf false: with true the suite expects PerfRead of more counters
		// than registered to fail, which no stateless backend can tell
		// (PERF_GET carries no count). Perf is covered in TestOSOperations.
		Perf: false,
	})
}
