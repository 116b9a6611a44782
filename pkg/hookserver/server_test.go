package hookserver

// No test here calls t.Parallel: several set environment variables (the
// simulator's fault injection is read from the server's environment), set
// the umask or switch the effective uid, all of which are the process's.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobhook"
)

// wait bounds every wait for the other side: a broken server fails the
// test instead of hanging it.
const wait = 10 * time.Second

// nobody is the unprivileged uid the root-only tests act as.
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("needs root: Ask talks only to a root service, and acting as another user needs root (CI runs as root; LWK_FORCE_ROOT_TESTS=1 forces)")
	}
}

// asUser runs fn with the effective uid set to uid; the real and saved
// uids stay root, so the test switches back. Sockets made in fn carry uid
// in SO_PEERCRED. The switch is the whole process's.
func asUser(t *testing.T, uid int, fn func()) {
	t.Helper()
	needRoot(t)
	if err := syscall.Setresuid(-1, uid, -1); err != nil {
		t.Skipf("cannot set the effective uid to %d (no CAP_SETUID?): %v", uid, err)
	}
	defer func() {
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			panic(fmt.Sprintf("cannot switch back to root: %v", err)) // the rest of the tests would run as uid
		}
	}()
	fn()
}

// shortTempDir is a temporary directory whose path leaves room for a
// socket's name in sun_path (108 bytes), which t.TempDir's, named after
// the (sub)test, may not.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hs")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// socketPair returns the two ends of a connected unix stream socket.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// node is the lwk.conf a test's server serves: the simulated backend, its
// state in a directory of its own.
type node struct {
	conf     string // absolute path of lwk.conf
	stateDir string // SimStateDir
}

// newNode writes the simulator's lwk.conf, with extra lines. It also
// clears the simulator's fault variables, which the server reads from its
// own environment.
func newNode(t *testing.T, extra string) node {
	t.Helper()
	dir := t.TempDir()
	n := node{conf: filepath.Join(dir, "lwk.conf"), stateDir: filepath.Join(dir, "sim")}
	require.NoError(t, os.Mkdir(n.stateDir, 0o755))
	n.write(t, fmt.Sprintf("IHKBackend=sim\nOSCores=0\nSimStateDir=%s\nProfile=p Image=/k.img Kargs=hidos\n", n.stateDir)+extra)
	n.mustLoad(t)
	t.Setenv(sim.FaultEnv, "")
	t.Setenv(sim.CrashEnv, "")
	return n
}

// write replaces lwk.conf with text.
func (n node) write(t *testing.T, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(n.conf, []byte(text), 0o644))
}

// mustLoad requires that lwk.conf loads: a case about what a valid file
// says must not pass on a parse error naming the same key.
func (n node) mustLoad(t *testing.T) {
	t.Helper()
	_, err := config.Load(n.conf)
	require.NoError(t, err, "the test's lwk.conf must load")
}

// writeFaults writes the simulator's faults file with mode perm.
func (n node) writeFaults(t *testing.T, text string, perm os.FileMode) {
	t.Helper()
	path := filepath.Join(n.stateDir, sim.FaultsFile)
	require.NoError(t, os.WriteFile(path, []byte(text), perm))
	require.NoError(t, os.Chmod(path, perm)) // past the umask
}

// rootPeer is a PeerUID that takes every client for root, so that the
// tests do not depend on who runs them.
func rootPeer(*net.UnixConn) (int, error) { return 0, nil }

// calls records a fake hook's runs.
type calls struct {
	mu      sync.Mutex
	got     []jobhook.Call
	ctxErrs []error // the hook's ctx.Err() when it returned
}

// hook wraps h to record its calls.
func (c *calls) hook(h Hook) Hook {
	return func(ctx context.Context, call jobhook.Call) error {
		c.mu.Lock()
		c.got = append(c.got, call)
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.ctxErrs = append(c.ctxErrs, ctx.Err())
			c.mu.Unlock()
		}()
		return h(ctx, call)
	}
}

func (c *calls) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// only returns the one call made, and its context's error at its end.
func (c *calls) only(t *testing.T) (jobhook.Call, error) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Len(t, c.got, 1, "hook runs")
	require.Len(t, c.ctxErrs, 1, "hook returns")
	return c.got[0], c.ctxErrs[0]
}

// say is a hook that writes msg to slurmd and succeeds.
func say(msg string) Hook {
	return func(_ context.Context, c jobhook.Call) error {
		_, _ = io.WriteString(c.Stderr, msg)
		return nil
	}
}

// serving is a Server serving on a socket in a directory of its own.
type serving struct {
	sock   string
	cancel context.CancelFunc // ends Serve's context
	done   chan struct{}      // closed when Serve returned
	err    error              // Serve's result, once done
}

// start runs s.Serve on a new socket until the test ends. A nil s.Log
// logs to the test's output.
func start(t *testing.T, s *Server) *serving {
	t.Helper()
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ln, err := Listen(filepath.Join(shortTempDir(t), SocketName))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	sv := &serving{sock: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sv.done)
		sv.err = s.Serve(ctx, ln)
	}()
	t.Cleanup(func() { sv.stop(t) })
	return sv
}

// stop ends Serve's context and waits for it to return, which it does
// once every connection's handler has: a test counts a hook's runs after
// stop.
func (sv *serving) stop(t *testing.T) {
	t.Helper()
	sv.cancel()
	select {
	case <-sv.done:
	case <-time.After(wait):
		t.Fatalf("Serve did not return within %s of its context's end", wait)
	}
	require.NoError(t, sv.err, "Serve")
}

// askFunc is Ask's signature.
type askFunc func(ctx context.Context, path string, q Request, stderr io.Writer) (int, error)

// wireAsk is Ask without its check that root listens, so that the
// server's side is tested whoever runs the tests.
func wireAsk(ctx context.Context, path string, q Request, stderr io.Writer) (int, error) {
	return ask(ctx, path, q, stderr, false)
}

// forClients runs fn with each client: wireAsk, and Ask where root runs
// the tests (Ask talks only to a root service).
func forClients(t *testing.T, fn func(t *testing.T, ask askFunc)) {
	t.Helper()
	t.Run("wire", func(t *testing.T) { fn(t, wireAsk) })
	t.Run("Ask", func(t *testing.T) {
		needRoot(t)
		fn(t, Ask)
	})
}

// dialRaw connects to sock and sends raw; every read and write on the
// connection is bounded by wait.
func dialRaw(t *testing.T, sock string, raw []byte) *net.UnixConn {
	t.Helper()
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(wait)))
	if len(raw) > 0 {
		_, err = conn.Write(raw)
		require.NoError(t, err)
	}
	return conn
}

func marshal(t *testing.T, q Request) []byte {
	t.Helper()
	msg, err := q.MarshalBinary()
	require.NoError(t, err)
	return msg
}

// requireClosed reads from conn and requires that the service closed it
// without a frame: end of file, or a reset when it left unread what the
// client sent.
func requireClosed(t *testing.T, conn *net.UnixConn) {
	t.Helper()
	typ, payload, err := readFrame(conn)
	require.Error(t, err, "got frame %q %q", typ, payload)
	require.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "want end of file or a reset, got %v", err)
}

// requireOutput compares outputs, saying only where they differ when they
// are long.
func requireOutput(t *testing.T, want, got string) {
	t.Helper()
	if len(want) < 200 && len(got) < 200 {
		require.Equal(t, want, got, "output")
		return
	}
	if want != got {
		i := 0
		for i < len(want) && i < len(got) && want[i] == got[i] {
			i++
		}
		t.Fatalf("output: %d bytes, want %d; first difference at byte %d", len(got), len(want), i)
	}
}

func TestServeRunsHook(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", (200<<10)/16) // 200 KiB: four frames
	var lines strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	tests := []struct {
		name       string
		hook       Hook
		wantStatus int
		wantOutput string
	}{
		{name: "output and success", hook: say("lwk: job 42: nothing to boot\n"), wantOutput: "lwk: job 42: nothing to boot\n"},
		{name: "no output", hook: say("")},
		{
			name:       "error",
			hook:       func(context.Context, jobhook.Call) error { return errors.New("boot os 0: EBUSY") },
			wantStatus: 1, wantOutput: "lwk: boot os 0: EBUSY\n",
		},
		{
			name:       "error of several lines, on one",
			hook:       func(context.Context, jobhook.Call) error { return errors.New("a\nb\r\nc") },
			wantStatus: 1, wantOutput: "lwk: a; b; c\n",
		},
		{
			name: "output, then an error",
			hook: func(_ context.Context, c jobhook.Call) error {
				_, _ = io.WriteString(c.Stderr, "lwk: job 42: requeued\n")
				return fmt.Errorf("drain: %w", errors.New("scontrol: exit 1"))
			},
			wantStatus: 1, wantOutput: "lwk: job 42: requeued\nlwk: drain: scontrol: exit 1\n",
		},
		{
			name:       "panic",
			hook:       func(context.Context, jobhook.Call) error { panic("boom") },
			wantStatus: 1, wantOutput: "lwk: internal error in the node service: boom\n",
		},
		{
			name: "runtime panic after output",
			hook: func(_ context.Context, c jobhook.Call) error {
				_, _ = io.WriteString(c.Stderr, "half\n")
				var none []string
				_ = none[len(c.Environ)]
				return nil
			},
			wantStatus: 1, wantOutput: "half\nlwk: internal error in the node service: runtime error: index out of range [4] with length 0\n",
		},
		{name: "200 KiB of output in one write", hook: say(big), wantOutput: big},
		{name: "1000 small writes", hook: func(_ context.Context, c jobhook.Call) error {
			for i := range 1000 {
				fmt.Fprintf(c.Stderr, "line %d\n", i)
			}
			return nil
		}, wantOutput: lines.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forClients(t, func(t *testing.T, ask askFunc) {
				n := newNode(t, "")
				var prolog, epilog calls
				sv := start(t, &Server{
					ConfigPath: n.conf,
					Hooks:      map[string]Hook{HookProlog: prolog.hook(tc.hook), HookEpilog: epilog.hook(say("epilog\n"))},
					PeerUID:    rootPeer,
				})
				env := []string{"SLURM_JOB_ID=42", "EMPTY=", "", "LWK_MODE=mck"}
				before := time.Now()
				var out bytes.Buffer
				status, err := ask(context.Background(), sv.sock, Request{Hook: HookProlog, ConfigPath: n.conf, Environ: env}, &out)
				require.NoError(t, err)
				require.Equal(t, tc.wantStatus, status, "status; output %q", out.String())
				requireOutput(t, tc.wantOutput, out.String())

				// The service survives whatever the hook did.
				out.Reset()
				status, err = ask(context.Background(), sv.sock, Request{Hook: HookEpilog, ConfigPath: n.conf}, &out)
				require.NoError(t, err)
				require.Equal(t, 0, status)
				require.Equal(t, "epilog\n", out.String())

				sv.stop(t)
				require.Equal(t, 1, epilog.n())
				call, ctxErr := prolog.only(t)
				require.NoError(t, ctxErr, "the hook's context ended while its client waited")
				require.Equal(t, env, call.Environ)
				require.Equal(t, n.conf, call.ConfigPath)
				require.NotNil(t, call.Config, "the service passes the lwk.conf it loaded")
				require.Equal(t, config.BackendSim, call.Config.Backend)
				require.Equal(t, n.stateDir, call.Config.SimStateDir)
				require.True(t, call.Resident)
				require.False(t, call.Verbose)
				require.NotNil(t, call.Stderr)
				require.False(t, call.Start.Before(before), "Start %v is before the request (%v)", call.Start, before)
			})
		})
	}
}

// noHook stands for an empty hook name in TestServeAdmit's table, where
// an empty field means the prolog.
const noHook = "\x00"

// TestServeAdmit is which requests the service runs, and why it declines
// the others: the client then runs the program, so the hook must not have
// run.
func TestServeAdmit(t *testing.T) {
	tests := []struct {
		name string
		// setup changes the node after the server started, and returns
		// the request's lwk.conf path; nil sends the served path.
		setup   func(t *testing.T, n node) string
		hook    string // HookProlog when empty; noHook for an empty name
		decline string // what the reason says; "" when served
		// check looks at the error further.
		check func(t *testing.T, n node, err error)
	}{
		{name: "the served lwk.conf"},
		{name: "the served lwk.conf, with dot", setup: func(_ *testing.T, n node) string {
			return filepath.Dir(n.conf) + "/./" + filepath.Base(n.conf)
		}},
		{name: "the served lwk.conf, with a double slash", setup: func(_ *testing.T, n node) string {
			return filepath.Dir(n.conf) + "//" + filepath.Base(n.conf)
		}},
		{name: "the epilog", hook: HookEpilog},
		{name: "unknown hook", hook: "teardown", decline: `unknown hook "teardown"`},
		{name: "hook names are case-sensitive", hook: "Prolog", decline: `unknown hook "Prolog"`},
		{name: "empty hook", hook: noHook, decline: `unknown hook ""`},
		{name: "another lwk.conf", setup: func(*testing.T, node) string { return "/etc/slurm/lwk.conf" },
			check: func(t *testing.T, n node, err error) {
				require.ErrorContains(t, err, "the service serves "+n.conf+", not /etc/slurm/lwk.conf")
			}},
		{name: "a relative path", setup: func(*testing.T, node) string { return "lwk.conf" }, decline: "not lwk.conf"},
		{name: "a symlink to the served lwk.conf", setup: func(t *testing.T, n node) string {
			link := filepath.Join(t.TempDir(), "lwk.conf")
			require.NoError(t, os.Symlink(n.conf, link))
			return link
		}, decline: "the service serves"},
		{name: "lwk.conf no longer loads", setup: func(t *testing.T, n node) string {
			n.write(t, "IHKBackend=bogus\n")
			return n.conf
		}, check: func(t *testing.T, n node, err error) {
			require.ErrorContains(t, err, n.conf)
			require.ErrorContains(t, err, "IHKBackend")
		}},
		{name: "lwk.conf removed", setup: func(t *testing.T, n node) string {
			require.NoError(t, os.Remove(n.conf))
			return n.conf
		}, decline: "load config"},
		{name: "TestKillAfterStep", setup: func(t *testing.T, n node) string {
			b, err := os.ReadFile(n.conf)
			require.NoError(t, err)
			n.write(t, string(b)+"TestKillAfterStep=boot\n")
			n.mustLoad(t)
			return n.conf
		}, decline: "lwk.conf sets TestKillAfterStep"},
		{name: "a fault in the faults file", setup: func(t *testing.T, n node) string {
			n.writeFaults(t, "fault reserve_cpus\n", 0o644)
			return n.conf
		}, decline: "the simulator injects faults"},
		{name: "a crash in the faults file", setup: func(t *testing.T, n node) string {
			n.writeFaults(t, "crash create_os\n", 0o600)
			return n.conf
		}, decline: "the simulator injects faults"},
		{name: "a faults file that does not parse", setup: func(t *testing.T, n node) string {
			n.writeFaults(t, "explode now\n", 0o644)
			return n.conf
		}, decline: "cannot read them"},
		{name: "a faults file of comments only", setup: func(t *testing.T, n node) string {
			n.writeFaults(t, "# fault reserve_cpus\n\n", 0o644)
			return n.conf
		}},
		{name: "a faults file others may write, which the simulator ignores", setup: func(t *testing.T, n node) string {
			n.writeFaults(t, "fault reserve_cpus\n", 0o666)
			return n.conf
		}},
		{name: "LWK_SIM_FAULT", setup: func(t *testing.T, n node) string {
			t.Setenv(sim.FaultEnv, "reserve_cpus:EBUSY")
			return n.conf
		}, decline: "the simulator injects faults"},
		{name: "LWK_SIM_CRASH", setup: func(t *testing.T, n node) string {
			t.Setenv(sim.CrashEnv, "create_os")
			return n.conf
		}, decline: "the simulator injects faults"},
		{name: "LWK_SIM_FAULT that does not parse", setup: func(t *testing.T, n node) string {
			t.Setenv(sim.FaultEnv, "no_such_operation")
			return n.conf
		}, decline: "cannot read them"},
		{name: "LWK_SIM_FAULT with the real backend, which never reads it", setup: func(t *testing.T, n node) string {
			n.write(t, "IHKBackend=ihk\nOSCores=0\nProfile=p Image=/k.img Kargs=hidos\n")
			n.mustLoad(t)
			t.Setenv(sim.FaultEnv, "reserve_cpus")
			n.writeFaults(t, "fault reserve_cpus\n", 0o644)
			return n.conf
		}},
		{name: "a lwk.conf path longer than a declined frame", setup: func(*testing.T, node) string {
			return strings.Repeat("/x", 5000)
		}, check: func(t *testing.T, _ node, err error) {
			why, ok := strings.CutPrefix(err.Error(), ErrDeclined.Error()+": ")
			require.True(t, ok, "%v", err)
			require.Len(t, why, maxDeclined, "the reason is cut to what a FrameDeclined holds")
			require.True(t, strings.HasPrefix(why, "the service serves "), why)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forClients(t, func(t *testing.T, ask askFunc) {
				n := newNode(t, "")
				var prolog, epilog calls
				sv := start(t, &Server{
					ConfigPath: n.conf,
					Hooks:      map[string]Hook{HookProlog: prolog.hook(say("ran\n")), HookEpilog: epilog.hook(say("ran\n"))},
					PeerUID:    rootPeer,
				})
				path := n.conf
				if tc.setup != nil {
					path = tc.setup(t, n)
				}
				hook := tc.hook
				switch hook {
				case "":
					hook = HookProlog
				case noHook:
					hook = ""
				}
				var out bytes.Buffer
				status, err := ask(context.Background(), sv.sock, Request{Hook: hook, ConfigPath: path, Environ: []string{"SLURM_JOB_ID=7"}}, &out)
				sv.stop(t)
				if tc.decline == "" && tc.check == nil {
					require.NoError(t, err)
					require.Equal(t, 0, status)
					require.Equal(t, "ran\n", out.String())
					require.Equal(t, 1, prolog.n()+epilog.n())
					// The hook gets the path the configuration was
					// loaded from, however the request spelled it.
					ran := append(prolog.got, epilog.got...)
					require.Equal(t, n.conf, ran[0].ConfigPath)
					return
				}
				require.ErrorIs(t, err, ErrDeclined)
				require.ErrorContains(t, err, tc.decline)
				if tc.check != nil {
					tc.check(t, n, err)
				}
				require.Equal(t, -1, status)
				require.Empty(t, out.String())
				require.Zero(t, prolog.n()+epilog.n(), "a declined request ran its hook")
			})
		})
	}
}

// An edited lwk.conf takes effect at the next request, without a restart.
func TestServeLoadsConfigPerRequest(t *testing.T) {
	n := newNode(t, "")
	var prolog calls
	sv := start(t, &Server{ConfigPath: n.conf, Hooks: map[string]Hook{HookProlog: prolog.hook(say(""))}, PeerUID: rootPeer})
	good, err := os.ReadFile(n.conf)
	require.NoError(t, err)
	q := Request{Hook: HookProlog, ConfigPath: n.conf}

	status, err := wireAsk(context.Background(), sv.sock, q, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 0, status)

	n.write(t, string(good)+"TestKillAfterStep=boot\n")
	n.mustLoad(t)
	_, err = wireAsk(context.Background(), sv.sock, q, io.Discard)
	require.ErrorIs(t, err, ErrDeclined)
	require.ErrorContains(t, err, "lwk.conf sets TestKillAfterStep")

	n.write(t, string(good))
	status, err = wireAsk(context.Background(), sv.sock, q, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 0, status)
	sv.stop(t)
	require.Equal(t, 2, prolog.n())
}

// A request the service cannot read is declined with a reason, and the
// connection then closed; the service goes on serving.
func TestServeDeclinesMalformedRequest(t *testing.T) {
	tests := []struct {
		name      string
		raw       []byte
		closeSend bool // the client then shuts its side down
		decline   string
	}{
		{name: "wrong magic", raw: append(header("LWKHOOK0", 3), "a\x00\x00"...), decline: "not LWKHOOK1"},
		{name: "length over MaxRequest", raw: header(Magic, MaxRequest+1), decline: fmt.Sprintf("more than %d", MaxRequest)},
		{name: "zero-length payload", raw: header(Magic, 0), decline: "does not end in NUL"},
		{name: "payload not NUL-terminated", raw: append(header(Magic, 9), "prolog\x00/c"...), decline: "does not end in NUL"},
		{name: "only the hook", raw: append(header(Magic, 7), "prolog\x00"...), decline: "no hook and lwk.conf"},
		{name: "truncated payload", raw: append(header(Magic, 100), "prolog\x00"...), closeSend: true, decline: "payload: unexpected EOF"},
		{name: "short header", raw: []byte(Magic), closeSend: true, decline: "header: unexpected EOF"},
		{name: "nothing", closeSend: true, decline: "header: EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, "")
			var prolog calls
			sv := start(t, &Server{ConfigPath: n.conf, Hooks: map[string]Hook{HookProlog: prolog.hook(say(""))}, PeerUID: rootPeer})

			conn := dialRaw(t, sv.sock, tc.raw)
			if tc.closeSend {
				require.NoError(t, conn.CloseWrite())
			}
			typ, payload, err := readFrame(conn)
			require.NoError(t, err)
			require.Equal(t, string(rune(FrameDeclined)), string(typ))
			require.Contains(t, string(payload), errRequest.Error())
			require.Contains(t, string(payload), tc.decline)
			requireClosed(t, conn)

			status, err := wireAsk(context.Background(), sv.sock, Request{Hook: HookProlog, ConfigPath: n.conf}, io.Discard)
			require.NoError(t, err)
			require.Equal(t, 0, status)
			sv.stop(t)
			require.Equal(t, 1, prolog.n(), "only the well-formed request ran")
		})
	}
}

// A client that is not root gets no frame at all: the connection is
// closed before the request is read.
func TestServeRefusesPeerNotRoot(t *testing.T) {
	tests := []struct {
		name string
		uid  int
		err  error
	}{
		{name: "uid 1000", uid: 1000},
		{name: "uid 65534", uid: nobody},
		{name: "credentials unknown", uid: -1, err: errors.New("SO_PEERCRED: bad file descriptor")},
		{name: "uid 0 with an error", uid: 0, err: errors.New("SO_PEERCRED: oops")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, "")
			var prolog calls
			var peers atomic.Int32
			sv := start(t, &Server{
				ConfigPath: n.conf,
				Hooks:      map[string]Hook{HookProlog: prolog.hook(say("ran\n"))},
				// The first client is the one refused; the next is root.
				PeerUID: func(c *net.UnixConn) (int, error) {
					if c == nil {
						panic("PeerUID of a nil connection")
					}
					if peers.Add(1) == 1 {
						return tc.uid, tc.err
					}
					return 0, nil
				},
			})
			q := Request{Hook: HookProlog, ConfigPath: n.conf}

			conn := dialRaw(t, sv.sock, nil)
			// The request and the commit at once: a server that skipped
			// the check would run the hook. Either write may fail once the
			// server closed its end.
			_, _ = conn.Write(append(marshal(t, q), Commit))
			requireClosed(t, conn)

			var out bytes.Buffer
			status, err := wireAsk(context.Background(), sv.sock, q, &out)
			require.NoError(t, err)
			require.Equal(t, 0, status)
			require.Equal(t, "ran\n", out.String())
			sv.stop(t)
			require.Equal(t, int32(2), peers.Load())
			require.Equal(t, 1, prolog.n(), "the refused client's hook ran")
		})
	}
}

// Without a PeerUID stub the server asks the kernel (SO_PEERCRED) who the
// client is.
func TestServeDefaultPeerUID(t *testing.T) {
	t.Run("this process", func(t *testing.T) {
		n := newNode(t, "")
		var prolog calls
		sv := start(t, &Server{ConfigPath: n.conf, Hooks: map[string]Hook{HookProlog: prolog.hook(say(""))}})
		status, err := wireAsk(context.Background(), sv.sock, Request{Hook: HookProlog, ConfigPath: n.conf}, io.Discard)
		sv.stop(t)
		if os.Geteuid() == 0 {
			require.NoError(t, err)
			require.Equal(t, 0, status)
			require.Equal(t, 1, prolog.n())
			return
		}
		require.ErrorIs(t, err, ErrDeclined)
		require.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "want the connection closed, got %v", err)
		require.Zero(t, prolog.n(), "a client not root ran a hook")
	})

	// handleOn runs the server's handler on one end of a socket pair and
	// returns what a client sending a request and the commit reads on the
	// other end: the frame types, and the error that ended the reading.
	handleOn := func(t *testing.T, srv *Server, q Request, server, client *net.UnixConn) (string, error) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer server.Close() // as Serve does
			srv.handle(context.Background(), server)
		}()
		require.NoError(t, client.SetDeadline(time.Now().Add(wait)))
		_, _ = client.Write(append(marshal(t, q), Commit))
		var types []byte
		var err error
		for {
			var typ byte
			if typ, _, err = readFrame(client); err != nil {
				break
			}
			types = append(types, typ)
		}
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatal("the handler did not return")
		}
		return string(types), err
	}

	t.Run("root", func(t *testing.T) {
		needRoot(t)
		n := newNode(t, "")
		var prolog calls
		srv := &Server{ConfigPath: n.conf, Log: slog.New(slog.DiscardHandler), Hooks: map[string]Hook{HookProlog: prolog.hook(say("ran\n"))}}
		server, client := socketPair(t)
		types, err := handleOn(t, srv, Request{Hook: HookProlog, ConfigPath: n.conf}, server, client)
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, "aox", types)
		require.Equal(t, 1, prolog.n())
	})
	t.Run("another user", func(t *testing.T) {
		n := newNode(t, "")
		var prolog calls
		srv := &Server{ConfigPath: n.conf, Log: slog.New(slog.DiscardHandler), Hooks: map[string]Hook{HookProlog: prolog.hook(say("ran\n"))}}
		var server, client *net.UnixConn
		asUser(t, nobody, func() { server, client = socketPair(t) })
		uid, err := PeerUID(server)
		require.NoError(t, err)
		require.Equal(t, nobody, uid)
		types, err := handleOn(t, srv, Request{Hook: HookProlog, ConfigPath: n.conf}, server, client)
		require.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "want the connection closed, got %v", err)
		require.Empty(t, types, "a client not root got frames")
		require.Zero(t, prolog.n(), "a client not root ran a hook")
	})
}

// Nothing runs before the client commits: a client that timed out waiting
// for FrameAccepted runs the program instead.
func TestServeRunsNothingWithoutCommit(t *testing.T) {
	tests := []struct {
		name string
		// after acts once FrameAccepted was read; it reports whether the
		// server's end can be watched closing.
		after func(t *testing.T, conn *net.UnixConn) bool
	}{
		{name: "client closes", after: func(t *testing.T, conn *net.UnixConn) bool {
			require.NoError(t, conn.Close())
			return false
		}},
		{name: "client shuts down its sending side", after: func(t *testing.T, conn *net.UnixConn) bool {
			require.NoError(t, conn.CloseWrite())
			return true
		}},
		{name: "client sends another byte", after: func(t *testing.T, conn *net.UnixConn) bool {
			_, err := conn.Write([]byte{'G'})
			require.NoError(t, err)
			return true
		}},
		{name: "client sends a NUL", after: func(t *testing.T, conn *net.UnixConn) bool {
			_, err := conn.Write([]byte{0})
			require.NoError(t, err)
			return true
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, "")
			var prolog calls
			sv := start(t, &Server{ConfigPath: n.conf, Hooks: map[string]Hook{HookProlog: prolog.hook(say("ran\n"))}, PeerUID: rootPeer})
			q := Request{Hook: HookProlog, ConfigPath: n.conf}

			conn := dialRaw(t, sv.sock, marshal(t, q))
			typ, payload, err := readFrame(conn)
			require.NoError(t, err)
			require.Equal(t, string(rune(FrameAccepted)), string(typ))
			require.Empty(t, payload)
			if tc.after(t, conn) {
				requireClosed(t, conn) // and so the handler is done
			}

			// A committed request runs: exactly one run in all.
			status, err := wireAsk(context.Background(), sv.sock, q, io.Discard)
			require.NoError(t, err)
			require.Equal(t, 0, status)
			sv.stop(t)
			require.Equal(t, 1, prolog.n(), "the uncommitted request ran its hook")
		})
	}
}

// A client going away (slurmd killed it at PrologEpilogTimeout) cancels
// the hook's context; one that waits does not.
func TestServeCancelsHookWhenClientGoes(t *testing.T) {
	n := newNode(t, "")
	started := make(chan struct{})
	ended := make(chan error, 1)
	sv := start(t, &Server{
		ConfigPath: n.conf,
		Hooks: map[string]Hook{HookProlog: func(ctx context.Context, c jobhook.Call) error {
			close(started)
			select {
			case <-ctx.Done():
				ended <- ctx.Err()
			case <-time.After(wait):
				ended <- errors.New("the hook's context was not cancelled")
			}
			_, _ = io.WriteString(c.Stderr, "stopped\n") // to nobody: must not block or panic
			return ctx.Err()
		}},
		PeerUID: rootPeer,
	})
	conn := dialRaw(t, sv.sock, marshal(t, Request{Hook: HookProlog, ConfigPath: n.conf}))
	typ, _, err := readFrame(conn)
	require.NoError(t, err)
	require.Equal(t, string(rune(FrameAccepted)), string(typ))
	_, err = conn.Write([]byte{Commit})
	require.NoError(t, err)
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("the committed hook did not start")
	}
	require.NoError(t, conn.Close())
	select {
	case err := <-ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * wait):
		t.Fatal("the hook did not end")
	}
	sv.stop(t)
}

// Serve returns once its context ends and the hooks in progress finished;
// they run to their end, their context not cancelled by the service
// stopping.
func TestServeWaitsForHooksInProgress(t *testing.T) {
	n := newNode(t, "")
	started := make(chan struct{})
	release := make(chan struct{})
	var ctxErr atomic.Value
	sv := start(t, &Server{
		ConfigPath: n.conf,
		Hooks: map[string]Hook{HookProlog: func(ctx context.Context, c jobhook.Call) error {
			close(started)
			<-release
			ctxErr.Store(fmt.Sprint(ctx.Err()))
			_, _ = io.WriteString(c.Stderr, "finished\n")
			return nil
		}},
		PeerUID: rootPeer,
	})
	type result struct {
		status int
		out    string
		err    error
	}
	asked := make(chan result, 1)
	go func() {
		var out bytes.Buffer
		status, err := wireAsk(context.Background(), sv.sock, Request{Hook: HookProlog, ConfigPath: n.conf}, &out)
		asked <- result{status, out.String(), err}
	}()
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("the hook did not start")
	}

	sv.cancel()
	// The listener closes (and its socket goes) at once...
	require.Eventually(t, func() bool {
		_, err := os.Lstat(sv.sock)
		return errors.Is(err, fs.ErrNotExist)
	}, wait, time.Millisecond, "the socket outlived Serve's context")
	_, err := net.Dial("unix", sv.sock)
	require.Error(t, err, "a new client got through after Serve's context ended")
	// ...but Serve waits for the hook.
	select {
	case <-sv.done:
		t.Fatalf("Serve returned (%v) with a hook in progress", sv.err)
	case <-time.After(100 * time.Millisecond):
	}

	close(release)
	select {
	case <-sv.done:
		require.NoError(t, sv.err)
	case <-time.After(wait):
		t.Fatal("Serve did not return after the hook finished")
	}
	require.Equal(t, "<nil>", ctxErr.Load(), "the service stopping cancelled the hook")
	r := <-asked // the hook's client got the whole answer before Serve returned
	require.NoError(t, r.err)
	require.Equal(t, 0, r.status)
	require.Equal(t, "finished\n", r.out)
}

// The hook's output goes in frames of at most maxOutput bytes, in order.
func TestServeOutputFrames(t *testing.T) {
	n := newNode(t, "")
	big := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz012345"), (200<<10)/32)
	sv := start(t, &Server{
		ConfigPath: n.conf,
		Hooks: map[string]Hook{HookProlog: func(_ context.Context, c jobhook.Call) error {
			_, _ = c.Stderr.Write(big)
			_, _ = c.Stderr.Write(nil) // no frame
			_, _ = io.WriteString(c.Stderr, "tail\n")
			return nil
		}},
		PeerUID: rootPeer,
	})
	conn := dialRaw(t, sv.sock, marshal(t, Request{Hook: HookProlog, ConfigPath: n.conf}))
	typ, _, err := readFrame(conn)
	require.NoError(t, err)
	require.Equal(t, string(rune(FrameAccepted)), string(typ))
	_, err = conn.Write([]byte{Commit})
	require.NoError(t, err)

	var sizes []int
	var got []byte
	for {
		typ, payload, err := readFrame(conn)
		require.NoError(t, err)
		if typ == FrameExit {
			require.Equal(t, []byte{0}, payload)
			break
		}
		require.Equal(t, string(rune(FrameOutput)), string(typ))
		sizes = append(sizes, len(payload))
		got = append(got, payload...)
	}
	requireClosed(t, conn)
	require.Equal(t, []int{maxOutput, maxOutput, maxOutput, 200<<10 - 3*maxOutput, len("tail\n")}, sizes)
	requireOutput(t, string(big)+"tail\n", string(got))
}

func TestFrameWriter(t *testing.T) {
	server, client := socketPair(t)
	w := &frameWriter{conn: server}
	writes := []int{0, 1, maxOutput, maxOutput + 1, 2*maxOutput + 3}
	wrote := make(chan error, 1)
	go func() {
		defer server.Close()
		for _, n := range writes {
			p := bytes.Repeat([]byte{byte('a' + n%26)}, n)
			got, err := w.Write(p)
			if err == nil && got != n {
				err = fmt.Errorf("Write(%d bytes) = %d", n, got)
			}
			if err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	require.NoError(t, client.SetDeadline(time.Now().Add(wait)))
	var sizes []int
	for {
		typ, payload, err := readFrame(client)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.Equal(t, string(rune(FrameOutput)), string(typ))
		sizes = append(sizes, len(payload))
	}
	require.NoError(t, <-wrote)
	require.Equal(t, []int{1, maxOutput, maxOutput, 1, maxOutput, maxOutput, 3}, sizes)

	// A client gone is an error to the writer (the hook ignores it).
	server2, client2 := socketPair(t)
	require.NoError(t, client2.Close())
	n, err := (&frameWriter{conn: server2}).Write([]byte("lost"))
	require.Error(t, err)
	require.Zero(t, n)
}

func TestListen(t *testing.T) {
	// Listen must give 0600 whatever the process's umask.
	old := unix.Umask(0)
	t.Cleanup(func() { unix.Umask(old) })

	staleSocket := func(t *testing.T, path string) {
		t.Helper()
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		require.NoError(t, err)
		ln.SetUnlinkOnClose(false)
		require.NoError(t, ln.Close())
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		require.Equal(t, fs.ModeSocket, fi.Mode().Type())
	}
	tests := []struct {
		name string
		// setup prepares path and returns a check that it was left
		// alone, for the cases Listen refuses.
		setup   func(t *testing.T, path string) func(t *testing.T)
		wantErr string
	}{
		{name: "no file", setup: func(*testing.T, string) func(*testing.T) { return nil }},
		{name: "a stale socket", setup: func(t *testing.T, path string) func(*testing.T) {
			staleSocket(t, path)
			return nil
		}},
		{name: "a regular file", wantErr: "exists and is not a socket", setup: func(t *testing.T, path string) func(*testing.T) {
			require.NoError(t, os.WriteFile(path, []byte("keep me\n"), 0o640))
			return func(t *testing.T) {
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				require.Equal(t, "keep me\n", string(b))
				fi, err := os.Lstat(path)
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o640), fi.Mode())
			}
		}},
		{name: "an empty regular file", wantErr: "exists and is not a socket", setup: func(t *testing.T, path string) func(*testing.T) {
			require.NoError(t, os.WriteFile(path, nil, 0o600))
			return func(t *testing.T) {
				fi, err := os.Lstat(path)
				require.NoError(t, err)
				require.True(t, fi.Mode().IsRegular())
			}
		}},
		{name: "a directory", wantErr: "exists and is not a socket", setup: func(t *testing.T, path string) func(*testing.T) {
			require.NoError(t, os.Mkdir(path, 0o700))
			return func(t *testing.T) {
				fi, err := os.Lstat(path)
				require.NoError(t, err)
				require.True(t, fi.IsDir())
			}
		}},
		{name: "a symlink to a stale socket", wantErr: "exists and is not a socket", setup: func(t *testing.T, path string) func(*testing.T) {
			target := filepath.Join(filepath.Dir(path), "other.sock")
			staleSocket(t, target)
			require.NoError(t, os.Symlink(target, path))
			return func(t *testing.T) {
				fi, err := os.Lstat(path)
				require.NoError(t, err)
				require.Equal(t, fs.ModeSymlink, fi.Mode().Type())
				fi, err = os.Lstat(target)
				require.NoError(t, err)
				require.Equal(t, fs.ModeSocket, fi.Mode().Type())
			}
		}},
		// A second service must not take a running one's socket: that
		// one would be unreachable, and its socket file would go when
		// the second stops.
		{name: "a live service's socket", wantErr: "another service listens on it", setup: func(t *testing.T, path string) func(*testing.T) {
			live, err := Listen(path)
			require.NoError(t, err)
			t.Cleanup(func() { _ = live.Close() })
			return func(t *testing.T) {
				c, err := net.Dial("unix", path)
				require.NoError(t, err, "the running service is still reachable")
				require.NoError(t, c.Close())
				require.NoError(t, live.SetDeadline(time.Now().Add(wait)))
				a, err := live.AcceptUnix()
				require.NoError(t, err)
				require.NoError(t, a.Close())
			}
		}},
		{name: "no directory", wantErr: "no such file or directory", setup: func(t *testing.T, path string) func(*testing.T) {
			require.NoError(t, os.Remove(filepath.Dir(path)))
			return func(t *testing.T) {
				_, err := os.Lstat(filepath.Dir(path))
				require.ErrorIs(t, err, fs.ErrNotExist)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(shortTempDir(t), SocketName)
			leftAlone := tc.setup(t, path)
			ln, err := Listen(path)
			require.Equal(t, 0, unix.Umask(0), "Listen did not restore the umask")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, path, "the error names the socket")
				require.Nil(t, ln)
				leftAlone(t)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = ln.Close() })

			fi, err := os.Lstat(path)
			require.NoError(t, err)
			require.Equal(t, fs.ModeSocket, fi.Mode().Type())
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the socket is its owner's alone")
			require.Equal(t, uint32(os.Geteuid()), fi.Sys().(*syscall.Stat_t).Uid)

			// It is the live listener.
			c, err := net.Dial("unix", path)
			require.NoError(t, err)
			require.NoError(t, c.Close())
			require.NoError(t, ln.SetDeadline(time.Now().Add(wait)))
			a, err := ln.AcceptUnix()
			require.NoError(t, err)
			require.NoError(t, a.Close())

			require.NoError(t, ln.Close())
			_, err = os.Lstat(path)
			require.ErrorIs(t, err, fs.ErrNotExist, "the socket outlived its listener")
		})
	}
}

func TestPeerUID(t *testing.T) {
	t.Run("listener and dialer", func(t *testing.T) {
		ln, err := Listen(filepath.Join(shortTempDir(t), SocketName))
		require.NoError(t, err)
		defer ln.Close()
		c, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
		require.NoError(t, err)
		defer c.Close()
		a, err := ln.AcceptUnix()
		require.NoError(t, err)
		defer a.Close()
		for _, conn := range []*net.UnixConn{a, c} {
			uid, err := PeerUID(conn)
			require.NoError(t, err)
			require.Equal(t, os.Geteuid(), uid)
		}
	})
	t.Run("socket pair", func(t *testing.T) {
		a, b := socketPair(t)
		for _, conn := range []*net.UnixConn{a, b} {
			uid, err := PeerUID(conn)
			require.NoError(t, err)
			require.Equal(t, os.Geteuid(), uid)
		}
	})
	t.Run("made as another user", func(t *testing.T) {
		var a, b *net.UnixConn
		asUser(t, nobody, func() { a, b = socketPair(t) })
		for _, conn := range []*net.UnixConn{a, b} {
			uid, err := PeerUID(conn)
			require.NoError(t, err)
			require.Equal(t, nobody, uid, "SO_PEERCRED is fixed when the socket was made")
		}
	})
	t.Run("closed", func(t *testing.T) {
		a, _ := socketPair(t)
		require.NoError(t, a.Close())
		uid, err := PeerUID(a)
		require.Error(t, err)
		require.Equal(t, -1, uid)
	})
	t.Run("not a socket", func(t *testing.T) {
		r, w, err := os.Pipe()
		require.NoError(t, err)
		defer r.Close()
		defer w.Close()
		uid, err := PeerUID(r)
		require.ErrorContains(t, err, "SO_PEERCRED")
		require.ErrorIs(t, err, syscall.ENOTSOCK)
		require.Equal(t, -1, uid)
	})
}

// fakeService listens on a socket of its own and answers one connection
// with script, after reading (and checking) the request.
func fakeService(t *testing.T, want Request, script func(conn *net.UnixConn)) (sock string, done <-chan struct{}) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(shortTempDir(t), SocketName), Net: "unix"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = ln.SetDeadline(time.Now().Add(wait))
		conn, err := ln.AcceptUnix()
		if err != nil {
			t.Errorf("fake service: accept: %v", err)
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		q, err := ReadRequest(conn)
		if err != nil {
			t.Errorf("fake service: %v", err)
			return
		}
		if diff := cmp.Diff(want, q, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("fake service: request (-want +got):\n%s", diff)
			return
		}
		script(conn)
	}()
	t.Cleanup(func() {
		select {
		case <-finished:
		case <-time.After(wait):
			t.Error("the fake service did not finish")
		}
	})
	return ln.Addr().String(), finished
}

// readCommit reads what the client sends after FrameAccepted: Commit, or
// the error of it closing without.
func readCommit(conn *net.UnixConn) (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(conn, b[:])
	return b[0], err
}

// TestAskProtocol is Ask against services that answer as told.
func TestAskProtocol(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		// first is what the service answers to the request; rest what it
		// sends once it read the client's commit (only then).
		first, rest []byte
		wantStatus  int
		wantOutput  string
		wantErr     string // "" when Ask returns a status
		declined    bool   // the error wraps ErrDeclined
		wantCommit  bool
		// closeRead: the service shuts its receiving side down before it
		// answers, so that the client's commit fails.
		closeRead bool
	}{
		{
			name:       "served",
			first:      frame(FrameAccepted, 0, ""),
			rest:       bytes.Join([][]byte{frame(FrameOutput, 3, "hi\n"), frame(FrameOutput, 0, ""), frame(FrameOutput, 6, "there\n"), frame(FrameExit, 1, "\x07")}, nil),
			wantStatus: 7, wantOutput: "hi\nthere\n", wantCommit: true,
		},
		{name: "status 255", first: frame(FrameAccepted, 0, ""), rest: frame(FrameExit, 1, "\xff"), wantStatus: 255, wantCommit: true},
		{name: "declined", first: frame(FrameDeclined, 11, "not serving"), wantErr: "hook service declined: not serving", declined: true},
		{name: "closed without an answer", wantErr: "EOF", declined: true},
		{name: "output first", first: frame(FrameOutput, 1, "x"), wantErr: `first frame 'o'`, declined: true},
		{name: "exit first", first: frame(FrameExit, 1, "\x00"), wantErr: `first frame 'x'`, declined: true},
		{name: "unknown first frame", first: frame('z', 0, ""), wantErr: `frame 'z'`, declined: true},
		{name: "commit fails", closeRead: true, first: frame(FrameAccepted, 0, ""), wantErr: "commit", declined: true},
		{name: "declined at too great a length", first: frame(FrameDeclined, maxDeclined+1, ""), wantErr: "of 4097 bytes", declined: true},
		{
			name: "closed before the status", first: frame(FrameAccepted, 0, ""), rest: frame(FrameOutput, 5, "part\n"),
			wantOutput: "part\n", wantErr: "the connection ended before the hook's status", wantCommit: true,
		},
		{name: "exit without a status byte", first: frame(FrameAccepted, 0, ""), rest: frame(FrameExit, 0, ""), wantErr: `frame 'x' after acceptance`, wantCommit: true},
		{name: "accepted twice", first: frame(FrameAccepted, 0, ""), rest: frame(FrameAccepted, 0, ""), wantErr: `frame 'a' after acceptance`, wantCommit: true},
		{name: "declined after acceptance", first: frame(FrameAccepted, 0, ""), rest: frame(FrameDeclined, 2, "no"), wantErr: `frame 'n' after acceptance`, wantCommit: true},
		{name: "output over its limit", first: frame(FrameAccepted, 0, ""), rest: frame(FrameOutput, maxOutput+1, ""), wantErr: "of 65537 bytes", wantCommit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := Request{Hook: HookEpilog, ConfigPath: "/etc/slurm/lwk.conf", Environ: []string{"SLURM_JOB_ID=9", ""}}
			var commit byte
			var commitErr error
			sock, done := fakeService(t, q, func(conn *net.UnixConn) {
				if len(tc.first) == 0 {
					return
				}
				if tc.closeRead {
					if err := conn.CloseRead(); err != nil {
						t.Errorf("fake service: %v", err)
						return
					}
				}
				if _, err := conn.Write(tc.first); err != nil {
					t.Errorf("fake service: %v", err)
					return
				}
				commit, commitErr = readCommit(conn)
				if commitErr == nil && commit == Commit {
					_, _ = conn.Write(tc.rest)
				}
			})
			var out bytes.Buffer
			status, err := Ask(context.Background(), sock, q, &out)
			<-done
			require.Equal(t, tc.wantOutput, out.String())
			if tc.wantCommit {
				require.NoError(t, commitErr)
				require.Equal(t, string(rune(Commit)), string(rune(commit)))
			} else if len(tc.first) > 0 {
				require.True(t, errors.Is(commitErr, io.EOF) || errors.Is(commitErr, syscall.ECONNRESET), "a client that was not accepted sent %q (%v)", commit, commitErr)
			}
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tc.wantStatus, status)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.Equal(t, tc.declined, errors.Is(err, ErrDeclined), "wraps ErrDeclined: %v", err)
			require.Equal(t, -1, status)
		})
	}
}

// Ask sends the job's environment only to a root service.
func TestAskRefusesServiceNotRoot(t *testing.T) {
	dir := shortTempDir(t)
	path := filepath.Join(dir, SocketName)
	var ln *net.UnixListener
	listen := func() {
		var err error
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		require.NoError(t, err)
	}
	uid := os.Geteuid()
	if uid == 0 {
		require.NoError(t, os.Chmod(dir, 0o777)) // for nobody to bind in
		uid = nobody
		asUser(t, nobody, listen)
	} else {
		listen()
	}
	t.Cleanup(func() { _ = ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		_ = ln.SetDeadline(time.Now().Add(wait))
		conn, err := ln.AcceptUnix()
		if err != nil {
			got <- []byte(err.Error())
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		b, _ := io.ReadAll(conn)
		got <- b
	}()
	status, err := Ask(context.Background(), path, Request{Hook: HookProlog, ConfigPath: "/c", Environ: []string{"SECRET=1"}}, io.Discard)
	require.ErrorIs(t, err, ErrDeclined)
	require.ErrorContains(t, err, fmt.Sprintf("service not root (uid %d", uid))
	require.Equal(t, -1, status)
	require.Empty(t, <-got, "Ask sent the request to a service not root")
}

func TestAskDeclinesBeforeConnecting(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(regular, nil, 0o600))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	live, err := Listen(filepath.Join(shortTempDir(t), SocketName))
	require.NoError(t, err)
	t.Cleanup(func() { _ = live.Close() })
	tests := []struct {
		name    string
		ctx     context.Context
		path    string
		q       Request
		wantErr string
	}{
		{name: "NUL in the request", path: live.Addr().String(), q: Request{Hook: HookProlog, ConfigPath: "/c", Environ: []string{"A=\x00"}}, wantErr: "NUL"},
		{name: "request too large", path: live.Addr().String(), q: Request{Hook: HookProlog, ConfigPath: strings.Repeat("/", MaxRequest)}, wantErr: "more than"},
		{name: "no socket", path: filepath.Join(t.TempDir(), SocketName), q: Request{Hook: HookProlog, ConfigPath: "/c"}, wantErr: "no such file or directory"},
		{name: "a regular file", path: regular, q: Request{Hook: HookProlog, ConfigPath: "/c"}, wantErr: "connection refused"},
		{name: "context already ended", ctx: cancelled, path: live.Addr().String(), q: Request{Hook: HookProlog, ConfigPath: "/c"}, wantErr: "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			status, err := Ask(ctx, tc.path, tc.q, io.Discard)
			require.ErrorIs(t, err, ErrDeclined)
			require.ErrorContains(t, err, tc.wantErr)
			require.Equal(t, -1, status)
		})
	}
	// None of them connected.
	require.NoError(t, live.SetDeadline(time.Now().Add(10*time.Millisecond)))
	_, err = live.Accept()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "a refused request connected")
}

// Cancelling Ask's context while it waits for the hook's status returns at
// once, and the service sees its client gone.
func TestAskCancelWhileWaitingForStatus(t *testing.T) {
	needRoot(t)
	n := newNode(t, "")
	started := make(chan struct{})
	ended := make(chan error, 1)
	sv := start(t, &Server{
		ConfigPath: n.conf,
		Hooks: map[string]Hook{HookProlog: func(ctx context.Context, c jobhook.Call) error {
			_, _ = io.WriteString(c.Stderr, "booting\n")
			close(started)
			select {
			case <-ctx.Done():
				ended <- ctx.Err()
			case <-time.After(wait):
				ended <- errors.New("the hook's context was not cancelled")
			}
			return ctx.Err()
		}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		status int
		err    error
	}
	asked := make(chan result, 1)
	out := &syncBuffer{}
	go func() {
		status, err := Ask(ctx, sv.sock, Request{Hook: HookProlog, ConfigPath: n.conf}, out)
		asked <- result{status, err}
	}()
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("the hook did not start")
	}
	require.Eventually(t, func() bool { return out.String() == "booting\n" }, wait, time.Millisecond, "output before the status")

	cancel()
	select {
	case r := <-asked:
		require.Error(t, r.err)
		require.NotErrorIs(t, r.err, ErrDeclined, "the hook was accepted: falling back would run it twice")
		require.ErrorContains(t, r.err, "before the hook's status")
		require.Equal(t, -1, r.status)
	case <-time.After(wait):
		t.Fatal("Ask did not return after its context ended")
	}
	select {
	case err := <-ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * wait):
		t.Fatal("the hook did not end")
	}
}

// Cancelling Ask's context before the service accepted declines: nothing
// was committed, so the caller may run the program.
func TestAskCancelWhileWaitingForAcceptance(t *testing.T) {
	needRoot(t)
	q := Request{Hook: HookProlog, ConfigPath: "/c"}
	received := make(chan struct{})
	var after error
	sock, done := fakeService(t, q, func(conn *net.UnixConn) {
		close(received)
		// No answer: the client gives up, and sends nothing more.
		b, err := readCommit(conn)
		if err == nil {
			err = fmt.Errorf("client sent %q", b)
		}
		after = err
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		status int
		err    error
	}
	asked := make(chan result, 1)
	go func() {
		status, err := Ask(ctx, sock, q, io.Discard)
		asked <- result{status, err}
	}()
	select {
	case <-received:
	case <-time.After(wait):
		t.Fatal("the request did not arrive")
	}
	cancel()
	select {
	case r := <-asked:
		require.ErrorIs(t, r.err, ErrDeclined)
		require.Equal(t, -1, r.status)
	case <-time.After(wait):
		t.Fatal("Ask did not return after its context ended")
	}
	<-done
	require.ErrorIs(t, after, io.EOF)
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A hook may take longer than the request's time limit (a McKernel boot
// takes seconds; slurmd's timeout bounds it): its client waits without a
// limit, and the connection's deadlines never cancel it.
func TestServeHookOutlastsRequestTimeout(t *testing.T) {
	old := requestTimeout
	requestTimeout = 100 * time.Millisecond
	t.Cleanup(func() { requestTimeout = old })
	forClients(t, func(t *testing.T, ask askFunc) {
		n := newNode(t, "")
		var prolog calls
		sv := start(t, &Server{
			ConfigPath: n.conf,
			Hooks: map[string]Hook{HookProlog: prolog.hook(func(ctx context.Context, c jobhook.Call) error {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * requestTimeout):
				}
				_, _ = io.WriteString(c.Stderr, "booted\n")
				return nil
			})},
			PeerUID: rootPeer,
		})
		var out bytes.Buffer
		status, err := ask(context.Background(), sv.sock, Request{Hook: HookProlog, ConfigPath: n.conf}, &out)
		require.NoError(t, err)
		require.Equal(t, 0, status, "output %q", out.String())
		require.Equal(t, "booted\n", out.String())
		sv.stop(t)
		_, ctxErr := prolog.only(t)
		require.NoError(t, ctxErr, "the hook was cancelled while its client waited")
	})
}
