package plan

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
)

func TestJSONRoundTrip(t *testing.T) {
	p := &Plan{
		JobID: 12, Profile: "mck", Image: "/opt/mck.img", Kargs: "hidos",
		CPUs:       []int{2, 3, 8, 9, 4, 5},
		Memory:     []ihk.MemChunk{{NUMANode: 2, Bytes: 8 * mib}, {NUMANode: 3, Bytes: 4 * mib}},
		NUMAPolicy: lwkmode.NUMANear,
		Proxy:      Proxy{CPUs: cpuset.New(0, 1), MemoryBytes: 128 * mib, CPUQuotaUS: 100000, CPUPeriodUS: 100000, BatchCPUs: cpuset.New(6, 7)},
	}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(b, &fields))
	require.Equal(t, "2-5,8-9", fields["lwk_cpus"])
	require.Equal(t, map[string]any{"cpus": "0-1", "memory_bytes": float64(128 * mib), "cpu_quota_us": float64(100000), "cpu_period_us": float64(100000), "batch_cpus": "6-7", "mems": ""}, fields["proxy"])
	require.Equal(t, []any{map[string]any{"numa_node": float64(2), "bytes": float64(8 * mib)}, map[string]any{"numa_node": float64(3), "bytes": float64(4 * mib)}}, fields["memory"])

	var back Plan
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, p.CPUs, back.CPUs)
	require.True(t, p.Proxy.CPUs.Equals(back.Proxy.CPUs))
	require.True(t, p.Proxy.BatchCPUs.Equals(back.Proxy.BatchCPUs))
	require.Equal(t, p.Memory, back.Memory)

	var human bytes.Buffer
	require.NoError(t, p.Format(&human))
	require.Contains(t, human.String(), "lwk cpus:   2-5,8-9 (assign order 2,3,8,9,4,5)")
}

func TestJSONRejectsInconsistentOrder(t *testing.T) {
	var p Plan
	err := json.Unmarshal([]byte(`{"lwk_cpus":"2-3","lwk_cpu_order":[2,4],"proxy":{"cpus":"0"}}`), &p)
	require.ErrorContains(t, err, "does not match")
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want string
	}{{0, "0 B"}, {4 * mib, "4 MiB"}, {9 * gib, "9 GiB"}, {gib + gib/2, "1.5 GiB"}, {1000, "1000 B"}} {
		require.Equal(t, tc.want, FormatBytes(tc.in))
	}
}
