package journal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestViewReadsWithoutCreating(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	v, err := OpenView(dir)
	require.NoError(t, err)
	ids, err := v.List()
	require.NoError(t, err)
	require.Empty(t, ids)
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "a view creates nothing")

	s, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, s.Write(&Record{JobID: 7, User: "alice"}))
	v, err = OpenView(dir)
	require.NoError(t, err)
	ids, err = v.List()
	require.NoError(t, err)
	require.Equal(t, []uint32{7}, ids)
	rec, err := v.Read(7)
	require.NoError(t, err)
	require.Equal(t, "alice", rec.User)
	_, err = v.Read(8)
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, os.Chmod(dir, 0o777))
	_, err = OpenView(dir)
	require.ErrorContains(t, err, "writable by group or others")
	_, err = OpenView("relative/journal")
	require.Error(t, err)
}
