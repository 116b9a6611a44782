//go:build linux && (amd64 || arm64)

package ioctl

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ihktest"
)

// TestConformance runs the shared ihk.Client suite against the real driver,
// gated like the other live tests (see live_test.go).
func TestConformance(t *testing.T) {
	liveClient(t)
	env := liveEnv(t)
	caps := ihktest.Capabilities{
		CPUs:           env.cpus,
		MissingCPU:     missingCPU(t, "/sys/devices/system/cpu/possible"),
		NUMANode:       env.memNode,
		ChunkBytes:     env.memBytes,
		Image:          env.image,
		Kargs:          env.kargs,
		ReserveOverlap: ihk.ErrInvalid, // the SMP driver answers EINVAL, not EBUSY
		Perf:           os.Getenv("LWK_IHK_PERF") == "1",
		Hold: func(t *testing.T, c ihk.Client, os int) func() {
			// As mcexec does: the OS node opened read-write.
			fd, err := unix.Open(c.(*Client).OSPath(os), unix.O_RDWR|unix.O_CLOEXEC, 0)
			require.NoError(t, err)
			return func() { require.NoError(t, unix.Close(fd)) }
		},
	}
	if s := os.Getenv("LWK_IHK_TOO_MUCH_BYTES"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "LWK_IHK_TOO_MUCH_BYTES")
		caps.TooMuchMemory = n
	}
	ihktest.Run(t, func(t *testing.T) ihk.Client {
		c, err := New("/dev")
		require.NoError(t, err)
		return c
	}, caps)
}

// missingCPU returns the first CPU number past the node's possible CPUs.
func missingCPU(t *testing.T, possiblePath string) int {
	t.Helper()
	b, err := os.ReadFile(possiblePath)
	require.NoError(t, err)
	set, err := cpuset.Parse(strings.TrimSpace(string(b)))
	require.NoError(t, err, possiblePath)
	list := set.List()
	require.NotEmpty(t, list, possiblePath)
	return list[len(list)-1] + 1
}
