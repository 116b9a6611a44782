package steps

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
)

func TestOSIndex(t *testing.T) {
	rec := &journal.Record{JobID: 3}
	_, ok := OSIndex(rec)
	require.False(t, ok, "no create_os step")
	require.NoError(t, rec.Begin(CreateOS, nil))
	_, ok = OSIndex(rec)
	require.False(t, ok, "create_os only intended")
	require.NoError(t, rec.Done(CreateOS, OS{OS: 5}))
	idx, ok := OSIndex(rec)
	require.True(t, ok)
	require.Equal(t, 5, idx)
}

func TestNotIHKIsASubsetOfProlog(t *testing.T) {
	for _, s := range NotIHK {
		require.Contains(t, Prolog(), s)
	}
	require.Equal(t, DefragMemory, Prolog()[0], "the optional defragmentation runs first")
	require.Equal(t, All, Prolog()[1:])
}
