package finalusage_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/finalusage"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

func TestWriteReadRemove(t *testing.T) {
	dir := t.TempDir()
	_, err := finalusage.Read(dir, 5, 0)
	require.True(t, errors.Is(err, fs.ErrNotExist), "%v", err)
	began := time.Now().UTC().Add(-time.Second)
	r := finalusage.Reading{JobID: 5, OS: 0, Time: time.Now().UTC(), TeardownBegan: began, Rusage: &ihk.Rusage{UserNanoseconds: 42}}
	require.NoError(t, finalusage.Write(dir, r))
	fi, err := os.Stat(finalusage.Path(dir, 5, 0))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "root-only")
	got, err := finalusage.Read(dir, 5, 0)
	require.NoError(t, err)
	require.Equal(t, uint64(42), got.Rusage.UserNanoseconds)
	require.True(t, began.Equal(got.TeardownBegan), "the epilog's start survives the round trip")
	// A file naming another job is refused.
	require.NoError(t, os.Rename(finalusage.Path(dir, 5, 0), finalusage.Path(dir, 6, 0)))
	_, err = finalusage.Read(dir, 6, 0)
	require.ErrorContains(t, err, "holds job 5")
	require.NoError(t, finalusage.Remove(dir, 6, 0))
	require.NoError(t, finalusage.Remove(dir, 6, 0), "removing twice is fine")
	// Never through a symlink.
	require.NoError(t, os.Symlink("/etc/hostname", finalusage.Path(dir, 7, 0)))
	_, err = finalusage.Read(dir, 7, 0)
	require.Error(t, err)
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []finalusage.Key{{JobID: 5, OS: 0}, {JobID: 12, OS: 3}} {
		require.NoError(t, finalusage.Write(dir, finalusage.Reading{JobID: k.JobID, OS: k.OS, Rusage: &ihk.Rusage{}}))
	}
	for _, name := range []string{".rusage-123", "job-5.os0.rusage.json.tmp", "job-05.os0.rusage.json", "job-0.os0.rusage.json",
		"job-7.os-1.rusage.json", "job-7.os+1.rusage.json", "job-4294967296.os0.rusage.json", "job-7.rusage.json", "job-7.os0.kmsg"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "job-9.os0.rusage.json"), 0o700))
	keys, err := finalusage.List(dir)
	require.NoError(t, err)
	require.ElementsMatch(t, []finalusage.Key{{JobID: 5, OS: 0}, {JobID: 12, OS: 3}}, keys)

	keys, err = finalusage.List(filepath.Join(dir, "missing"))
	require.NoError(t, err)
	require.Empty(t, keys)
}
