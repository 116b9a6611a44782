package devperm

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGrantAndRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown (CI runs as root)")
	}
	dir := t.TempDir()
	dev := filepath.Join(dir, "mcos0")
	require.NoError(t, os.WriteFile(dev, nil, 0o644))
	before, err := Current(dev)
	require.NoError(t, err)

	require.NoError(t, Grant(dev, 65534, 65534))
	got, err := Current(dev)
	require.NoError(t, err)
	require.Equal(t, Owner{UID: 65534, GID: 65534, Mode: 0o600}, got)

	require.NoError(t, Restore(dev, before))
	got, err = Current(dev)
	require.NoError(t, err)
	require.Equal(t, before, got)
}

func TestRefusesSymlinksAndDirs(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, nil, 0o600))
	link := filepath.Join(dir, "mcos0")
	require.NoError(t, os.Symlink(target, link))

	for _, tc := range []struct{ name, path string }{
		{"symlink", link},
		{"directory", dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Grant(tc.path, 65534, 65534)
			require.Error(t, err)
			require.Contains(t, err.Error(), "not a character device")
		})
	}
}

func TestRestoreMissingIsSuccess(t *testing.T) {
	require.NoError(t, Restore(filepath.Join(t.TempDir(), "mcos7"), Owner{}))
}
