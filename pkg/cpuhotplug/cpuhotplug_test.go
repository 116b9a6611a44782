package cpuhotplug_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/cpuhotplug"
)

func tree(t *testing.T, online map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for cpu, v := range online {
		d := filepath.Join(root, "sys/devices/system/cpu", "cpu"+strconv.Itoa(cpu))
		require.NoError(t, os.MkdirAll(d, 0o755))
		if v != "" {
			require.NoError(t, os.WriteFile(filepath.Join(d, "online"), []byte(v+"\n"), 0o644))
		}
	}
	return root
}

func state(t *testing.T, root string, cpu int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "sys/devices/system/cpu", "cpu"+strconv.Itoa(cpu), "online"))
	require.NoError(t, err)
	return string(b)
}

func TestSet(t *testing.T) {
	root := tree(t, map[int]string{0: "", 1: "1", 2: "1", 3: "0"})
	w := cpuhotplug.New(root)
	on, err := w.Online(0)
	require.NoError(t, err)
	require.True(t, on, "no online file: cannot go offline, is online")
	require.NoError(t, w.Set(2, false))
	require.Equal(t, "0", state(t, root, 2))
	require.NoError(t, w.Set(3, false), "already offline: no-op")
	require.Equal(t, "0\n", state(t, root, 3))
	require.NoError(t, w.Set(2, true))
	require.Equal(t, "1", state(t, root, 2))
	require.ErrorContains(t, w.Set(0, false), "cpu 0 online=0")
	require.ErrorContains(t, w.Set(-1, false), "negative")
}

func TestSetAllRollsBack(t *testing.T) {
	root := tree(t, map[int]string{0: "", 1: "1", 2: "1", 3: "1"})
	w := cpuhotplug.New(root)
	// CPU 0 cannot go offline: CPUs 2 and 3, taken offline before it, come back.
	err := w.SetAll([]int{2, 3, 0}, false)
	require.ErrorContains(t, err, "cpu 0")
	require.Equal(t, "1", state(t, root, 2))
	require.Equal(t, "1", state(t, root, 3))
	require.NoError(t, w.SetAll([]int{2, 3}, false))
	require.Equal(t, "0", state(t, root, 2))

	bad := tree(t, map[int]string{1: "x"})
	_, err = cpuhotplug.New(bad).Online(1)
	require.ErrorContains(t, err, "want 0 or 1")
}
