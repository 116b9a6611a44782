// Package hookserver lets the node service (lwk-monitor) run jobs' prologs
// and epilogs (package jobhook) for the SPANK plugin, over a unix socket
// only root can reach: a job's prolog and epilog then start no program of
// their own, whose start is most of their cost. The plugin runs lwk-prolog
// and lwk-epilog as before when the socket is not there, when the service
// serves another lwk.conf, or when it declines a request (lwk.conf's
// TestKillAfterStep or the simulator's fault injection, which work on a
// process of their own).
//
// A client going away (slurmd killed the plugin's process at its
// PrologEpilogTimeout) cancels the hook as SIGTERM cancels the program:
// the prolog stops at its next step and the epilog finishes, bounded.
package hookserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobhook"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
)

// SocketName is the socket's name in lwk.conf's RunDir.
const SocketName = "hook.sock"

// requestTimeout bounds reading a request and the commit, and writing
// each frame: a client that stops talking must not hold a goroutine. It
// never bounds the hook itself. A variable for the tests.
var requestTimeout = 10 * time.Second

// Hook runs one hook (jobhook.Prolog or jobhook.Epilog).
type Hook func(context.Context, jobhook.Call) error

// Server runs hooks for root clients.
type Server struct {
	// ConfigPath is the lwk.conf the service serves (absolute); requests
	// that name another are declined.
	ConfigPath string
	Log        *slog.Logger
	// Hooks maps request hook names to what runs them; nil means
	// jobhook's prolog and epilog.
	Hooks map[string]Hook
	// PeerUID is the client's user; nil means SO_PEERCRED. Tests replace it.
	PeerUID func(*net.UnixConn) (int, error)

	wg sync.WaitGroup
}

// Listen creates the socket at path, mode 0600, replacing a stale socket
// left by an earlier run (never any other kind of file, nor a socket a
// running service listens on). Its directory must exist and be root's
// alone (lwknode makes RunDir so). Not safe to call concurrently: it sets
// the process's umask for the bind.
func Listen(path string) (*net.UnixListener, error) {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("hook socket %s: exists and is not a socket", path)
	case err == nil:
		// Only a refused connection makes it stale: replacing a live
		// service's socket would leave that service unreachable, and
		// ours would take its socket file with it when it stops.
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("hook socket %s: another service listens on it", path)
		}
		if !errors.Is(derr, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("hook socket %s: is it stale? %w", path, derr)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("hook socket %s: remove stale: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("hook socket %s: %w", path, err)
	}
	// The mode is set by bind under the umask: no moment when the socket
	// is open to anyone but root.
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("hook socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

// Serve accepts requests until ctx ends, then closes ln and waits for the
// hooks in progress: a prolog or epilog is never left halfway by the
// service stopping.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer s.wg.Wait()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: the plugin runs the
			// programs meanwhile.
			s.Log.Warn("hook socket: accept", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.handle(context.WithoutCancel(ctx), conn)
		}()
	}
}

// handle serves one connection.
func (s *Server) handle(ctx context.Context, conn *net.UnixConn) {
	uid, err := s.peerUID(conn)
	if err != nil || uid != 0 {
		s.Log.Warn("hook socket: client refused: not root", "uid", uid, "err", err)
		return
	}
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	q, err := ReadRequest(conn)
	if err != nil {
		s.decline(conn, err.Error())
		return
	}
	hook, cfg, why := s.admit(q)
	if why != "" {
		s.decline(conn, why)
		return
	}
	if err := writeFrame(deadlined{conn}, FrameAccepted, nil); err != nil {
		s.Log.Warn("hook socket: client gone", "hook", q.Hook, "err", err)
		return
	}
	// Nothing starts before the client commits: one that timed out
	// waiting for FrameAccepted runs the program instead and never does.
	_ = conn.SetReadDeadline(time.Now().Add(requestTimeout))
	var commit [1]byte
	if _, err := io.ReadFull(conn, commit[:]); err != nil || commit[0] != Commit {
		s.Log.Warn("hook socket: client did not commit; nothing run", "hook", q.Hook, "err", err)
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The client sends nothing more: a read returns only when it is gone.
	go func() {
		var b [1]byte
		_, _ = conn.Read(b[:])
		cancel()
	}()
	out := &frameWriter{conn: conn}
	status := 0
	if err := s.run(ctx, hook, jobhook.Call{
		Environ: q.Environ, ConfigPath: s.ConfigPath, Config: cfg, Start: time.Now(), Stderr: out, Resident: true,
	}); err != nil {
		fmt.Fprintf(out, "lwk: %s\n", lwknode.OneLine(err))
		status = 1
	}
	if err := out.frame(FrameExit, []byte{byte(status)}); err != nil {
		s.Log.Warn("hook socket: client gone before the hook's status", "hook", q.Hook, "status", status, "err", err)
	}
}

// run runs the hook; a panic fails it as a crashed program would, without
// taking the service down.
func (s *Server) run(ctx context.Context, hook Hook, c jobhook.Call) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("hook panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error in the node service: %v", r)
		}
	}()
	return hook(ctx, c)
}

// admit decides whether the service runs the request, and why not.
func (s *Server) admit(q Request) (Hook, *config.Config, string) {
	hook := s.hooks()[q.Hook]
	if hook == nil {
		return nil, nil, fmt.Sprintf("unknown hook %q", q.Hook)
	}
	if filepath.Clean(q.ConfigPath) != s.ConfigPath {
		return nil, nil, fmt.Sprintf("the service serves %s, not %s", s.ConfigPath, q.ConfigPath)
	}
	// Loaded per request, as the program would: an edited lwk.conf takes
	// effect for the next job without a restart.
	cfg, err := config.Load(s.ConfigPath)
	if err != nil {
		return nil, nil, err.Error()
	}
	if cfg.TestKillAfterStep != "" {
		return nil, nil, "lwk.conf sets TestKillAfterStep, which kills the prolog's own process"
	}
	if cfg.Backend == config.BackendSim {
		f, _, err := sim.FaultsFromEnv(cfg.SimStateDir)
		if err != nil || !f.Empty() {
			return nil, nil, "the simulator injects faults (or cannot read them), which work on a process of their own"
		}
	}
	return hook, cfg, ""
}

func (s *Server) hooks() map[string]Hook {
	if s.Hooks != nil {
		return s.Hooks
	}
	return map[string]Hook{HookProlog: jobhook.Prolog, HookEpilog: jobhook.Epilog}
}

func (s *Server) decline(conn *net.UnixConn, why string) {
	s.Log.Info("hook socket: declined; the plugin runs the program", "reason", why)
	if len(why) > maxDeclined {
		why = why[:maxDeclined]
	}
	_ = writeFrame(deadlined{conn}, FrameDeclined, []byte(why))
}

func (s *Server) peerUID(conn *net.UnixConn) (int, error) {
	if s.PeerUID != nil {
		return s.PeerUID(conn)
	}
	return PeerUID(conn)
}

// PeerUID is the user of the process at the other end of conn
// (SO_PEERCRED: fixed when it connected).
func PeerUID(conn syscall.Conn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return int(cred.Uid), nil
}

// deadlined bounds each write by requestTimeout.
type deadlined struct{ conn *net.UnixConn }

func (d deadlined) Write(p []byte) (int, error) {
	_ = d.conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	return d.conn.Write(p)
}

// frameWriter sends what the hook writes as FrameOutput frames. The hook
// ignores write errors, as a program ignores a closed stderr.
type frameWriter struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// frame writes one frame of another type, after any output in progress
// (a goroutine the hook left behind may still write).
func (w *frameWriter) frame(typ byte, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return writeFrame(deadlined{w.conn}, typ, payload)
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for rest := p; len(rest) > 0; {
		n := min(len(rest), maxOutput)
		if err := writeFrame(deadlined{w.conn}, FrameOutput, rest[:n]); err != nil {
			return len(p) - len(rest), err
		}
		rest = rest[n:]
	}
	return len(p), nil
}

var _ io.Writer = (*frameWriter)(nil)
