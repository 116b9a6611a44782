package jobend

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecordEndedPrune(t *testing.T) {
	s := Open(Dir(t.TempDir()))
	k := Key{JobID: 42, Attempt: 1}
	ended, err := s.Ended(k)
	require.NoError(t, err)
	require.False(t, ended, "nothing recorded yet (and no directory)")

	require.NoError(t, s.Record(k))
	require.NoError(t, s.Record(k), "recording twice is harmless")
	for _, tc := range []struct {
		k    Key
		want bool
	}{
		{k, true},
		{Key{JobID: 42, Attempt: 0}, false}, // an earlier attempt
		{Key{JobID: 42, Attempt: 2}, false}, // the requeued attempt
		{Key{JobID: 4, Attempt: 21}, false}, // same digits, other split
	} {
		got, err := s.Ended(tc.k)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%+v", tc.k)
	}
	fi, err := os.Stat(s.dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	old := Key{JobID: 7}
	require.NoError(t, s.Record(old))
	past := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(s.dir, old.name()), past, past))
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "unrelated"), nil, 0o600))
	n, err := s.Prune(time.Hour, time.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	for k, want := range map[Key]bool{old: false, k: true} {
		got, err := s.Ended(k)
		require.NoError(t, err)
		require.Equal(t, want, got, "%+v", k)
	}
}

func TestParseName(t *testing.T) {
	k, ok := parseName("job-12.3")
	require.True(t, ok)
	require.Equal(t, Key{JobID: 12, Attempt: 3}, k)
	for _, bad := range []string{"job-12", "job-0.1", "job-x.1", "job-1.y", "other"} {
		_, ok := parseName(bad)
		require.False(t, ok, bad)
	}
}
