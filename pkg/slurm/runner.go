package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Runner runs a command given as an argv array (never through a shell) and
// returns its standard output. Implementations report a failed command as an
// error that includes its standard error.
type Runner interface {
	Run(ctx context.Context, argv []string) (stdout []byte, err error)
}

// DefaultEnv is the whole environment ExecRunner gives a command when its
// Env is nil: a fixed PATH (slurmd gives hooks none) and the C locale, so
// that output is parseable. Nothing is inherited from the caller.
var DefaultEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

// Output limits for ExecRunner. Units: bytes.
const (
	// DefaultMaxStdoutBytes bounds the captured standard output.
	DefaultMaxStdoutBytes = 4 << 20
	// maxStderrBytes bounds the standard error kept for the error message.
	maxStderrBytes = 4 << 10
)

// ExecRunner runs commands with os/exec: argv[0] must be an absolute path,
// the environment is exactly Env, stdin is /dev/null, the working directory
// is /, and the command runs in its own process group, all of which is
// killed when ctx ends.
type ExecRunner struct {
	// Env is the complete environment of the command (e.g. add
	// SLURM_CONF=... to DefaultEnv). nil means DefaultEnv.
	Env []string
	// MaxStdoutBytes bounds the captured output; 0 means
	// DefaultMaxStdoutBytes. Larger output fails the run.
	MaxStdoutBytes int
	// WaitDelay bounds how long Run waits for the output pipes after the
	// command was killed; 0 means one second.
	WaitDelay time.Duration
}

// CommandError is a command that ran and failed, or could not be started.
type CommandError struct {
	// Argv is the command line.
	Argv []string
	// ExitCode is the exit status, or -1 when the command was killed by a
	// signal or never ran.
	ExitCode int
	// Stderr is the command's standard error, trimmed and bounded.
	Stderr string
	// Err is the underlying error (*exec.ExitError, context error, ...).
	Err error
}

func (e *CommandError) Error() string {
	var b strings.Builder
	b.WriteString("run ")
	b.WriteString(truncate(strings.Join(e.Argv, " "), 200))
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: empty argv")
	}
	if !filepath.IsAbs(argv[0]) || filepath.Clean(argv[0]) != argv[0] {
		return nil, fmt.Errorf("run %s: program must be a clean absolute path", argv[0])
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("run %s: argument contains a NUL byte", argv[0])
		}
	}
	env := r.Env
	if env == nil {
		env = DefaultEnv
	}
	maxOut := r.MaxStdoutBytes
	if maxOut <= 0 {
		maxOut = DefaultMaxStdoutBytes
	}
	wait := r.WaitDelay
	if wait <= 0 {
		wait = time.Second
	}

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append([]string{}, env...) // non-nil: never inherit os.Environ
	cmd.Dir = "/"
	stdout := &cappedBuffer{max: maxOut}
	stderr := &cappedBuffer{max: maxStderrBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the whole process group the command leads.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return os.ErrProcessDone
			}
			return err
		}
		return nil
	}
	cmd.WaitDelay = wait

	err := cmd.Run()
	if err == nil && stdout.overflow {
		err = fmt.Errorf("standard output exceeds %d bytes", maxOut)
	}
	if err != nil {
		ce := &CommandError{
			Argv:     append([]string{}, argv...),
			ExitCode: -1,
			Stderr:   strings.TrimSpace(stderr.String()),
			Err:      err,
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ce.ExitCode = ee.ExitCode()
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			ce.Err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, ce
	}
	return stdout.Bytes(), nil
}

// cappedBuffer keeps the first max bytes written to it and records whether
// more came (Run fails on a stdout overflow; stderr is just cut). The buffer
// is a named field, not embedded: an embedded bytes.Buffer would promote
// ReadFrom, and io.Copy would bypass Write and the cap.
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if len(p) > room {
		b.overflow = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		// Report the whole write as consumed so the command is not killed
		// by EPIPE; the overflow is reported by Run.
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes returns what was kept.
func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }

// String returns what was kept.
func (b *cappedBuffer) String() string { return b.buf.String() }
