package jobmarker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(Path(run, 7), []byte(tc.content), 0o600))
			_, err := Read(run, 7)
			require.ErrorContains(t, err, "malformed")
		})
	}
}

func TestWriteNUMA(t *testing.T) {
	run := t.TempDir()
	path, err := WriteNUMA(run, 42, 1, "0:0,1:1,2:2,4:3")
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "os=1\nlwk_numa=0:0,1:1,2:2,4:3\n", string(b))
	idx, err := Read(run, 42)
	require.NoError(t, err)
	require.Equal(t, 1, idx)
	_, err = WriteNUMA(run, 43, 1, "0:0\nos=9")
	require.ErrorContains(t, err, "bad lwk numa map")
}
