package hookserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ErrDeclined: the service started nothing; run the program instead.
var ErrDeclined = errors.New("hook service declined")

// Ask has the service at path run q, copies the hook's output to stderr
// and returns its exit status. It is the Go twin of the plugin's client
// (spank/run.c), for tests and benchmarks. Any error before the service
// accepted wraps ErrDeclined.
func Ask(ctx context.Context, path string, q Request, stderr io.Writer) (int, error) {
	return ask(ctx, path, q, stderr, true)
}

// ask is Ask, which checks that root listens only when rootOnly (the
// tests of the server's side run as any user).
func ask(ctx context.Context, path string, q Request, stderr io.Writer, rootOnly bool) (int, error) {
	msg, err := q.MarshalBinary()
	if err != nil {
		return -1, fmt.Errorf("%w: %w", ErrDeclined, err)
	}
	conn, err := dial(ctx, path)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	if uid, err := PeerUID(conn); rootOnly && (err != nil || uid != 0) {
		return -1, fmt.Errorf("%w: %s: service not root (uid %d, %v)", ErrDeclined, path, uid, err)
	}
	return exchange(ctx, conn, msg, stderr)
}

// dial connects to the service at path; errors wrap ErrDeclined.
func dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDeclined, err)
	}
	return c.(*net.UnixConn), nil
}

// exchange sends the encoded request msg over conn, commits once the
// service accepts, copies the output to stderr and returns the status.
func exchange(ctx context.Context, conn *net.UnixConn, msg []byte, stderr io.Writer) (int, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := conn.Write(msg); err != nil {
		return -1, fmt.Errorf("%w: send: %w", ErrDeclined, err)
	}
	typ, payload, err := readFrame(conn)
	switch {
	case err != nil:
		return -1, fmt.Errorf("%w: %w", ErrDeclined, err)
	case typ == FrameDeclined:
		return -1, fmt.Errorf("%w: %s", ErrDeclined, payload)
	case typ != FrameAccepted:
		return -1, fmt.Errorf("%w: first frame %q", ErrDeclined, typ)
	}
	if _, err := conn.Write([]byte{Commit}); err != nil {
		return -1, fmt.Errorf("%w: commit: %w", ErrDeclined, err)
	}
	_ = conn.SetDeadline(time.Time{})
	for {
		typ, payload, err := readFrame(conn)
		if err != nil {
			return -1, fmt.Errorf("hook service: the connection ended before the hook's status: %w", err)
		}
		switch {
		case typ == FrameOutput:
			_, _ = stderr.Write(payload)
		case typ == FrameExit && len(payload) == 1:
			return int(payload[0]), nil
		default:
			return -1, fmt.Errorf("hook service: frame %q after acceptance", typ)
		}
	}
}
