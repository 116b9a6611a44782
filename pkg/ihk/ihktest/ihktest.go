package ihktest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// Capabilities describes the node the suite runs on and what the backend is
// expected to do.
type Capabilities struct {
	// CPUs are at least two online CPUs the suite may reserve.
	CPUs []int
	// MissingCPU is a CPU number that does not exist on the node.
	MissingCPU int
	// NUMANode is the node the suite reserves memory on.
	NUMANode int
	// ChunkBytes is the size of each memory chunk the suite reserves (two
	// at most); a multiple of ihk.MemoryGranule.
	ChunkBytes uint64
	// TooMuchMemory, if non-zero, is a size the node cannot reserve
	// (ENOMEM). Zero skips that case.
	TooMuchMemory uint64
	// Image is a kernel image LoadImage accepts; Kargs are valid kernel
	// arguments (they contain "hidos").
	Image string
	Kargs string
	// ReserveOverlap is the sentinel expected when reserving a CPU that is
	// already reserved: ihk.ErrBusy for the simulator, ihk.ErrInvalid for
	// the driver. Nil accepts either.
	ReserveOverlap error
	// Hold opens the device of instance os of client c as mcexec does
	// (O_RDWR, and for the simulator flock(LOCK_SH)) and returns a function
	// that closes it. Nil skips the "destroy while held" check.
	Hold func(t *testing.T, c ihk.Client, os int) (release func())
	// RunningTimeout bounds the wait for RUNNING after Boot. Default 60 s.
	RunningTimeout time.Duration
	// Perf says whether hardware counters are expected to register (false
	// on KVM, where McKernel skips its perf initialisation).
	Perf bool
}

// Run runs the conformance suite. newClient is called once per subtest.
func Run(t *testing.T, newClient func(t *testing.T) ihk.Client, caps Capabilities) {
	t.Helper()
	require.GreaterOrEqual(t, len(caps.CPUs), 2, "ihktest needs two CPUs")
	require.NotZero(t, caps.ChunkBytes, "ihktest needs a chunk size")
	require.Zero(t, caps.ChunkBytes%ihk.MemoryGranule, "chunk size must be a multiple of the granule")
	if caps.RunningTimeout == 0 {
		caps.RunningTimeout = 60 * time.Second
	}
	s := &suite{caps: caps, newClient: newClient}
	t.Run("lifecycle", s.lifecycle)
	t.Run("errors", s.errors)
	t.Run("one booted os per device", s.oneBooted)
	t.Run("lowest free index", s.lowestIndex)
	t.Run("freeze and thaw", s.freezeThaw)
	t.Run("events rusage perf", s.monitoring)
	t.Run("partial memory release", s.partialRelease)
	t.Run("ikc map and build id", s.ikcMap)
}

// ikcMap routes the LWK CPU's IKC interrupts to a Linux CPU the suite does
// not reserve here (the second of caps.CPUs): the map reads back in LWK
// order, bad routes are refused, and the map is fixed once booted.
func (s *suite) ikcMap(t *testing.T) {
	c := s.newClient(t)
	ctx := context.Background()
	lwk, linux := s.caps.CPUs[0], s.caps.CPUs[1]
	s.reserve(t, c, []int{lwk}, []ihk.MemChunk{s.chunk()})
	idx := s.create(t, c)
	require.NoError(t, c.AssignCPUs(ctx, idx, []int{lwk}))

	routes, err := c.IKCMap(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, []ihk.IKCRoute{{CPU: lwk, Target: 0}}, routes, "without a map every LWK CPU interrupts CPU 0")

	err = c.SetIKCMap(ctx, idx, []ihk.IKCRoute{{CPU: linux, Target: linux}})
	require.ErrorIs(t, err, ihk.ErrInvalid, "a source that is not assigned")
	err = c.SetIKCMap(ctx, idx, []ihk.IKCRoute{{CPU: lwk, Target: lwk}})
	require.ErrorIs(t, err, ihk.ErrInvalid, "a target that IHK holds")
	err = c.SetIKCMap(ctx, idx, []ihk.IKCRoute{{CPU: lwk, Target: s.caps.MissingCPU}})
	require.ErrorIs(t, err, ihk.ErrInvalid, "a target that does not exist")

	require.NoError(t, c.SetIKCMap(ctx, idx, []ihk.IKCRoute{{CPU: lwk, Target: linux}}))
	routes, err = c.IKCMap(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, []ihk.IKCRoute{{CPU: lwk, Target: linux}}, routes)

	id, err := c.BuildID(ctx, idx)
	require.NoError(t, err)
	require.NotEmpty(t, id)
	require.NotContains(t, id, "\x00")

	require.NoError(t, c.AssignMemory(ctx, idx, []ihk.MemChunk{s.chunk()}))
	require.NoError(t, c.LoadImage(ctx, idx, s.caps.Image))
	require.NoError(t, c.SetKernelArgs(ctx, idx, s.caps.Kargs))
	require.NoError(t, c.Boot(ctx, idx))
	err = c.SetIKCMap(ctx, idx, []ihk.IKCRoute{{CPU: lwk, Target: linux}})
	require.ErrorIs(t, err, ihk.ErrBusy, "the map is fixed once booted")
	require.NoError(t, c.Shutdown(ctx, idx))
}

type suite struct {
	caps      Capabilities
	newClient func(t *testing.T) ihk.Client
	// reserved is the memory each test reserved so far. A test releases it
	// all at once at its end: a driver that merges physically adjacent free
	// chunks (IHK's SMP driver does) can hand two reservations back as one
	// chunk, which neither reservation's total alone would match.
	reserved map[*testing.T][]ihk.MemChunk
}

func (s *suite) chunk() ihk.MemChunk {
	return ihk.MemChunk{Bytes: s.caps.ChunkBytes, NUMANode: s.caps.NUMANode}
}

// reserve reserves CPUs and chunks and registers their release.
func (s *suite) reserve(t *testing.T, c ihk.Client, cpus []int, chunks []ihk.MemChunk) {
	t.Helper()
	ctx := context.Background()
	if len(chunks) > 0 {
		require.NoError(t, c.ReserveMemory(ctx, chunks))
		if s.reserved == nil {
			s.reserved = map[*testing.T][]ihk.MemChunk{}
		}
		if _, ok := s.reserved[t]; !ok {
			// Registered before the test's instances, so it runs after
			// they are destroyed.
			t.Cleanup(func() {
				releaseMemory(t, c, s.reserved[t])
				delete(s.reserved, t)
			})
		}
		s.reserved[t] = append(s.reserved[t], chunks...)
	}
	if len(cpus) == 0 {
		return
	}
	require.NoError(t, c.ReserveCPUs(ctx, cpus))
	t.Cleanup(func() {
		avail, err := c.ReservedCPUs(ctx)
		require.NoError(t, err)
		var mine []int
		for _, cpu := range cpus {
			if slices.Contains(avail, cpu) {
				mine = append(mine, cpu)
			}
		}
		if len(mine) > 0 {
			require.NoError(t, c.ReleaseCPUs(ctx, mine))
		}
	})
}

// releaseMemory releases the suite's memory on its node: as the epilog
// does, it queries the free chunks (assignment may have split them) and
// releases those of the node up to the reserved total.
func releaseMemory(t *testing.T, c ihk.Client, reserved []ihk.MemChunk) {
	t.Helper()
	ctx := context.Background()
	want := map[int]uint64{}
	for _, ch := range reserved {
		want[ch.NUMANode] += ch.Bytes
	}
	free, err := c.ReservedMemory(ctx)
	require.NoError(t, err)
	var rel []ihk.MemChunk
	for _, ch := range free {
		if want[ch.NUMANode] >= ch.Bytes {
			want[ch.NUMANode] -= ch.Bytes
			rel = append(rel, ch)
		}
	}
	if len(rel) > 0 {
		require.NoError(t, c.ReleaseMemory(ctx, rel))
	}
}

// create creates an OS and registers its destruction.
func (s *suite) create(t *testing.T, c ihk.Client) int {
	t.Helper()
	ctx := context.Background()
	idx, err := c.CreateOS(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, idx, 0)
	require.Less(t, idx, ihk.MaxOSInstances)
	t.Cleanup(func() {
		err := c.DestroyOS(ctx, idx)
		if err != nil && !errors.Is(err, ihk.ErrNotFound) {
			t.Errorf("cleanup: destroy os %d: %v", idx, err)
		}
	})
	return idx
}

// configured reserves one CPU and one chunk, creates an OS and configures
// it up to the kernel arguments.
func (s *suite) configured(t *testing.T, c ihk.Client, cpu int) int {
	t.Helper()
	ctx := context.Background()
	s.reserve(t, c, []int{cpu}, []ihk.MemChunk{s.chunk()})
	idx := s.create(t, c)
	require.NoError(t, c.AssignCPUs(ctx, idx, []int{cpu}))
	require.NoError(t, c.AssignMemory(ctx, idx, []ihk.MemChunk{s.chunk()}))
	require.NoError(t, c.LoadImage(ctx, idx, s.caps.Image))
	require.NoError(t, c.SetKernelArgs(ctx, idx, s.caps.Kargs))
	return idx
}

// waitRunning polls Status until RUNNING.
func (s *suite) waitRunning(t *testing.T, c ihk.Client, idx int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(s.caps.RunningTimeout)
	for {
		st, err := c.Status(ctx, idx)
		require.NoError(t, err)
		if st == ihk.StatusRunning {
			return
		}
		require.Contains(t, []ihk.Status{ihk.StatusBooting, ihk.StatusBooted, ihk.StatusReady}, st, "status while booting")
		require.True(t, time.Now().Before(deadline), "os %d not RUNNING after %v (status %s)", idx, s.caps.RunningTimeout, st)
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *suite) lifecycle(t *testing.T) {
	c := s.newClient(t)
	ctx := context.Background()
	cpus := s.caps.CPUs[:2]
	chunk := s.chunk()

	before, err := c.ReservedCPUs(ctx)
	require.NoError(t, err)
	memBefore, err := c.ReservedMemory(ctx)
	require.NoError(t, err)
	base := total(memBefore, chunk.NUMANode)
	s.reserve(t, c, cpus, []ihk.MemChunk{chunk})
	got, err := c.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.Subset(t, got, cpus)
	require.Len(t, got, len(before)+len(cpus))
	mem, err := c.ReservedMemory(ctx)
	require.NoError(t, err)
	require.Equal(t, base+chunk.Bytes, total(mem, chunk.NUMANode), "reserved memory on node %d", chunk.NUMANode)

	idx := s.create(t, c)
	list, err := c.ListOS(ctx)
	require.NoError(t, err)
	require.Contains(t, list, idx)
	st, err := c.Status(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusNotBooted, st)

	// LWK order is the assignment order, not ascending.
	order := []int{cpus[1], cpus[0]}
	require.NoError(t, c.AssignCPUs(ctx, idx, order))
	assigned, err := c.AssignedCPUs(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, order, assigned)
	got, err = c.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.NotContains(t, got, cpus[0], "assigned CPUs are not listed as reserved")
	require.NotContains(t, got, cpus[1], "assigned CPUs are not listed as reserved")

	require.NoError(t, c.AssignMemory(ctx, idx, []ihk.MemChunk{chunk}))
	amem, err := c.AssignedMemory(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, chunk.Bytes, total(amem, chunk.NUMANode))
	mem, err = c.ReservedMemory(ctx)
	require.NoError(t, err)
	require.Equal(t, base, total(mem, chunk.NUMANode), "assigned memory is not listed as reserved")

	require.NoError(t, c.LoadImage(ctx, idx, s.caps.Image))
	require.NoError(t, c.SetKernelArgs(ctx, idx, s.caps.Kargs))
	_, err = c.ReadKmsg(ctx, idx)
	require.ErrorIs(t, err, ihk.ErrInvalid, "kmsg before boot")

	require.NoError(t, c.Boot(ctx, idx))
	st, err = c.Status(ctx, idx)
	require.NoError(t, err)
	require.Contains(t, []ihk.Status{ihk.StatusReady, ihk.StatusRunning}, st, "Boot returns at READY")
	s.waitRunning(t, c, idx)

	kmsg, err := c.ReadKmsg(ctx, idx)
	require.NoError(t, err)
	require.NotEmpty(t, kmsg)

	// A booted instance cannot be reconfigured or booted again.
	busy := map[string]error{
		"assign cpus":   c.AssignCPUs(ctx, idx, []int{cpus[0]}),
		"assign memory": c.AssignMemory(ctx, idx, []ihk.MemChunk{chunk}),
		"load":          c.LoadImage(ctx, idx, s.caps.Image),
		"kargs":         c.SetKernelArgs(ctx, idx, s.caps.Kargs),
		"boot":          c.Boot(ctx, idx),
	}
	for name, err := range busy {
		require.ErrorIs(t, err, ihk.ErrBusy, name)
	}

	if s.caps.Hold != nil {
		release := s.caps.Hold(t, c, idx)
		err = c.DestroyOS(ctx, idx)
		release()
		require.ErrorIs(t, err, ihk.ErrBusy, "destroy while held")
		var ie *ihk.Error
		require.ErrorAs(t, err, &ie)
		require.Equal(t, idx, ie.OS)
		require.Equal(t, syscall.EBUSY, ie.Errno)
	}

	require.NoError(t, c.Shutdown(ctx, idx))
	st, err = c.Status(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusNotBooted, st)
	_, err = c.ReadKmsg(ctx, idx)
	require.ErrorIs(t, err, ihk.ErrInvalid, "kmsg after shutdown")
	assigned, err = c.AssignedCPUs(ctx, idx)
	require.NoError(t, err)
	require.Empty(t, assigned, "shutdown returns the CPUs")
	got, err = c.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.Subset(t, got, cpus, "shutdown returns the CPUs to the reserved pool")
	mem, err = c.ReservedMemory(ctx)
	require.NoError(t, err)
	require.Equal(t, base+chunk.Bytes, total(mem, chunk.NUMANode), "shutdown returns the memory to the reserved pool")
	require.NoError(t, c.Shutdown(ctx, idx), "shutdown of a NOT_BOOTED os is a no-op")

	require.NoError(t, c.DestroyOS(ctx, idx))
	list, err = c.ListOS(ctx)
	require.NoError(t, err)
	require.NotContains(t, list, idx)
	_, err = c.Status(ctx, idx)
	require.ErrorIs(t, err, ihk.ErrNotFound)
	err = c.DestroyOS(ctx, idx)
	require.ErrorIs(t, err, ihk.ErrNotFound, "destroy twice")
	require.NotErrorIs(t, err, ihk.ErrInvalid, "a missing instance is not an invalid argument")
}

func total(chunks []ihk.MemChunk, node int) uint64 {
	var sum uint64
	for _, c := range chunks {
		if c.NUMANode == node {
			sum += c.Bytes
		}
	}
	return sum
}

func (s *suite) errors(t *testing.T) {
	cpu := s.caps.CPUs[0]
	chunk := s.chunk()
	missingIndex := func(t *testing.T, c ihk.Client) int {
		list, err := c.ListOS(context.Background())
		require.NoError(t, err)
		for i := ihk.MaxOSInstances - 1; i >= 0; i-- {
			if !slices.Contains(list, i) {
				return i
			}
		}
		t.Fatal("no free os index")
		return -1
	}
	overlap := []error{s.caps.ReserveOverlap}
	if s.caps.ReserveOverlap == nil {
		overlap = []error{ihk.ErrBusy, ihk.ErrInvalid}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, c ihk.Client) error
		// want lists the accepted sentinels (any of them).
		want []error
		// errno, when set, is also checked.
		errno syscall.Errno
	}{
		{
			name: "reserve a cpu that does not exist",
			run: func(t *testing.T, c ihk.Client) error {
				return c.ReserveCPUs(context.Background(), []int{s.caps.MissingCPU})
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "reserve a reserved cpu",
			run: func(t *testing.T, c ihk.Client) error {
				s.reserve(t, c, []int{cpu}, nil)
				return c.ReserveCPUs(context.Background(), []int{cpu})
			},
			want: overlap,
		},
		{
			name: "release a cpu that is not reserved",
			run: func(t *testing.T, c ihk.Client) error {
				return c.ReleaseCPUs(context.Background(), []int{cpu})
			},
			want: []error{ihk.ErrInvalid}, errno: syscall.EINVAL,
		},
		{
			name: "release an assigned cpu",
			run: func(t *testing.T, c ihk.Client) error {
				s.reserve(t, c, []int{cpu}, nil)
				idx := s.create(t, c)
				require.NoError(t, c.AssignCPUs(context.Background(), idx, []int{cpu}))
				return c.ReleaseCPUs(context.Background(), []int{cpu})
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "reserve memory not a multiple of 4 MiB",
			run: func(t *testing.T, c ihk.Client) error {
				return c.ReserveMemory(context.Background(), []ihk.MemChunk{{Bytes: ihk.MemoryGranule + 4096, NUMANode: s.caps.NUMANode}})
			},
			want: []error{ihk.ErrInvalid}, errno: syscall.EINVAL,
		},
		{
			name: "reserve more memory than the node has",
			run: func(t *testing.T, c ihk.Client) error {
				if s.caps.TooMuchMemory == 0 {
					t.Skip("no TooMuchMemory capability")
				}
				return c.ReserveMemory(context.Background(), []ihk.MemChunk{{Bytes: s.caps.TooMuchMemory, NUMANode: s.caps.NUMANode}})
			},
			want: []error{ihk.ErrNoMemory}, errno: syscall.ENOMEM,
		},
		{
			name: "release memory that matches no chunk",
			run: func(t *testing.T, c ihk.Client) error {
				s.reserve(t, c, nil, []ihk.MemChunk{chunk})
				return c.ReleaseMemory(context.Background(), []ihk.MemChunk{{Bytes: chunk.Bytes + ihk.MemoryGranule, NUMANode: chunk.NUMANode}})
			},
			want: []error{ihk.ErrInvalid}, errno: syscall.EINVAL,
		},
		{
			name: "destroy a missing instance",
			run: func(t *testing.T, c ihk.Client) error {
				return c.DestroyOS(context.Background(), missingIndex(t, c))
			},
			want: []error{ihk.ErrNotFound},
		},
		{
			name: "status of a missing instance",
			run: func(t *testing.T, c ihk.Client) error {
				_, err := c.Status(context.Background(), missingIndex(t, c))
				return err
			},
			want: []error{ihk.ErrNotFound},
		},
		{
			name: "assign a cpu that is not reserved",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.create(t, c)
				return c.AssignCPUs(context.Background(), idx, []int{cpu})
			},
			want: []error{ihk.ErrInvalid}, errno: syscall.EINVAL,
		},
		{
			name: "assign more memory than reserved",
			run: func(t *testing.T, c ihk.Client) error {
				s.reserve(t, c, nil, []ihk.MemChunk{chunk})
				idx := s.create(t, c)
				return c.AssignMemory(context.Background(), idx, []ihk.MemChunk{{Bytes: chunk.Bytes + ihk.MemoryGranule, NUMANode: chunk.NUMANode}})
			},
			want: []error{ihk.ErrNoMemory}, errno: syscall.ENOMEM,
		},
		{
			name: "load without cpus and memory",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.create(t, c)
				return c.LoadImage(context.Background(), idx, s.caps.Image)
			},
			want: []error{ihk.ErrInvalid}, errno: syscall.EINVAL,
		},
		{
			name: "load a missing image",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.configured(t, c, cpu)
				return c.LoadImage(context.Background(), idx, "/nonexistent/slurm-lwk/mckernel.img")
			},
			errno: syscall.ENOENT,
		},
		{
			name: "load an image path over 255 bytes",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.configured(t, c, cpu)
				return c.LoadImage(context.Background(), idx, "/"+strings.Repeat("x", ihk.MaxPathLen))
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "kernel arguments without hidos",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.create(t, c)
				return c.SetKernelArgs(context.Background(), idx, "allow_oversubscribe time_sharing")
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "kernel arguments over 255 bytes",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.create(t, c)
				return c.SetKernelArgs(context.Background(), idx, "hidos "+strings.Repeat("x", ihk.MaxKargsLen))
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "read kmsg before boot",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.configured(t, c, cpu)
				_, err := c.ReadKmsg(context.Background(), idx)
				return err
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "rusage before boot",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.create(t, c)
				_, err := c.Rusage(context.Background(), idx)
				return err
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "freeze an instance that is not running",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.create(t, c)
				return c.Freeze(context.Background(), idx)
			},
			want: []error{ihk.ErrInvalid},
		},
		{
			name: "thaw an instance that is not frozen",
			run: func(t *testing.T, c ihk.Client) error {
				idx := s.create(t, c)
				return c.Thaw(context.Background(), idx)
			},
			want: []error{ihk.ErrInvalid},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := s.newClient(t)
			err := tc.run(t, c)
			require.Error(t, err)
			if len(tc.want) > 0 {
				matched := false
				for _, w := range tc.want {
					matched = matched || errors.Is(err, w)
				}
				require.True(t, matched, "got %v, want one of %v", err, tc.want)
			}
			if tc.errno != 0 {
				require.ErrorIs(t, err, tc.errno)
			}
			var ie *ihk.Error
			require.ErrorAs(t, err, &ie, "errors are *ihk.Error")
		})
	}
}

func (s *suite) oneBooted(t *testing.T) {
	c := s.newClient(t)
	ctx := context.Background()
	first := s.configured(t, c, s.caps.CPUs[0])
	second := s.configured(t, c, s.caps.CPUs[1])
	require.NoError(t, c.Boot(ctx, first))
	err := c.Boot(ctx, second)
	require.ErrorIs(t, err, ihk.ErrBusy, "a second booted os on the device")
	require.NoError(t, c.Shutdown(ctx, first))
	// Shutdown returned the first one's resources; the second can boot now.
	require.NoError(t, c.Boot(ctx, second))
	s.waitRunning(t, c, second)
	require.NoError(t, c.DestroyOS(ctx, second), "destroy shuts a booted os down")
	got, err := c.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.Subset(t, got, s.caps.CPUs[:2])
}

func (s *suite) lowestIndex(t *testing.T) {
	c := s.newClient(t)
	ctx := context.Background()
	a := s.create(t, c)
	b := s.create(t, c)
	require.NotEqual(t, a, b)
	require.NoError(t, c.DestroyOS(ctx, a))
	again := s.create(t, c)
	require.Equal(t, min(a, b), min(again, b), "the freed lower index is reused")
}

func (s *suite) freezeThaw(t *testing.T) {
	c := s.newClient(t)
	ctx := context.Background()
	idx := s.configured(t, c, s.caps.CPUs[0])
	require.NoError(t, c.Boot(ctx, idx))
	s.waitRunning(t, c, idx)
	require.NoError(t, c.Freeze(ctx, idx))
	require.Eventually(t, func() bool {
		st, err := c.Status(ctx, idx)
		return err == nil && st == ihk.StatusFrozen
	}, 10*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, c.Freeze(ctx, idx), ihk.ErrBusy, "freeze a frozen os")
	require.NoError(t, c.Thaw(ctx, idx))
	st, err := c.Status(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusRunning, st)
	require.ErrorIs(t, c.Thaw(ctx, idx), ihk.ErrInvalid, "thaw a running os")
}

func (s *suite) monitoring(t *testing.T) {
	c := s.newClient(t)
	ctx := context.Background()
	idx := s.configured(t, c, s.caps.CPUs[0])
	require.NoError(t, c.Boot(ctx, idx))
	s.waitRunning(t, c, idx)

	ev, err := c.RegisterEvent(ctx, idx, ihk.EventStatus)
	require.NoError(t, err)
	require.GreaterOrEqual(t, ev.Fd(), 0)
	require.NoError(t, ev.Close())

	ru, err := c.Rusage(ctx, idx)
	require.NoError(t, err)
	require.Len(t, ru.PerCPUUserNanoseconds, 1, "one entry per LWK CPU")
	require.GreaterOrEqual(t, ru.MaxThreads, ru.Threads)

	st, err := c.DetectHangup(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, ihk.StatusRunning, st)

	n, err := c.PerfSet(ctx, idx, []ihk.PerfAttr{{Config: 0x3c}, {Config: 0xc0, ExcludeKernel: true}})
	require.NoError(t, err)
	if !s.caps.Perf {
		require.NoError(t, c.PerfControl(ctx, idx, ihk.PerfDestroy))
		return
	}
	require.Equal(t, 2, n)
	require.NoError(t, c.PerfControl(ctx, idx, ihk.PerfEnable))
	vals, err := c.PerfRead(ctx, idx, n)
	require.NoError(t, err)
	require.Len(t, vals, n)
	require.NoError(t, c.PerfControl(ctx, idx, ihk.PerfDisable))
	_, err = c.PerfRead(ctx, idx, n+1)
	require.ErrorIs(t, err, ihk.ErrInvalid, "more counters than registered")
	require.NoError(t, c.PerfControl(ctx, idx, ihk.PerfDestroy))
}

// partialRelease checks that ReleaseMemory needs exact matches and that the
// chunks released before a mismatch stay released.
func (s *suite) partialRelease(t *testing.T) {
	c := s.newClient(t)
	ctx := context.Background()
	chunk := s.chunk()
	before, err := c.ReservedMemory(ctx)
	require.NoError(t, err)
	s.reserve(t, c, nil, []ihk.MemChunk{chunk})
	after, err := c.ReservedMemory(ctx)
	require.NoError(t, err)
	// The driver may have split the request into several chunks; release
	// the first new one, then a chunk that matches nothing.
	added := without(after, before)
	require.NotEmpty(t, added)
	first := added[0]
	bogus := ihk.MemChunk{Bytes: chunk.Bytes + ihk.MemoryGranule, NUMANode: chunk.NUMANode}
	err = c.ReleaseMemory(ctx, []ihk.MemChunk{first, bogus})
	require.ErrorIs(t, err, ihk.ErrInvalid)
	now, err := c.ReservedMemory(ctx)
	require.NoError(t, err)
	require.Equal(t, total(after, chunk.NUMANode)-first.Bytes, total(now, chunk.NUMANode),
		"the chunk before the mismatch was released")
}

// without returns the multiset difference a - b.
func without(a, b []ihk.MemChunk) []ihk.MemChunk {
	rest := append([]ihk.MemChunk{}, b...)
	var out []ihk.MemChunk
	for _, c := range a {
		if k := slices.Index(rest, c); k >= 0 {
			rest = slices.Delete(rest, k, k+1)
			continue
		}
		out = append(out, c)
	}
	return out
}
