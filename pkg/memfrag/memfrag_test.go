package memfrag_test

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
)

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

// A q35 guest with 4 NUMA nodes (node 0 below 4 GiB), as Linux 6.1 prints it.
const buddyQ35 = `Node 0, zone      DMA      1      0      0      1      2      1      1      0      1      1      3 
Node 0, zone    DMA32    233    155     82     41     24     11      8      5      4      5    170 
Node 1, zone   Normal    402    211    100     57     30     19      9      4      6    161     78 
Node 2, zone  Movable      0      1      2      0      0      0      0      0      0      1    251 
`

func TestReadBuddyInfo(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, memfrag.BuddyInfoPath, buddyQ35)
	zs, err := memfrag.ReadBuddyInfo(root)
	require.NoError(t, err)
	require.Len(t, zs, 4)
	require.Equal(t, memfrag.BuddyZone{Node: 2, Zone: "Movable", Free: []uint64{0, 1, 2, 0, 0, 0, 0, 0, 0, 1, 251}}, zs[3])
	// 2 MiB blocks: order 9 counts once, order 10 twice.
	require.Equal(t, uint64(161+2*78), zs[2].FreeBlocksOfBytes(2<<20, 4096))
	require.Equal(t, uint64(78), zs[2].FreeBlocksOfBytes(4<<20, 4096))
}

func TestReadBuddyInfoErrors(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"empty", ""},
		{"no comma", "Node 0 zone Normal 1 2 3\n"},
		{"bad node", "Node x, zone Normal 1 2\n"},
		{"bad count", "Node 0, zone Normal 1 z\n"},
		{"no counts", "Node 0, zone Normal\n"},
		{"too many orders", "Node 0, zone Normal 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, root, memfrag.BuddyInfoPath, tc.content)
			_, err := memfrag.ReadBuddyInfo(root)
			var pe *memfrag.ParseError
			require.ErrorAs(t, err, &pe)
			require.Contains(t, pe.Path, "buddyinfo")
		})
	}
	_, err := memfrag.ReadBuddyInfo(t.TempDir())
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// Excerpt of a 6.1 q35 guest's /proc/zoneinfo after onlining node 2's
// blocks movable: Normal and Movable spans overlap.
const zoneinfoQ35 = `Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 16
  pages free     3840
        boost    0
        min      32
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 2906, 2906, 2906, 2906)
  start_pfn:           1
Node 0, zone    DMA32
  pagesets
    cpu: 0
              count: 40
              high:  378
    cpu: 1
              count: 2
              high:  378
  pages free     731446
        spanned  1044480
        present  782304
        managed  744096
  start_pfn:           4096
Node 0, zone   Normal
  pages free     0
        spanned  0
        present  0
        managed  0
  start_pfn:           0
Node 2, zone   Normal
  pages free     60000
        spanned  262144
        present  262144
        managed  254000
  start_pfn:           1310720
Node 2, zone  Movable
  pages free     190000
        spanned  196608
        present  196608
        managed  196608
  start_pfn:           1343488
`

func TestReadZoneInfo(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, memfrag.ZoneInfoPath, zoneinfoQ35)
	zs, err := memfrag.ReadZoneInfo(root)
	require.NoError(t, err)
	require.Len(t, zs, 5)
	require.Equal(t, memfrag.Zone{Node: 0, Name: "DMA32", StartPFN: 4096, Spanned: 1044480, Present: 782304, Managed: 744096, Free: 731446, PerCPU: 42}, zs[1])
	require.Equal(t, []memfrag.Range{{1, 1048576}}, memfrag.NodeRanges(zs, 0))
	require.Equal(t, []memfrag.Range{{1310720, 1572864}}, memfrag.NodeRanges(zs, 2))
	require.Empty(t, memfrag.NodeRanges(zs, 1))

	writeFile(t, root, memfrag.ZoneInfoPath, "Node 0, zone Normal\n        spanned  10\n")
	_, err = memfrag.ReadZoneInfo(root)
	var pe *memfrag.ParseError
	require.ErrorAs(t, err, &pe)
	writeFile(t, root, memfrag.ZoneInfoPath, "Node 0, zone Normal\n        spanned  1x\n")
	_, err = memfrag.ReadZoneInfo(root)
	require.ErrorAs(t, err, &pe)
}

// frames builds a kpageflags image: each span sets a flag word on a range.
type span struct {
	start, n uint64
	flags    uint64
}

func kpageflags(t *testing.T, total uint64, spans ...span) string {
	t.Helper()
	root := t.TempDir()
	b := make([]byte, 8*total)
	for _, s := range spans {
		for i := s.start; i < s.start+s.n; i++ {
			binary.LittleEndian.PutUint64(b[8*i:], s.flags)
		}
	}
	writeFile(t, root, memfrag.KPageFlagsPath, string(b))
	return root
}

// buddy marks free blocks of 2^order frames from start: head KPF_BUDDY,
// tail flagless (the default).
func buddy(start uint64, order uint, count uint64) []span {
	var out []span
	for i := uint64(0); i < count; i++ {
		out = append(out, span{start + i<<order, 1, memfrag.KPFBuddy})
	}
	return out
}

func TestScan(t *testing.T) {
	const slab = memfrag.KPFSlab
	const lru = 1 << 5
	for _, tc := range []struct {
		name    string
		total   uint64
		spans   []span
		ranges  []memfrag.Range
		min     uint64
		free    uint64
		long    uint64
		runs    int
		longest uint64
	}{
		{
			name: "all free order-10 blocks", total: 8192,
			spans:  append(buddy(0, 10, 8), span{0, 0, 0}),
			ranges: []memfrag.Range{{0, 8192}}, min: 4096, free: 8192, long: 8192, runs: 1, longest: 8192,
		},
		{
			name: "one slab page splits a run", total: 8192,
			spans: append(append(buddy(0, 10, 4), span{4096, 1, slab}), append(buddy(4097, 0, 1),
				append(buddy(4098, 1, 1), append(buddy(4100, 2, 1), append(buddy(4104, 3, 1), append(buddy(4112, 4, 1),
					append(buddy(4128, 5, 1), append(buddy(4160, 6, 1), append(buddy(4224, 7, 1), append(buddy(4352, 8, 1),
						append(buddy(4608, 9, 1), buddy(5120, 10, 3)...)...)...)...)...)...)...)...)...)...)...),
			ranges: []memfrag.Range{{0, 8192}}, min: 4096, free: 8191, long: 4096, runs: 1, longest: 4096,
		},
		{
			name: "flagless frames without a buddy head are not free", total: 4096,
			spans:  append(buddy(0, 10, 2), span{2048, 2048, 0}),
			ranges: []memfrag.Range{{0, 4096}}, min: 1024, free: 2048, long: 2048, runs: 1, longest: 2048,
		},
		{
			name: "a buddy head followed by an allocated page is order 0", total: 2048,
			spans:  append(buddy(0, 10, 1), span{1, 1, lru}, span{1024, 1024, 0}),
			ranges: []memfrag.Range{{0, 2048}}, min: 1, free: 1, long: 1, runs: 1, longest: 1,
		},
		{
			name: "unaligned range counts only its frames", total: 4096,
			spans:  buddy(0, 10, 4),
			ranges: []memfrag.Range{{100, 3000}}, min: 1000, free: 2900, long: 2900, runs: 1, longest: 2900,
		},
		{
			name: "runs do not join across ranges; no-page frames break runs", total: 4096,
			spans:  append(buddy(0, 10, 4), span{1024, 1, memfrag.KPFNoPage | memfrag.KPFBuddy}),
			ranges: []memfrag.Range{{0, 2048}, {2048, 4096}}, min: 2048, free: 3072, long: 2048, runs: 1, longest: 2048,
		},
		{
			name: "file shorter than the range", total: 1024,
			spans:  buddy(0, 10, 1),
			ranges: []memfrag.Range{{0, 4096}}, min: 1024, free: 1024, long: 1024, runs: 1, longest: 1024,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := kpageflags(t, tc.total, tc.spans...)
			st, err := memfrag.NewPageFlags(root).Scan(tc.ranges, tc.min)
			require.NoError(t, err)
			require.Equal(t, tc.free, st.FreeFrames, "free")
			require.Equal(t, tc.long, st.LongFrames, "long")
			require.Equal(t, tc.runs, st.LongRuns, "runs")
			require.Equal(t, tc.longest, st.Longest, "longest")
		})
	}
	// What breaks runs is counted by kind.
	root := kpageflags(t, 2048, append(buddy(0, 10, 1), span{1024, 1, slab}, span{1025, 1, memfrag.KPFReserved},
		span{1026, 2, lru | memfrag.KPFAnon}, span{1028, 1, memfrag.KPFPgTable})...)
	st, err := memfrag.NewPageFlags(root).Scan([]memfrag.Range{{0, 2048}}, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"slab": 1, "reserved": 1, "anon": 2, "pgtable": 1, "flagless": 1019}, st.NotFree)
	require.Equal(t, "lru", memfrag.Kind(lru))
	require.Equal(t, "nopage", memfrag.Kind(memfrag.KPFNoPage|memfrag.KPFBuddy))

	_, err = memfrag.NewPageFlags(t.TempDir()).Scan([]memfrag.Range{{0, 1}}, 1)
	require.True(t, errors.Is(err, fs.ErrNotExist))
}
