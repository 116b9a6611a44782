package jobmarker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteReadListRemove(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	path, err := Write(run, 42, 3)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(run, "job-42"), path)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(run)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), di.Mode().Perm())

	osIndex, err := Read(run, 42)
	require.NoError(t, err)
	require.Equal(t, 3, osIndex)

	ids, err := List(run)
	require.NoError(t, err)
	require.Equal(t, []uint32{42}, ids)

	require.NoError(t, Remove(run, 42))
	require.NoError(t, Remove(run, 42), "removing twice is success")
	_, err = Read(run, 42)
	require.True(t, errors.Is(err, fs.ErrNotExist), "%v", err)
}

func TestReadMalformed(t *testing.T) {
	run := t.TempDir()
	for _, tc := range []struct{ name, content string }{
		{"empty", ""},
		{"no prefix", "3\n"},
		{"negative", "os=-1\n"},
		{"junk", "os=abc\n"},
		{"os not first", "attempt=1\nos=3\n"},
		{"attempt not a number", "os=3\nattempt=x\n"},
		{"line without =", "os=3\nattempt\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(Path(run, 7), []byte(tc.content), 0o600))
			_, err := Read(run, 7)
			require.ErrorContains(t, err, "malformed")
		})
	}
}

func TestFailedWriteLeavesNoTemp(t *testing.T) {
	run := t.TempDir()
	// The marker's path is a non-empty directory: the rename fails.
	require.NoError(t, os.MkdirAll(filepath.Join(Path(run, 9), "x"), 0o700))
	_, err := Write(run, 9, 0)
	require.ErrorContains(t, err, "write marker "+Path(run, 9))
	ents, err := os.ReadDir(run)
	require.NoError(t, err)
	require.Len(t, ents, 1, "only the blocking directory is left")
}

func TestMarkerFields(t *testing.T) {
	run := t.TempDir()
	want := Marker{OS: 2, Attempt: 3, CPUs: 12, Oversubscribe: true}
	_, err := WriteMarker(run, 9, want)
	require.NoError(t, err)
	b, err := os.ReadFile(Path(run, 9))
	require.NoError(t, err)
	// spank/lwk.c parses this text: keep it line-based, os first.
	require.Equal(t, "os=2\nattempt=3\ncpus=12\noversubscribe=1\n", string(b))
	got, err := ReadMarker(run, 9)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// A marker of an older release (os only) is the first attempt.
	require.NoError(t, os.WriteFile(Path(run, 9), []byte("os=4\n"), 0o600))
	got, err = ReadMarker(run, 9)
	require.NoError(t, err)
	require.Equal(t, Marker{OS: 4}, got)
	// Unknown keys are ignored.
	require.NoError(t, os.WriteFile(Path(run, 9), []byte("os=4\nattempt=1\nfuture=7\n"), 0o600))
	got, err = ReadMarker(run, 9)
	require.NoError(t, err)
	require.Equal(t, Marker{OS: 4, Attempt: 1}, got)
}

func TestMarkerLWKNUMA(t *testing.T) {
	run := t.TempDir()
	want := Marker{OS: 1, Attempt: 2, CPUs: 4, LWKNUMA: "0:0,1:1,2:2,4:3"}
	_, err := WriteMarker(run, 42, want)
	require.NoError(t, err)
	b, err := os.ReadFile(Path(run, 42))
	require.NoError(t, err)
	require.Equal(t, "os=1\nattempt=2\ncpus=4\noversubscribe=0\nlwk_numa=0:0,1:1,2:2,4:3\n", string(b))
	got, err := ReadMarker(run, 42)
	require.NoError(t, err)
	require.Equal(t, want, got)
	// Nothing but digits, ':' and ',' reaches the file (a newline would
	// forge a key).
	_, err = WriteMarker(run, 43, Marker{OS: 1, LWKNUMA: "0:0\nos=9"})
	require.ErrorContains(t, err, "bad lwk numa map")
	_, err = os.Stat(Path(run, 43))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = WriteMarker(run, 43, Marker{OS: 1, LWKNUMA: strings.Repeat("1", MaxNUMAMap+1)})
	require.ErrorContains(t, err, "bad lwk numa map")
	require.NoError(t, os.WriteFile(Path(run, 44), []byte("os=1\nlwk_numa=0:0;rm\n"), 0o600))
	_, err = ReadMarker(run, 44)
	require.ErrorContains(t, err, "malformed content")
}
