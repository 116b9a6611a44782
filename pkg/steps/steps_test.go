package steps

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
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

// Journals written before the unused payload fields were dropped still
// decode: the old fields are ignored, the rest is kept.
func TestOldPayloadsDecode(t *testing.T) {
	tests := []struct {
		name string
		data string
		into any
		want any
	}{
		{name: "reserve_cpus with os", data: `{"cpus":[2,3],"os":1}`, into: &CPUs{}, want: &CPUs{CPUs: []int{2, 3}}},
		{name: "reserve_memory with os", data: `{"requested":[{"numa_node":2,"bytes":4194304}],"os":1}`, into: &Memory{},
			want: &Memory{Requested: []ihk.MemChunk{{NUMANode: 2, Bytes: 4 << 20}}}},
		{name: "load_image with image", data: `{"os":4,"image":"/opt/mck.img"}`, into: &OS{}, want: &OS{OS: 4}},
		{name: "set_kernel_args with kargs", data: `{"os":4,"kargs":"hidos"}`, into: &OS{}, want: &OS{OS: 4}},
		{name: "defrag_memory with nodes", data: `{"nodes":"2-11","error":"no job nodes"}`, into: &Defrag{}, want: &Defrag{Err: "no job nodes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := journal.Step{Name: "x", Data: json.RawMessage(tc.data)}
			require.NoError(t, st.DecodeData(tc.into))
			require.Equal(t, tc.want, tc.into)
		})
	}
}
