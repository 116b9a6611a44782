package lwkmode

import (
	"bufio"
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const vectorsFile = "../../testdata/lwk-mode-vectors.txt"

// vector is one line of testdata/lwk-mode-vectors.txt.
type vector struct {
	line    int
	ok      bool
	spec    string
	want    string // normalised spec (ok) or ParseError.Key, "" for "-" (bad)
	message string // substring of the error message (bad)
}

// decodeField undoes the file's encoding: "-" is "", \xHH is a byte.
func decodeField(t *testing.T, line int, s string) string {
	t.Helper()
	if s == "-" {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		require.Lessf(t, i+3, len(s), "line %d: short escape in %q", line, s)
		require.Equalf(t, byte('x'), s[i+1], "line %d: bad escape in %q", line, s)
		v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		require.NoErrorf(t, err, "line %d: bad escape in %q", line, s)
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String()
}

func readVectors(t *testing.T) []vector {
	t.Helper()
	f, err := os.Open(vectorsFile)
	require.NoError(t, err)
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		require.GreaterOrEqualf(t, len(fields), 3, "line %d: want VERDICT SPEC EXPECT: %q", n, text)
		v := vector{line: n, spec: decodeField(t, n, fields[1])}
		switch fields[0] {
		case "ok":
			require.Lenf(t, fields, 3, "line %d: ok takes exactly SPEC NORMALISED", n)
			v.ok = true
			v.want = decodeField(t, n, fields[2])
		case "bad":
			v.want = fields[2]
			if v.want == "-" {
				v.want = ""
			}
			// The message is the rest of the line after KEY, verbatim.
			rest := text
			for _, f := range fields[:3] {
				rest = strings.TrimLeft(rest, " \t")
				rest = rest[len(f):]
			}
			v.message = strings.TrimSpace(rest)
		default:
			t.Fatalf("line %d: unknown verdict %q", n, fields[0])
		}
		vs = append(vs, v)
	}
	require.NoError(t, sc.Err())
	return vs
}

// TestVectors runs every shared test vector through Parse, and checks that
// every accepted spec round-trips through its normalised form.
func TestVectors(t *testing.T) {
	vs := readVectors(t)
	require.GreaterOrEqual(t, len(vs), 60, "the vector file should cover every rule")
	for _, v := range vs {
		t.Run(strconv.Itoa(v.line)+"/"+strconv.Quote(v.spec), func(t *testing.T) {
			req, err := Parse(v.spec)
			if v.ok {
				require.NoError(t, err)
				require.Equal(t, v.want, req.String())
				again, err := Parse(req.String())
				require.NoError(t, err)
				require.Equal(t, req, again, "Parse(r.String()) must give r back")
				return
			}
			require.Error(t, err)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "want *ParseError, got %T", err)
			require.Equal(t, v.spec, pe.Spec)
			require.Equal(t, v.want, pe.Key, "error: %v", err)
			require.Contains(t, err.Error(), v.message)
			require.Equal(t, Request{}, req)
		})
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want Request
	}{
		{name: "bare option", spec: "", want: Request{}},
		{name: "default", spec: "default", want: Request{}},
		{name: "off", spec: "off", want: Request{Off: true}},
		{name: "profile only", spec: "mck", want: Request{Profile: "mck"}},
		{
			name: "everything",
			spec: "mck:kargs=idle_halt+dump_level=24,numa=near,cores=14,mem=10G",
			want: Request{
				Profile: "mck",
				Memory:  Memory{Bytes: 10 << 30},
				Cores:   14,
				NUMA:    NUMANear,
				Kargs:   []string{"idle_halt", "dump_level=24"},
			},
		},
		{name: "percentage", spec: "big:mem=60%", want: Request{Profile: "big", Memory: Memory{Percent: 60}}},
		{name: "lower-case unit", spec: "mck:mem=3k", want: Request{Profile: "mck", Memory: Memory{Bytes: 3072}}},
		{name: "default with options", spec: "default:numa=strict", want: Request{NUMA: NUMAStrict}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.spec)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want string
	}{
		{name: "bad suffix", spec: "mck:mem=8X", want: `lwk-mode "mck:mem=8X": mem: bad size "8X": unknown suffix "X"`},
		{name: "unknown key", spec: "mck:foo=1", want: `lwk-mode "mck:foo=1": foo: unknown key (want mem, cores, numa or kargs)`},
		{name: "newline is quoted", spec: "mck\nx", want: `lwk-mode "mck\nx": forbidden character '\n' at byte 3`},
		{name: "profile", spec: "9x", want: `lwk-mode "9x": profile: bad name "9x": must start with a letter`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.spec)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		name  string
		bytes uint64
		want  string
	}{
		{name: "zero", bytes: 0, want: "0B"},
		{name: "odd bytes", bytes: 1000, want: "1000B"},
		{name: "kibibyte and a half", bytes: 1536, want: "1536B"},
		{name: "4 MiB", bytes: 4 << 20, want: "4M"},
		{name: "1.5 GiB", bytes: 3 << 29, want: "1536M"},
		{name: "10 GiB", bytes: 10 << 30, want: "10G"},
		{name: "2 TiB", bytes: 2 << 40, want: "2T"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, FormatSize(tt.bytes))
		})
	}
}

// TestConfigPieces checks the grammar pieces the node configuration reuses:
// the same rules, and the same words, as inside a specification.
func TestConfigPieces(t *testing.T) {
	names := []struct {
		name, wantErr string
	}{
		{name: "mck"},
		{name: "M.2_x-y"},
		{name: strings.Repeat("p", MaxProfileLen)},
		{name: "", wantErr: "empty profile name"},
		{name: strings.Repeat("p", MaxProfileLen+1), wantErr: "too long"},
		{name: "9mck", wantErr: `bad name "9mck": must start with a letter`},
		{name: "mck+x", wantErr: `'+' not allowed`},
		{name: "default", wantErr: `profile name "default" is reserved`},
		{name: "off", wantErr: `profile name "off" is reserved`},
		{name: "Default", wantErr: `profile name "Default" is reserved`},
	}
	for _, tt := range names {
		err := CheckProfileName(tt.name)
		if tt.wantErr == "" {
			require.NoError(t, err, "profile name %q", tt.name)
		} else {
			require.ErrorContains(t, err, tt.wantErr, "profile name %q", tt.name)
		}
	}

	kargs := []struct {
		token, wantErr string
	}{
		{token: "idle_halt"},
		{token: "dump_level="},
		{token: "a.b-c=d=e"},
		{token: "", wantErr: "empty kernel argument"},
		{token: "=x", wantErr: "must start with a letter, digit or _"},
		{token: "a b", wantErr: `' ' not allowed`},
	}
	for _, tt := range kargs {
		err := CheckKarg(tt.token)
		if tt.wantErr == "" {
			require.NoError(t, err, "karg %q", tt.token)
		} else {
			require.ErrorContains(t, err, tt.wantErr, "karg %q", tt.token)
		}
	}

	sizes := []struct {
		value   string
		want    uint64
		wantErr string
	}{
		{value: "128M", want: 128 << 20},
		{value: "3k", want: 3 << 10},
		{value: "1B", want: 1},
		{value: "128", wantErr: `bad size "128": missing unit (B, K, M, G, T)`},
		{value: "G", wantErr: `bad size "G": want a number with a unit (B, K, M, G, T)`},
		{value: "8X", wantErr: `bad size "8X": unknown suffix "X"`},
		{value: "0M", wantErr: `bad size "0M": must be positive`},
		{value: "16777216T", wantErr: "too large"},
		{value: "50%", wantErr: `unknown suffix "%"`},
	}
	for _, tt := range sizes {
		got, err := ParseSize(tt.value)
		if tt.wantErr == "" {
			require.NoError(t, err, "size %q", tt.value)
			require.Equal(t, tt.want, got)
		} else {
			require.ErrorContains(t, err, tt.wantErr, "size %q", tt.value)
		}
	}
}

// TestLeaf keeps lwkmode a leaf: it imports no package of this module, so
// the node configuration can use its grammar without a cycle.
func TestLeaf(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			require.False(t, strings.HasPrefix(imp.Path.Value, `"github.com/slurm-lwk/slurm-lwk/`), "%s imports %s", name, imp.Path.Value)
		}
		checked++
	}
	require.Positive(t, checked)
}
