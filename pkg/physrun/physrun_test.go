package physrun

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

func TestMerge(t *testing.T) {
	tests := []struct {
		name string
		in   []Chunk
		want []Chunk
		err  error
	}{
		{name: "none", in: nil, want: nil},
		{
			name: "adjacent out of order join",
			in: []Chunk{
				{Node: 1, Owner: -1, Start: 0x140400000, Bytes: 4 * mib},
				{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 4 * mib},
				{Node: 1, Owner: -1, Start: 0x140800000, Bytes: 248 * mib},
			},
			want: []Chunk{{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 256 * mib}},
		},
		{
			name: "a gap of one page splits",
			in: []Chunk{
				{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 4 * mib},
				{Node: 1, Owner: -1, Start: 0x140401000, Bytes: 4 * mib},
			},
			want: []Chunk{
				{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 4 * mib},
				{Node: 1, Owner: -1, Start: 0x140401000, Bytes: 4 * mib},
			},
		},
		{
			name: "touching across a node boundary stay apart",
			in: []Chunk{
				{Node: 2, Owner: -1, Start: 0x180000000, Bytes: 4 * mib},
				{Node: 1, Owner: -1, Start: 0x17fc00000, Bytes: 4 * mib},
			},
			want: []Chunk{
				{Node: 1, Owner: -1, Start: 0x17fc00000, Bytes: 4 * mib},
				{Node: 2, Owner: -1, Start: 0x180000000, Bytes: 4 * mib},
			},
		},
		{
			name: "empty chunks dropped",
			in: []Chunk{
				{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 0},
				{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 4 * mib},
			},
			want: []Chunk{{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 4 * mib}},
		},
		{
			name: "overlap refused",
			in: []Chunk{
				{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 8 * mib},
				{Node: 1, Owner: -1, Start: 0x140400000, Bytes: 4 * mib},
			},
			err: ErrOverlap,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Merge(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Merge error %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Merge = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("run %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// pieces cuts [start, start+n*size) into n chunks of size, listed backwards
// as a driver that reserved them in several requests might.
func pieces(node int, start, size uint64, n int) []Chunk {
	var out []Chunk
	for i := n - 1; i >= 0; i-- {
		out = append(out, Chunk{Node: node, Owner: -1, Start: start + uint64(i)*size, Bytes: size})
	}
	return out
}

func TestShare(t *testing.T) {
	tests := []struct {
		name      string
		chunks    []Chunk
		requested uint64
		want      float64
	}{
		{
			// 64 adjacent 4 MiB compound pages: one 256 MiB run.
			name:      "4 MiB pieces merge into a 256 MiB run",
			chunks:    pieces(1, 0x140000000, 4*mib, 64),
			requested: 256 * mib,
			want:      1,
		},
		{
			name:      "one 4 MiB short of 256 MiB counts nothing",
			chunks:    pieces(1, 0x140000000, 4*mib, 63),
			requested: 252 * mib,
			want:      0,
		},
		{
			// Node 1: 512 MiB in one run; node 2: every other 4 MiB page.
			name: "two nodes, one fragmented",
			chunks: append(pieces(1, 0x140000000, 4*mib, 128),
				append(pieces(2, 0x180000000, 4*mib, 1), pieces(2, 0x180800000, 4*mib, 1)...)...),
			requested: 512*mib + 8*mib,
			want:      512.0 / 520.0,
		},
		{
			name:      "more than asked caps at 1",
			chunks:    pieces(3, 0x1c0000000, 4*mib, 80),
			requested: 256 * mib,
			want:      1,
		},
		{
			name:      "nothing requested",
			chunks:    pieces(1, 0x140000000, 4*mib, 64),
			requested: 0,
			want:      0,
		},
		{
			name:      "nothing obtained",
			chunks:    nil,
			requested: gib,
			want:      0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Share(tt.chunks, tt.requested, 256*mib)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Share = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	chunks, err := Read("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 6 {
		t.Fatalf("read %d chunks, want 6: %+v", len(chunks), chunks)
	}
	free := Owned(chunks, FreePool)
	if len(free) != 5 {
		t.Fatalf("%d free-pool chunks, want 5", len(free))
	}
	runs, err := Merge(free)
	if err != nil {
		t.Fatal(err)
	}
	// Node 1: 256 MiB alone (4 MiB in use after it), then
	// 8 MiB + 4 MiB adjacent; node 2: two adjacent 4 MiB pages.
	want := []uint64{256 * mib, 12 * mib, 8 * mib}
	if len(runs) != len(want) {
		t.Fatalf("runs %+v, want sizes %v", runs, want)
	}
	for i, r := range runs {
		if r.Bytes != want[i] {
			t.Errorf("run %d: %d bytes, want %d", i, r.Bytes, want[i])
		}
	}
	if got := BytesInRuns(runs, 256*mib); got != 256*mib {
		t.Errorf("BytesInRuns = %d, want %d", got, 256*mib)
	}
	if got := Longest(runs); got != 256*mib {
		t.Errorf("Longest = %d", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"empty", "", "no header"},
		{"wrong header", "nid owner start size\n", "header"},
		{"short line", "node owner phys bytes\n1 -1 0x1000\n", "4 fields"},
		{"decimal start", "node owner phys bytes\n1 -1 4096 4096\n", "hex"},
		{"bad owner", "node owner phys bytes\n1 -2 0x1000 4096\n", "owner"},
		{"bad size", "node owner phys bytes\n1 -1 0x1000 4k\n", "bytes"},
		{"wraps", "node owner phys bytes\n1 -1 0xfffffffffffff000 8192\n", "wraps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.text), "chunks")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(t.TempDir())
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a root without debugfs: %v, want not-exist", err)
	}
	if err != nil && !strings.Contains(err.Error(), filepath.Join("sys", "kernel", "debug")) {
		t.Errorf("error %v does not name the file", err)
	}
}
