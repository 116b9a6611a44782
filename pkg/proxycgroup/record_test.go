package proxycgroup

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func splitFields(s string) []string { return strings.Fields(s) }

func TestRecordRoundTrip(t *testing.T) {
	f, layout := newFakeV1(t, "0-1", "0")
	rec, err := Manager{Layout: layout, FS: f}.Create(7, paperLimits(t))
	require.NoError(t, err)
	run := filepath.Join(t.TempDir(), "run")
	path, err := WriteRecord(run, rec)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(run, "job-7.cgroup"), path)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())

	got, err := ReadRecord(run, 7)
	if os.Geteuid() != 0 {
		require.ErrorContains(t, err, "not a root-owned regular file")
		return
	}
	require.NoError(t, err)
	require.Equal(t, rec, got)
	l, err := got.Limits.limits()
	require.NoError(t, err)
	require.Equal(t, uint64(128<<20), l.MemoryBytes)

	_, err = ReadRecord(run, 8)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NoError(t, os.Chmod(path, 0o666))
	_, err = ReadRecord(run, 7)
	require.ErrorContains(t, err, "writable by root only")
	require.NoError(t, os.Chmod(path, 0o600))
	require.NoError(t, os.Rename(path, filepath.Join(run, "job-9.cgroup")))
	_, err = ReadRecord(run, 9)
	require.ErrorContains(t, err, "for job 7")
	require.NoError(t, RemoveRecord(run, 9))
	require.NoError(t, RemoveRecord(run, 9))
}
