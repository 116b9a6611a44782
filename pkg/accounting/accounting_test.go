package accounting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
)

// nodeRecord is a realistic node record: a 1 h job on 48 LWK CPUs.
func nodeRecord(job uint32, node string, i int) accounting.NodeRecord {
	return accounting.NodeRecord{
		Version: accounting.NodeRecordVersion, JobID: job, Node: node, OS: 0, Final: accounting.FinalEpilog,
		UserSeconds: 172000 + float64(i%97), SystemSeconds: 310.5 + float64(i%13), MaxMemoryBytes: 90<<30 + uint64(i%7)<<20,
		MaxKernelMemoryBytes: 300 << 20, MaxRSSByPageSize: map[string]uint64{"4K": 1 << 30, "2M": 80 << 30, "1G": 8 << 30},
		MaxThreads: 49, Samples: 6, BootSeconds: 4.2 + float64(i%5)/10, TeardownSeconds: 1.3,
		Perf: map[string]uint64{"0x3c": 1e15},
	}
}

func TestMergeSmallJobKeepsEveryNode(t *testing.T) {
	recs := []accounting.NodeRecord{nodeRecord(5, "n2", 1), nodeRecord(5, "n1", 2)}
	recs[1].Final = accounting.FinalLastSample
	recs[0].Events = map[string]int{accounting.EventPanic: 1}
	j, err := accounting.Merge(5, 3, recs, []string{"n3"})
	require.NoError(t, err)
	require.Equal(t, 3, j.Nodes)
	require.Equal(t, 2, j.Reported)
	require.Equal(t, 1, j.Partial)
	require.InDelta(t, 172001+172002, j.UserSeconds, 0.001)
	require.Equal(t, []string{"n1", "n2"}, []string{j.PerNode[0].Node, j.PerNode[1].Node}, "sorted by node")
	require.Equal(t, map[string]int{"panic": 1}, j.Events)
	require.Equal(t, []string{"n2"}, j.EventNodes)
	require.Equal(t, 1, j.Unreachable)
	require.Equal(t, []string{"n3"}, j.UnreachableNodes)
	require.Equal(t, uint64(2e15), j.Perf["0x3c"])
	require.Nil(t, j.Stats)
}

func TestMergeRefusesAnotherJobsRecord(t *testing.T) {
	_, err := accounting.Merge(5, 1, []accounting.NodeRecord{nodeRecord(6, "n1", 0)}, nil)
	require.ErrorContains(t, err, "record of job 6")
}

func TestMergeLargeJobSummarises(t *testing.T) {
	var recs []accounting.NodeRecord
	for i := range 100 {
		recs = append(recs, nodeRecord(9, fmt.Sprintf("n%03d", i), i))
	}
	recs[42].UserSeconds = 5 // a slow node
	j, err := accounting.Merge(9, 100, recs, nil)
	require.NoError(t, err)
	require.Nil(t, j.PerNode)
	u := j.Stats["user_s"]
	require.Equal(t, 5.0, u.Min)
	require.Equal(t, "n042", u.Low[0].Node, "the outlier is named")
	require.Len(t, u.High, accounting.OutlierNodes)
	require.LessOrEqual(t, u.Min, u.Median)
	require.LessOrEqual(t, u.Median, u.Max)
}

// TestRecordSizeBoundedWhateverTheNodeCount: the encoded record of a
// 10,000-node job whose every node had events and half of which did not
// answer stays below MaxEncodedBytes, and decodes to the same record.
func TestRecordSizeBoundedWhateverTheNodeCount(t *testing.T) {
	for _, n := range []int{1, 8, 9, 100, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var recs []accounting.NodeRecord
			var unreachable []string
			for i := range n {
				name := fmt.Sprintf("compute-rack%02d-node%05d", i/400, i)
				if i%2 == 1 && n > 8 {
					unreachable = append(unreachable, name)
					continue
				}
				r := nodeRecord(123456, name, i)
				r.Events = map[string]int{accounting.EventOOM: 1, accounting.EventFreeze: 2, accounting.EventThaw: 2}
				recs = append(recs, r)
			}
			j, err := accounting.Merge(123456, n, recs, unreachable)
			require.NoError(t, err)
			s, err := accounting.Encode(j)
			require.NoError(t, err)
			require.LessOrEqual(t, len(s), accounting.MaxEncodedBytes)
			require.True(t, strings.HasPrefix(s, accounting.Prefix))
			require.NotContains(t, s, `"`)
			require.NotContains(t, s, " ")
			require.Equal(t, strings.ToLower(s), s, "sacctmgr lower-cases what it stores")
			t.Logf("%d nodes: %d bytes", n, len(s))
			back, err := accounting.Decode("admin note " + strings.ToUpper(s))
			require.NoError(t, err)
			want, _ := json.Marshal(j)
			got, _ := json.Marshal(back)
			require.JSONEq(t, string(want), string(got))
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	_, err := accounting.Decode("")
	require.ErrorIs(t, err, accounting.ErrNoRecord)
	_, err = accounting.Decode("lwk9:abc")
	require.ErrorContains(t, err, "unknown version")
	_, err = accounting.Decode("lwk1:!!!")
	require.ErrorContains(t, err, "base32")
	_, err = accounting.Decode("lwk1:nbswy3dp") // "hello"
	require.ErrorContains(t, err, "gzip")
}

// TestGather: bounded concurrency, a per-node timeout, and nodes that do
// not answer usefully listed, not fatal.
func TestGather(t *testing.T) {
	var inFlight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		node := r.Host[:strings.IndexByte(r.Host, '.')]
		if r.URL.Path != "/v1/jobs/77/record" {
			http.Error(w, "bad path", http.StatusBadRequest)
			return
		}
		switch node {
		case "slow":
			<-r.Context().Done()
			return
		case "missing":
			http.NotFound(w, r)
			return
		case "other":
			_ = json.NewEncoder(w).Encode(nodeRecord(78, node, 0))
			return
		}
		time.Sleep(5 * time.Millisecond)
		_ = json.NewEncoder(w).Encode(nodeRecord(77, node, 0))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	g := &accounting.Gatherer{
		Client:      srv.Client(),
		BaseURL:     func(node string) string { return "http://" + node + ".test" },
		Concurrency: 4,
		Timeout:     300 * time.Millisecond,
	}
	g.Client.Transport = loopback(addr)
	nodes := []string{"slow", "missing", "other"}
	for i := range 20 {
		nodes = append(nodes, fmt.Sprintf("n%d", i))
	}
	res, err := g.Gather(context.Background(), 77, nodes)
	require.NoError(t, err)
	require.Len(t, res.Records, 20)
	require.Len(t, res.Unreachable, 3)
	require.Contains(t, res.Unreachable["missing"], "404")
	require.Contains(t, res.Unreachable["other"], "job 78")
	require.Contains(t, res.Unreachable, "slow")
	require.LessOrEqual(t, peak.Load(), int64(4), "concurrency bound")
}
