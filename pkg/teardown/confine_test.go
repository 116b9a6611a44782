package teardown_test

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
)

// cgroupsWith stands in for the job's cgroups holding some processes: it
// reports those still alive, refuses removal (EBUSY) while any is, and
// counts OOM kills.
type cgroupsWith struct {
	mu      sync.Mutex
	pids    []int
	removed int
}

func (c *cgroupsWith) alive() []int {
	var out []int
	for _, pid := range c.pids {
		// A zombie (killed, not yet reaped) has left its cgroups.
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) && b[i+2] != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

func (c *cgroupsWith) Members(uint32) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alive(), nil
}

func (c *cgroupsWith) Remove(uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.alive()) > 0 {
		return syscall.EBUSY
	}
	c.removed++
	return nil
}

func (c *cgroupsWith) Stats(uint32) (proxycgroup.Stats, error) {
	return proxycgroup.Stats{OOMKills: 1}, nil
}

func TestTeardownStopsWhatIsLeftInTheJobsCgroupsThenRemovesThem(t *testing.T) {
	e := newEnv(t)
	e.booted(31, []int{2, 3}, ihk.MemChunk{NUMANode: 2, Bytes: 64 << 20})
	// A process of the job that Slurm did not end and that holds no device:
	// it ignores SIGTERM, so only SIGKILL after the grace ends it.
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done")
	require.NoError(t, cmd.Start())
	reaped := make(chan struct{})
	go func() { _ = cmd.Wait(); close(reaped) }()
	cg := &cgroupsWith{pids: []int{cmd.Process.Pid}}
	e.deps.Cgroups = cg
	_, err := proxycgroup.WriteRecord(e.deps.RunDir, &proxycgroup.Record{Version: 1, JobID: 31, Mode: proxycgroup.V1})
	require.NoError(t, err)

	start := time.Now()
	res, err := teardown.Run(ctx, e.deps, 31)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), e.deps.KillGrace, "SIGTERM first, SIGKILL after the grace")
	select {
	case <-reaped:
	case <-time.After(5 * time.Second):
		t.Fatal("the process left in the job's cgroups was not killed")
	}
	require.True(t, res.Cgroups)
	require.Equal(t, 1, cg.removed)
	require.Contains(t, res.Killed, cmd.Process.Pid)
	_, err = os.Stat(proxycgroup.RecordPath(e.deps.RunDir, 31))
	require.ErrorIs(t, err, os.ErrNotExist)

	// Again: nothing left, still success.
	res, err = teardown.Run(ctx, e.deps, 31)
	require.NoError(t, err)
	require.True(t, res.Cgroups)
}
