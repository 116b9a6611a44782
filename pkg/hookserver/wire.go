package hookserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The wire format. A request is Magic, the payload's length (4 bytes, big
// endian, at most MaxRequest) and the payload: NUL-terminated strings, the
// hook ("prolog" or "epilog"), the lwk.conf path, then the job's
// environment (NAME=VALUE). The service answers with frames: a type byte,
// the payload's length (4 bytes, big endian) and the payload. The first
// frame is FrameAccepted or FrameDeclined. After FrameAccepted the client
// sends the byte Commit, and only then does the hook start: a client that
// gave up waiting for the first frame (and runs the program instead)
// never sends it, so the hook cannot run twice. The client sends nothing
// after it: the service takes anything it reads then, end of file
// included, as the client gone, and cancels the hook. FrameOutput frames
// and one FrameExit follow. spank/run.c (lwk_ask) speaks the client side.
const (
	Magic      = "LWKHOOK1"
	MaxRequest = 1 << 20

	// FrameAccepted (empty): the service will run the hook once the
	// client sends Commit.
	FrameAccepted = 'a'
	// FrameDeclined (why, at most maxDeclined bytes): nothing was started;
	// the client runs the program instead.
	FrameDeclined = 'n'
	// FrameOutput (at most maxOutput bytes): what the hook wrote for
	// slurmd, which the client writes to its stderr.
	FrameOutput = 'o'
	// FrameExit (one byte): the hook's exit status, as the program's.
	FrameExit = 'x'

	// Commit is the client's one byte after FrameAccepted: run it; the
	// client waits for the status from then on, without falling back.
	Commit = 'g'

	maxDeclined = 4096
	maxOutput   = 64 << 10
)

// Hook names in a request.
const (
	HookProlog = "prolog"
	HookEpilog = "epilog"
)

// Request is one hook to run.
type Request struct {
	Hook       string
	ConfigPath string
	Environ    []string
}

// MarshalBinary encodes the request as the client sends it.
func (q Request) MarshalBinary() ([]byte, error) {
	var payload bytes.Buffer
	for _, s := range append([]string{q.Hook, q.ConfigPath}, q.Environ...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("hook request: %q holds a NUL byte", s)
		}
		payload.WriteString(s)
		payload.WriteByte(0)
	}
	if payload.Len() > MaxRequest {
		return nil, fmt.Errorf("hook request: %d bytes, more than %d", payload.Len(), MaxRequest)
	}
	out := make([]byte, 0, len(Magic)+4+payload.Len())
	out = append(out, Magic...)
	out = binary.BigEndian.AppendUint32(out, uint32(payload.Len()))
	return append(out, payload.Bytes()...), nil
}

// errRequest is a request the service cannot read.
var errRequest = errors.New("bad hook request")

// ReadRequest reads one request.
func ReadRequest(r io.Reader) (Request, error) {
	var head [len(Magic) + 4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Request{}, fmt.Errorf("%w: header: %w", errRequest, err)
	}
	if string(head[:len(Magic)]) != Magic {
		return Request{}, fmt.Errorf("%w: not %s", errRequest, Magic)
	}
	n := binary.BigEndian.Uint32(head[len(Magic):])
	if n > MaxRequest {
		return Request{}, fmt.Errorf("%w: %d bytes, more than %d", errRequest, n, MaxRequest)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return Request{}, fmt.Errorf("%w: payload: %w", errRequest, err)
	}
	if n == 0 || payload[n-1] != 0 {
		return Request{}, fmt.Errorf("%w: payload does not end in NUL", errRequest)
	}
	fields := strings.Split(string(payload[:n-1]), "\x00")
	if len(fields) < 2 {
		return Request{}, fmt.Errorf("%w: no hook and lwk.conf", errRequest)
	}
	return Request{Hook: fields[0], ConfigPath: fields[1], Environ: fields[2:]}, nil
}

// writeFrame writes one frame.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	buf := make([]byte, 5, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	_, err := w.Write(append(buf, payload...))
	return err
}

// readFrame reads one frame, refusing one longer than its type allows.
func readFrame(r io.Reader) (byte, []byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if max, known := frameLimit(head[0]); !known || n > max {
		return 0, nil, fmt.Errorf("hook service: frame %q of %d bytes", head[0], n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("hook service: frame %q: %w", head[0], err)
	}
	return head[0], payload, nil
}

// frameLimit is the longest payload of a frame type, and whether the type
// exists.
func frameLimit(typ byte) (uint32, bool) {
	switch typ {
	case FrameAccepted:
		return 0, true
	case FrameDeclined:
		return maxDeclined, true
	case FrameOutput:
		return maxOutput, true
	case FrameExit:
		return 1, true
	}
	return 0, false
}
