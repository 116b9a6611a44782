package lwknode

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// defaultKillGrace is how long the job's remaining mcexec processes get
// between SIGTERM and SIGKILL at teardown.
const defaultKillGrace = 2 * time.Second

// Logger returns a logger for a lifecycle binary. slurmd shows a failing
// prolog's stderr as the drain reason, so logs go to LogDir/slurm-lwk.log
// (JSON lines, root-only), never to stderr unless verbose is set; when the
// log file cannot be opened, they are dropped (stderr keeps its one line).
func Logger(logDir, program string, verbose bool) (*slog.Logger, io.Closer) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose {
		opts.Level = slog.LevelDebug
		return slog.New(slog.NewTextHandler(os.Stderr, opts)).With("program", program), io.NopCloser(nil)
	}
	if err := os.MkdirAll(logDir, 0o700); err == nil {
		f, err := os.OpenFile(filepath.Join(logDir, "slurm-lwk.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err == nil {
			return slog.New(slog.NewJSONHandler(f, opts)).With("program", program, "pid", os.Getpid()), f
		}
	}
	return slog.New(slog.NewTextHandler(io.Discard, opts)), io.NopCloser(nil)
}
