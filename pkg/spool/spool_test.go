package spool_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/spool"
)

func TestSpoolIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	s, err := spool.Open(dir, 1<<20, 1<<10)
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "a world-readable spool is made private")
	require.NoError(t, s.AppendSample(1, []byte(`{"a":1}`)))
	require.NoError(t, s.WriteFile(s.RecordPath(1), []byte(`{}`)))
	for _, p := range []string{s.SamplesPath(1), s.RecordPath(1)} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), p)
	}
	_, err = spool.Open("relative", 1, 1)
	require.Error(t, err)
	_, err = spool.Open(dir, 10, 20)
	require.ErrorContains(t, err, "per job <= total")
}

func TestJobSampleLogBounded(t *testing.T) {
	s, err := spool.Open(filepath.Join(t.TempDir(), "s"), 1<<20, 100)
	require.NoError(t, err)
	line := []byte(strings.Repeat("x", 29)) // 30 bytes with the newline
	for range 3 {
		require.NoError(t, s.AppendSample(3, line))
	}
	require.ErrorIs(t, s.AppendSample(3, line), spool.ErrJobFull)
	fi, err := os.Stat(s.SamplesPath(3))
	require.NoError(t, err)
	require.EqualValues(t, 90, fi.Size())
	// A kernel log larger than the bound keeps its newest bytes.
	require.NoError(t, s.WriteFile(s.KmsgPath(3, 0, "panic"), []byte(strings.Repeat("o", 150)+"newest")))
	data, err := os.ReadFile(s.KmsgPath(3, 0, "panic"))
	require.NoError(t, err)
	require.Len(t, data, 100)
	require.True(t, strings.HasSuffix(string(data), "newest"))
}

// TestTotalBoundEvictsOldestEndedJobs: past the total bound the oldest
// files of jobs that are not live go first; live jobs are never evicted,
// and a write that cannot fit fails.
func TestTotalBoundEvictsOldestEndedJobs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, err := spool.Open(dir, 300, 100)
	require.NoError(t, err)
	old := time.Now().Add(-time.Hour)
	for i, job := range []uint32{1, 2, 3} {
		require.NoError(t, s.WriteFile(s.RecordPath(job), []byte(strings.Repeat("r", 100))))
		mt := old.Add(time.Duration(i) * time.Minute)
		require.NoError(t, os.Chtimes(s.RecordPath(job), mt, mt))
	}
	s.SetLive(1, true)
	require.EqualValues(t, 300, s.Total())
	require.NoError(t, s.WriteFile(s.RecordPath(4), []byte(strings.Repeat("r", 100))))
	_, err = os.Stat(s.RecordPath(1))
	require.NoError(t, err, "live job kept although oldest")
	_, err = os.Stat(s.RecordPath(2))
	require.ErrorIs(t, err, os.ErrNotExist, "oldest ended job evicted")
	_, err = os.Stat(s.RecordPath(3))
	require.NoError(t, err)
	require.LessOrEqual(t, s.Total(), int64(300))
	for _, j := range []uint32{3, 4, 5} {
		s.SetLive(j, true)
	}
	require.ErrorContains(t, s.WriteFile(s.RecordPath(5), []byte(strings.Repeat("r", 100))), "do not fit")
	// Reopening counts what is there.
	s2, err := spool.Open(dir, 300, 100)
	require.NoError(t, err)
	require.EqualValues(t, 300, s2.Total())
}
