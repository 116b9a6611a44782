package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// helperEnv makes the test binary act as a small command instead of running
// tests (see TestMain), so ExecRunner is exercised on a real process without
// a shell.
const helperEnv = "LWK_SLURM_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func helper(mode string, args []string) int {
	switch mode {
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		wd, _ := os.Getwd()
		fmt.Println("cwd=" + wd)
		fmt.Println("args=" + strings.Join(args, "|"))
		return 0
	case "fail":
		fmt.Fprintln(os.Stdout, "partial output")
		fmt.Fprintln(os.Stderr, "slurm_load_jobs error: Invalid job id specified")
		return 1
	case "bigout":
		n, _ := strconv.Atoi(args[0])
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = 'x'
		}
		_, _ = os.Stdout.Write(buf)
		return 0
	case "bigerr":
		_, _ = os.Stderr.WriteString(strings.Repeat("e", 100000))
		return 3
	case "sleep":
		time.Sleep(time.Minute)
		return 0
	case "spawn":
		// Start a grandchild in our process group that would keep the
		// output pipe open, write its PID, then sleep.
		cmd := exec.Command(os.Args[0], "child")
		cmd.Env = []string{helperEnv + "=sleep"}
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			return 2
		}
		fmt.Println(cmd.Process.Pid)
		_ = os.WriteFile(args[0], []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
		time.Sleep(time.Minute)
		return 0
	}
	return 99
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	exe, err = filepath.Abs(exe)
	require.NoError(t, err)
	return filepath.Clean(exe)
}

func TestExecRunnerEnvironment(t *testing.T) {
	t.Setenv("LWK_SECRET_FROM_PARENT", "leak")
	exe := self(t)

	t.Run("explicit env only, cwd /, args verbatim", func(t *testing.T) {
		r := ExecRunner{Env: []string{helperEnv + "=env", "SLURM_CONF=/etc/slurm/slurm.conf"}}
		out, err := r.Run(context.Background(), []string{exe, "a b", "Reason=x; rm -rf /", "$(id)"})
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		require.ElementsMatch(t, []string{
			helperEnv + "=env", "SLURM_CONF=/etc/slurm/slurm.conf", "cwd=/", "args=a b|Reason=x; rm -rf /|$(id)",
		}, lines)
	})

	t.Run("nil env means DefaultEnv, nothing inherited", func(t *testing.T) {
		// DefaultEnv does not carry the helper switch, so run the helper
		// through env(1) by absolute path, which adds it. No shell.
		envBin := "/usr/bin/env"
		if _, err := os.Stat(envBin); err != nil {
			t.Skip("no /usr/bin/env")
		}
		out, err := ExecRunner{}.Run(context.Background(), []string{envBin, helperEnv + "=env", exe})
		require.NoError(t, err)
		s := string(out)
		for _, kv := range DefaultEnv {
			require.Contains(t, s, kv+"\n")
		}
		require.NotContains(t, s, "LWK_SECRET_FROM_PARENT")
	})
}

func TestExecRunnerErrors(t *testing.T) {
	exe := self(t)
	tests := []struct {
		name     string
		env      string
		argv     []string
		maxOut   int
		timeout  time.Duration
		wantErr  string
		wantCode int
		wantIs   error
		check    func(t *testing.T, out []byte, ce *CommandError)
	}{
		{
			name: "non-zero exit carries stderr", env: "fail", argv: []string{exe, "show", "job"},
			wantErr: "exit status 1: slurm_load_jobs error: Invalid job id specified", wantCode: 1,
		},
		{
			name: "stdout over the limit", env: "bigout", argv: []string{exe, "5000"}, maxOut: 4096,
			wantErr: "standard output exceeds 4096 bytes", wantCode: -1,
		},
		{
			name: "stderr is bounded", env: "bigerr", argv: []string{exe}, wantCode: 3,
			check: func(t *testing.T, _ []byte, ce *CommandError) {
				require.Equal(t, maxStderrBytes, len(ce.Stderr))
			},
		},
		{
			name: "timeout kills the command", env: "sleep", argv: []string{exe}, timeout: 200 * time.Millisecond,
			wantIs: context.DeadlineExceeded, wantCode: -1,
		},
		{name: "relative program", argv: []string{"scontrol", "ping"}, wantErr: "clean absolute path"},
		{name: "unclean program", argv: []string{"/usr/bin/../bin/scontrol"}, wantErr: "clean absolute path"},
		{name: "empty argv", argv: nil, wantErr: "empty argv"},
		{name: "NUL in argument", argv: []string{exe, "a\x00b"}, wantErr: "NUL byte"},
		{name: "missing program", argv: []string{"/nonexistent/scontrol"}, wantIs: os.ErrNotExist, wantCode: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			r := ExecRunner{Env: []string{helperEnv + "=" + tc.env}, MaxStdoutBytes: tc.maxOut}
			start := time.Now()
			out, err := r.Run(ctx, tc.argv)
			require.Error(t, err)
			require.Nil(t, out)
			require.Less(t, time.Since(start), 20*time.Second)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			}
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			var ce *CommandError
			if errors.As(err, &ce) {
				require.Equal(t, tc.wantCode, ce.ExitCode)
				require.Equal(t, tc.argv, ce.Argv)
				if tc.check != nil {
					tc.check(t, out, ce)
				}
			} else {
				require.Nil(t, tc.check)
			}
		})
	}
}

// TestExecRunnerKillsProcessGroup: when ctx ends, a grandchild the command
// started is killed too, and Run does not hang on the pipe it holds.
func TestExecRunnerKillsProcessGroup(t *testing.T) {
	exe := self(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ExecRunner{Env: []string{helperEnv + "=spawn"}}.Run(ctx, []string{exe, pidFile})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second)

	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(string(b))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		// Gone, or a zombie waiting for its reaper.
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		fields := strings.Fields(string(stat))
		return len(fields) > 2 && fields[2] == "Z"
	}, 5*time.Second, 20*time.Millisecond, "grandchild %d survived", pid)
}
