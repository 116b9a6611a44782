package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

const gib = 1 << 30

// testTopology is a 16-CPU, 4-node machine without hyper-threads in the
// shape of the paper's evaluation node (16 logical cores, 12 GB, CPUs 0-1
// for the OS): node n has CPUs 4n..4n+3 and 3 GiB, of which 2 GiB free.
// CPU 15 is offline.
func testTopology() *topology.Topology {
	t := &topology.Topology{MemoryBlockBytes: 128 << 20}
	for n := 0; n < 4; n++ {
		var ids []int
		for c := 4 * n; c < 4*n+4; c++ {
			ids = append(ids, c)
			t.CPUs = append(t.CPUs, topology.CPU{ID: c, Core: c, Socket: 0, NUMANode: n, Online: c != 15})
		}
		dist := map[int]int{}
		for m := 0; m < 4; m++ {
			dist[m] = 20
			if m == n {
				dist[m] = 10
			}
		}
		t.Nodes = append(t.Nodes, topology.NUMANode{
			ID: n, CPUs: cpuset.New(ids...), MemTotalBytes: 3 * gib, MemFreeBytes: 2 * gib, Distances: dist,
		})
	}
	return t
}

func newBackend(t *testing.T, mod func(*Options)) *Backend {
	t.Helper()
	opts := Options{StateDir: filepath.Join(t.TempDir(), "sim"), Topology: testTopology()}
	if mod != nil {
		mod(&opts)
	}
	b, err := Open(opts)
	require.NoError(t, err)
	return b
}

// hold opens the instance's stand-in as the mcexec stand-in does and returns
// the release function.
func hold(t *testing.T, b *Backend, idx int) func() {
	t.Helper()
	f, err := os.OpenFile(b.DevicePath(idx), os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Flock(int(f.Fd()), unix.LOCK_SH))
	return func() { f.Close() }
}

// image writes a fake kernel image.
func image(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mckernel.img")
	require.NoError(t, os.WriteFile(p, []byte("\x7fELF simulated"), 0o644))
	return p
}

// booted reserves cpus and 256 MiB on node 0, creates, configures and boots
// an instance.
func booted(t *testing.T, b *Backend, cpus []int) int {
	t.Helper()
	ctx := context.Background()
	chunk := ihk.MemChunk{Bytes: 256 << 20, NUMANode: 0}
	require.NoError(t, b.ReserveMemory(ctx, []ihk.MemChunk{chunk}))
	require.NoError(t, b.ReserveCPUs(ctx, cpus))
	idx, err := b.CreateOS(ctx)
	require.NoError(t, err)
	require.NoError(t, b.AssignCPUs(ctx, idx, cpus))
	require.NoError(t, b.AssignMemory(ctx, idx, []ihk.MemChunk{chunk}))
	require.NoError(t, b.LoadImage(ctx, idx, image(t)))
	require.NoError(t, b.SetKernelArgs(ctx, idx, "hidos allow_oversubscribe"))
	require.NoError(t, b.Boot(ctx, idx))
	return idx
}

// helperEnv selects a helper mode when the test binary re-executes itself.
const helperEnv = "LWK_SIM_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// runHelper runs in a child process. arg is the helper's argument.
func runHelper(mode, arg string) int {
	switch mode {
	case "burn":
		// Use the given CPU time. Not wall time: on a loaded machine a
		// wall-clock loop gets a fraction of it, and the test that counts
		// this child's CPU time flaked.
		d, _ := time.ParseDuration(arg)
		var ru syscall.Rusage
		for x := 0; ; x++ {
			if x%100000 == 0 {
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
					return 0
				}
			}
		}
	case "create":
		// Create an OS through a backend on state dir arg (faults from env).
		f, warn, err := FaultsFromEnv(arg)
		if err != nil || warn != "" {
			fmt.Fprintln(os.Stderr, err, warn)
			return 2
		}
		b, err := Open(Options{StateDir: arg, Topology: testTopology()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		idx, err := Inject(b, f, nil).CreateOS(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		fmt.Println(idx)
		return 0
	case "wait-event":
		// Register a STATUS eventfd on os 0 of state dir arg, say so, and
		// wait for the event.
		b, err := Open(Options{StateDir: arg, Topology: testTopology()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		ev, err := b.RegisterEvent(context.Background(), 0, ihk.EventStatus)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("registered")
		n, err := ev.Read()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("event " + strconv.FormatUint(n, 10))
		return 0
	}
	return 99
}
