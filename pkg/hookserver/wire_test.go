package hookserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"
)

// header is a request's magic and payload length as the client sends them.
func header(magic string, n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(magic), n)
}

// frame is one frame as the service sends it, declaring n bytes and
// carrying payload (which may be shorter, for truncated frames).
func frame(typ byte, n uint32, payload string) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{typ}, n), payload...)
}

func TestRequestRoundTrip(t *testing.T) {
	many := make([]string, 20000)
	for i := range many {
		many[i] = fmt.Sprintf("VAR_%d=%d", i, i*i)
	}
	tests := []struct {
		name string
		q    Request
	}{
		{name: "no environment", q: Request{Hook: HookProlog, ConfigPath: "/etc/slurm/lwk.conf"}},
		{name: "job environment", q: Request{Hook: HookEpilog, ConfigPath: "/etc/slurm/lwk.conf", Environ: []string{
			"SLURM_JOB_ID=42", "SLURM_JOB_UID=1000", "LWK_MODE=mck", "PATH=/usr/bin:/bin",
		}}},
		{name: "empty values and empty entries", q: Request{Hook: HookProlog, ConfigPath: "/c", Environ: []string{
			"A=", "", "B==c", "=", "",
		}}},
		{name: "empty hook and path", q: Request{Environ: []string{"X=1"}}},
		{name: "bytes that are not UTF-8", q: Request{Hook: HookProlog, ConfigPath: "/c", Environ: []string{"X=\xff\x01\n\t"}}},
		{name: "many variables", q: Request{Hook: HookProlog, ConfigPath: "/c", Environ: many}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := tc.q.MarshalBinary()
			require.NoError(t, err)
			require.Equal(t, Magic, string(msg[:len(Magic)]))
			require.Equal(t, uint32(len(msg)-len(Magic)-4), binary.BigEndian.Uint32(msg[len(Magic):]), "the length counts the payload")

			// The request is followed by the commit byte on the same
			// stream: ReadRequest must not read past its payload.
			r := bytes.NewReader(append(msg, Commit))
			got, err := ReadRequest(r)
			require.NoError(t, err)
			if diff := cmp.Diff(tc.q, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, []byte{Commit}, rest, "ReadRequest read past the request")
		})
	}
}

// The bytes spank/run.c's build_request sends for the same request.
func TestRequestMarshalBinaryBytes(t *testing.T) {
	msg, err := Request{Hook: HookProlog, ConfigPath: "/c", Environ: []string{"A=1", ""}}.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, "LWKHOOK1\x00\x00\x00\x0fprolog\x00/c\x00A=1\x00\x00", string(msg))
}

func TestRequestMarshalBinaryRefuses(t *testing.T) {
	// fill makes a request whose payload is exactly n bytes: "prolog\0",
	// "/c\0" and one variable.
	fill := func(n int) Request {
		return Request{Hook: HookProlog, ConfigPath: "/c", Environ: []string{"X=" + strings.Repeat("v", n-10-3)}}
	}
	tests := []struct {
		name    string
		q       Request
		wantErr string // "" when the request encodes
	}{
		{name: "NUL in the hook", q: Request{Hook: "pro\x00log", ConfigPath: "/c"}, wantErr: "NUL"},
		{name: "NUL in the lwk.conf path", q: Request{Hook: HookProlog, ConfigPath: "/c\x00"}, wantErr: "NUL"},
		{name: "NUL in a variable", q: Request{Hook: HookProlog, ConfigPath: "/c", Environ: []string{"A=1", "B=\x00"}}, wantErr: "NUL"},
		{name: "one byte over MaxRequest", q: fill(MaxRequest + 1), wantErr: fmt.Sprintf("%d bytes, more than %d", MaxRequest+1, MaxRequest)},
		{name: "exactly MaxRequest", q: fill(MaxRequest)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := tc.q.MarshalBinary()
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Nil(t, msg)
				return
			}
			require.NoError(t, err)
			require.Len(t, msg, len(Magic)+4+MaxRequest)
			// The service takes what the client may send.
			got, err := ReadRequest(bytes.NewReader(msg))
			require.NoError(t, err)
			require.Equal(t, tc.q, got)
		})
	}
}

func TestReadRequestErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantErr string
		wantIs  error // besides errRequest
		// rest is what ReadRequest must leave unread: it never reads a
		// payload it refuses by its length.
		rest string
	}{
		{name: "nothing", in: nil, wantErr: "header", wantIs: io.EOF},
		{name: "short header", in: []byte("LWKHOOK1\x00\x00"), wantErr: "header", wantIs: io.ErrUnexpectedEOF},
		{name: "wrong magic", in: append(header("LWKHOOK2", 3), "a\x00\x00"...), wantErr: "not LWKHOOK1", rest: "a\x00\x00"},
		{name: "lower-case magic", in: append(header("lwkhook1", 3), "a\x00\x00"...), wantErr: "not LWKHOOK1", rest: "a\x00\x00"},
		{name: "length one over MaxRequest", in: append(header(Magic, MaxRequest+1), "prolog\x00"...),
			wantErr: fmt.Sprintf("%d bytes, more than %d", MaxRequest+1, MaxRequest), rest: "prolog\x00"},
		{name: "length 2^32-1", in: append(header(Magic, 1<<32-1), "x"...), wantErr: "more than", rest: "x"},
		{name: "truncated payload", in: append(header(Magic, 20), "prolog\x00/c\x00"...), wantErr: "payload", wantIs: io.ErrUnexpectedEOF},
		{name: "no payload after the header", in: header(Magic, 10), wantErr: "payload", wantIs: io.EOF},
		{name: "zero-length payload", in: header(Magic, 0), wantErr: "does not end in NUL"},
		{name: "payload not NUL-terminated", in: append(header(Magic, 9), "prolog\x00/c"...), wantErr: "does not end in NUL"},
		{name: "only the hook", in: append(header(Magic, 7), "prolog\x00"...), wantErr: "no hook and lwk.conf"},
		{name: "only one empty field", in: append(header(Magic, 1), 0), wantErr: "no hook and lwk.conf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			q, err := ReadRequest(r)
			require.ErrorIs(t, err, errRequest)
			require.ErrorContains(t, err, tc.wantErr)
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			require.Equal(t, Request{}, q)
			rest, _ := io.ReadAll(r)
			require.Equal(t, tc.rest, string(rest))
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []struct {
		typ     byte
		payload []byte
	}{
		{FrameAccepted, nil},
		{FrameOutput, []byte("lwk: job 42 requeued\n")},
		{FrameOutput, nil},
		{FrameOutput, bytes.Repeat([]byte{0, 0xff, 'o'}, maxOutput/3+1)[:maxOutput]},
		{FrameExit, []byte{0}},
		{FrameExit, []byte{255}},
		{FrameDeclined, []byte("unknown hook \"x\"")},
		{FrameDeclined, bytes.Repeat([]byte("n"), maxDeclined)},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		require.NoError(t, writeFrame(&buf, f.typ, f.payload))
	}
	require.Equal(t, "a\x00\x00\x00\x00", buf.String()[:5], "the accepted frame's bytes")
	for i, want := range frames {
		typ, payload, err := readFrame(&buf)
		require.NoError(t, err, "frame %d", i)
		require.Equal(t, string(want.typ), string(typ), "frame %d", i)
		require.Equal(t, len(want.payload), len(payload), "frame %d", i)
		require.True(t, bytes.Equal(want.payload, payload), "frame %d: payload differs", i)
	}
	_, _, err := readFrame(&buf)
	require.ErrorIs(t, err, io.EOF, "nothing after the last frame")
}

func TestReadFrameRefuses(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantErr string
		wantIs  error
		rest    string // left unread: a refused length is never read
	}{
		{name: "nothing", in: nil, wantIs: io.EOF},
		{name: "short header", in: []byte{'o', 0, 0}, wantIs: io.ErrUnexpectedEOF},
		{name: "unknown type", in: frame('z', 0, ""), wantErr: `frame 'z' of 0 bytes`},
		{name: "upper-case type", in: frame('A', 0, ""), wantErr: `frame 'A' of 0 bytes`},
		{name: "the commit byte as a type", in: frame(Commit, 0, ""), wantErr: `frame 'g'`},
		{name: "NUL type", in: frame(0, 0, ""), wantErr: `frame '\x00'`},
		{name: "accepted with a payload", in: frame(FrameAccepted, 1, "x"), wantErr: "of 1 bytes", rest: "x"},
		{name: "declined over its limit", in: frame(FrameDeclined, maxDeclined+1, "why"), wantErr: fmt.Sprintf("of %d bytes", maxDeclined+1), rest: "why"},
		{name: "output over its limit", in: frame(FrameOutput, maxOutput+1, "out"), wantErr: fmt.Sprintf("of %d bytes", maxOutput+1), rest: "out"},
		{name: "output of 2^32-1 bytes", in: frame(FrameOutput, 1<<32-1, "out"), wantErr: "of 4294967295 bytes", rest: "out"},
		{name: "exit of two bytes", in: frame(FrameExit, 2, "\x00\x00"), wantErr: "of 2 bytes", rest: "\x00\x00"},
		{name: "truncated output", in: frame(FrameOutput, 10, "abc"), wantErr: `frame 'o'`, wantIs: io.ErrUnexpectedEOF},
		{name: "truncated declined", in: frame(FrameDeclined, 5, ""), wantErr: `frame 'n'`, wantIs: io.EOF},
		{name: "truncated exit", in: frame(FrameExit, 1, ""), wantErr: `frame 'x'`, wantIs: io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			typ, payload, err := readFrame(r)
			require.Error(t, err)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			}
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			require.Zero(t, typ)
			require.Nil(t, payload)
			rest, _ := io.ReadAll(r)
			require.Equal(t, tc.rest, string(rest))
		})
	}
}

func TestFrameLimit(t *testing.T) {
	tests := []struct {
		typ       byte
		wantMax   uint32
		wantKnown bool
	}{
		{FrameAccepted, 0, true},
		{FrameDeclined, maxDeclined, true},
		{FrameOutput, maxOutput, true},
		{FrameExit, 1, true},
		{Commit, 0, false},
		{'N', 0, false},
		{0, 0, false},
		{0xff, 0, false},
	}
	for _, tc := range tests {
		t.Run(strconv.QuoteRune(rune(tc.typ)), func(t *testing.T) {
			max, known := frameLimit(tc.typ)
			require.Equal(t, tc.wantKnown, known)
			require.Equal(t, tc.wantMax, max)
		})
	}
}

// spank/run.c speaks the client side of the same protocol: its limits and
// bytes must be this package's.
func TestWireMatchesSpankClient(t *testing.T) {
	runH, err := os.ReadFile("../../spank/run.h")
	require.NoError(t, err)
	runC, err := os.ReadFile("../../spank/run.c")
	require.NoError(t, err)
	define := func(name string) string {
		m := regexp.MustCompile(`(?m)^#define ` + name + `\s+(.+?)\s*(?:/\*.*)?$`).FindSubmatch(append(runH, runC...))
		require.NotNil(t, m, "no #define %s in spank/run.[ch]", name)
		return string(m[1])
	}
	tests := []struct {
		define string
		want   string
	}{
		{"LWK_ASK_MAX_REQUEST", "(1 << 20)"},
		{"LWK_ASK_MAX_DECLINE", strconv.Itoa(maxDeclined)},
		{"LWK_ASK_MAX_OUTPUT", strconv.Itoa(maxOutput)},
		{"ASK_MAGIC", strconv.Quote(Magic)},
		{"ASK_COMMIT", strconv.Quote(string(rune(Commit)))},
	}
	require.Equal(t, 1<<20, MaxRequest, "update LWK_ASK_MAX_REQUEST's expected text with MaxRequest")
	for _, tc := range tests {
		t.Run(tc.define, func(t *testing.T) {
			require.Equal(t, tc.want, define(tc.define))
		})
	}
	// The frame types the C client dispatches on.
	for _, typ := range []byte{FrameAccepted, FrameDeclined, FrameOutput, FrameExit} {
		require.Contains(t, string(runC), fmt.Sprintf("case '%c':", typ))
	}
}
