package filetree_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/filetree"
)

func TestNew(t *testing.T) {
	root := filetree.New(t, map[string]string{
		"sys/devices/system/node/online":        "0-1\n",
		"sys/devices/system/node/node1/meminfo": "Node 1 MemFree: 4 kB\n",
		"proc/300/stat":                         "300 (sleep) S 1\n",
	})
	for rel, want := range map[string]string{
		"sys/devices/system/node/online":        "0-1\n",
		"sys/devices/system/node/node1/meminfo": "Node 1 MemFree: 4 kB\n",
		"proc/300/stat":                         "300 (sleep) S 1\n",
	} {
		got, err := os.ReadFile(filepath.Join(root, rel))
		require.NoError(t, err)
		require.Equal(t, want, string(got))
	}
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, entries, 2, "only the files asked for")
}
