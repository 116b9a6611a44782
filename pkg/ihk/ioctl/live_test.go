//go:build linux && (amd64 || arm64)

package ioctl

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// Live tests against the real driver. They run only where /dev/mcd0 exists
// and LWK_IHK_REAL=1 is set (as root). The read-only test queries the node;
// the lifecycle test and the ihktest conformance suite change node state and
// additionally need
//
//	LWK_IHK_IMAGE=/path/to/mckernel.img  LWK_IHK_CPUS=<list of >= 2 CPUs, not CPU0>
//	LWK_IHK_MEM_BYTES=<multiple of 4 MiB, default 512 MiB>  LWK_IHK_MEM_NODE=<node, default 0>
//	LWK_IHK_KARGS=<default "hidos dump_level=24 time_sharing">
//
// and must run on an idle node with no LWK instance (mcreboot.sh not run).
// The conformance suite also reads LWK_IHK_PERF=1 (hardware counters work;
// not on KVM) and LWK_IHK_TOO_MUCH_BYTES (a size the node cannot reserve).
func liveClient(t *testing.T) *Client {
	t.Helper()
	if _, err := os.Stat("/dev/mcd0"); err != nil {
		t.Skip("no IHK driver (/dev/mcd0 absent)")
	}
	if os.Getenv("LWK_IHK_REAL") != "1" {
		t.Skip("IHK driver present; set LWK_IHK_REAL=1 to run the live tests")
	}
	c, err := New("/dev")
	require.NoError(t, err)
	return c
}

func TestLiveQueries(t *testing.T) {
	c := liveClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cpus, err := c.ReservedCPUs(ctx)
	require.NoError(t, err)
	mem, err := c.ReservedMemory(ctx)
	require.NoError(t, err)
	list, err := c.ListOS(ctx)
	require.NoError(t, err)
	t.Logf("reserved cpus %v, reserved memory %v, os instances %v", cpus, mem, list)
	for _, i := range list {
		st, err := c.Status(ctx, i)
		require.NoError(t, err)
		assigned, err := c.AssignedCPUs(ctx, i)
		require.NoError(t, err)
		chunks, err := c.AssignedMemory(ctx, i)
		require.NoError(t, err)
		t.Logf("os %d: %s, cpus %v, memory %v", i, st, assigned, chunks)
	}
}

// liveNode holds the node resources the state-changing live tests may use,
// from the environment (see the comment at the top of this file).
type liveNode struct {
	image    string
	kargs    string
	cpus     []int
	memBytes uint64
	memNode  int
}

func liveEnv(t *testing.T) liveNode {
	t.Helper()
	n := liveNode{image: os.Getenv("LWK_IHK_IMAGE"), kargs: "hidos dump_level=24 time_sharing",
		memBytes: 512 << 20}
	cpuList := os.Getenv("LWK_IHK_CPUS")
	if n.image == "" || cpuList == "" {
		t.Skip("set LWK_IHK_IMAGE and LWK_IHK_CPUS to boot an instance")
	}
	set, err := cpuset.Parse(cpuList)
	require.NoError(t, err, "LWK_IHK_CPUS")
	n.cpus = set.List()
	if s := os.Getenv("LWK_IHK_KARGS"); s != "" {
		n.kargs = s
	}
	if s := os.Getenv("LWK_IHK_MEM_BYTES"); s != "" {
		n.memBytes, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "LWK_IHK_MEM_BYTES")
	}
	if s := os.Getenv("LWK_IHK_MEM_NODE"); s != "" {
		n.memNode, err = strconv.Atoi(s)
		require.NoError(t, err, "LWK_IHK_MEM_NODE")
	}
	return n
}

func TestLiveLifecycle(t *testing.T) {
	c := liveClient(t)
	env := liveEnv(t)
	cpus := env.cpus
	chunk := []ihk.MemChunk{{Bytes: env.memBytes, NUMANode: env.memNode}}
	image := env.image

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Memory first, then CPUs, as mcreboot.sh does. Cleanup releases exactly
	// what is reserved at the end (queried, not assumed).
	require.NoError(t, c.ReserveMemory(ctx, chunk))
	t.Cleanup(func() {
		ctx := context.Background()
		if got, err := c.ReservedMemory(ctx); err == nil && len(got) > 0 {
			require.NoError(t, c.ReleaseMemory(ctx, got))
		}
	})
	require.NoError(t, c.ReserveCPUs(ctx, cpus))
	t.Cleanup(func() {
		ctx := context.Background()
		if got, err := c.ReservedCPUs(ctx); err == nil && len(got) > 0 {
			require.NoError(t, c.ReleaseCPUs(ctx, got))
		}
	})
	reserved, err := c.ReservedCPUs(ctx)
	require.NoError(t, err)
	require.Subset(t, reserved, cpus)

	idx, err := c.CreateOS(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		err := c.DestroyOS(context.Background(), idx)
		if err != nil {
			require.ErrorIs(t, err, ihk.ErrNotFound)
		}
	})
	// udev may still be adjusting the new node; give it a moment.
	require.Eventually(t, func() bool { _, err := os.Stat(c.OSPath(idx)); return err == nil },
		10*time.Second, 10*time.Millisecond)

	require.NoError(t, c.AssignCPUs(ctx, idx, cpus))
	got, err := c.AssignedCPUs(ctx, idx)
	require.NoError(t, err)
	require.Equal(t, cpus, got)
	require.NoError(t, c.AssignMemory(ctx, idx, chunk))
	assigned, err := c.AssignedMemory(ctx, idx)
	require.NoError(t, err)
	require.NotEmpty(t, assigned)
	require.NoError(t, c.LoadImage(ctx, idx, image))
	require.NoError(t, c.SetKernelArgs(ctx, idx, env.kargs))

	// Boot blocks until READY (≤60 s in the kernel); RUNNING follows.
	require.NoError(t, c.Boot(ctx, idx))
	require.Eventually(t, func() bool {
		st, err := c.Status(ctx, idx)
		return err == nil && st == ihk.StatusRunning
	}, 30*time.Second, 200*time.Millisecond, "os %d RUNNING", idx)

	ev, err := c.RegisterEvent(ctx, idx, ihk.EventStatus)
	require.NoError(t, err)
	require.NoError(t, ev.Close())
	ru, err := c.Rusage(ctx, idx)
	require.NoError(t, err)
	require.Len(t, ru.PerCPUUserNanoseconds, len(cpus))
	kmsg, err := c.ReadKmsg(ctx, idx)
	require.NoError(t, err)
	require.NotEmpty(t, kmsg)
	t.Logf("kmsg: %.200s", kmsg)

	require.NoError(t, c.DestroyOS(ctx, idx))
	_, err = c.Status(ctx, idx)
	require.ErrorIs(t, err, ihk.ErrNotFound)
}
