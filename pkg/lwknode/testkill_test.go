package lwknode

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
)

const testKillConf = "IHKBackend=ihk\nOSCores=0-1\nTestKillAfterStep=boot\nProfile=a Image=/i Kargs=hidos\n"

// TestArmTestKill arms the key only in a root-owned lwk.conf that group
// and others cannot write.
func TestArmTestKill(t *testing.T) {
	root := os.Geteuid() == 0
	tests := []struct {
		name  string
		mode  os.FileMode
		owner int // -1: whoever runs the test
		root  bool
		want  string // "" armed
	}{
		{name: "root 0644", mode: 0o644, owner: 0, root: true},
		{name: "root 0600", mode: 0o600, owner: 0, root: true},
		{name: "root group-writable", mode: 0o664, owner: 0, root: true, want: "writable by group or others (mode 0664)"},
		{name: "root world-writable", mode: 0o646, owner: 0, root: true, want: "writable by group or others (mode 0646)"},
		{name: "owned by nobody", mode: 0o644, owner: 65534, root: true, want: "owned by uid 65534, not root"},
		{name: "owned by the caller", mode: 0o644, owner: -1, want: "not root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root != root && (tc.root || tc.owner == -1) {
				t.Skipf("needs to run as %s", map[bool]string{true: "root", false: "non-root"}[tc.root])
			}
			path := filepath.Join(t.TempDir(), "lwk.conf")
			require.NoError(t, os.WriteFile(path, []byte(testKillConf), 0o600))
			if tc.owner >= 0 {
				require.NoError(t, os.Chown(path, tc.owner, 0))
			}
			require.NoError(t, os.Chmod(path, tc.mode))
			cfg, err := config.Load(path)
			require.NoError(t, err)
			n := &Node{Config: cfg, Log: slog.New(slog.DiscardHandler)}
			err = n.ArmTestKill(path)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				require.ErrorContains(t, err, path)
				require.Empty(t, n.testKillStep)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "boot", n.testKillStep)
		})
	}
}

func TestArmTestKillUnsetOrMissing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lwk.conf")
	conf := strings.Replace(testKillConf, "TestKillAfterStep=boot\n", "", 1)
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o666))
	require.NoError(t, os.Chmod(path, 0o666))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	n := &Node{Config: cfg, Log: slog.New(slog.DiscardHandler)}
	require.NoError(t, n.ArmTestKill(path), "without the key the file's mode does not matter")
	require.Empty(t, n.testKillStep)

	cfg.TestKillAfterStep = "boot"
	err = n.ArmTestKill(filepath.Join(dir, "gone.conf"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "gone.conf")
	require.ErrorContains(t, checkTestKillFile(dir, mustStat(t, dir)), "not a regular file")
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi
}

// recordingFaults stands in for the simulator's faults behind the hook.
type recordingFaults struct {
	before, after []string
	fail          string
}

func (r *recordingFaults) Before(step string) error {
	r.before = append(r.before, step)
	if step == r.fail {
		return errors.New("injected")
	}
	return nil
}

func (r *recordingFaults) After(step string) { r.after = append(r.after, step) }

func TestTestKillHook(t *testing.T) {
	next := &recordingFaults{fail: "grant_device"}
	var killed []string
	k := testKill{step: "boot", next: next, log: slog.New(slog.DiscardHandler), kill: func() { killed = append(killed, "at "+next.after[len(next.after)-1]) }}
	for _, s := range []string{"create_os", "boot", "wait_running"} {
		require.NoError(t, k.Before(s))
		k.After(s)
	}
	require.ErrorContains(t, k.Before("grant_device"), "injected", "the simulator's faults still fail their steps")
	require.Equal(t, []string{"create_os", "boot", "wait_running", "grant_device"}, next.before)
	require.Equal(t, []string{"create_os", "boot", "wait_running"}, next.after, "the simulator's hook runs first")
	require.Equal(t, []string{"at boot"}, killed, "killed once, right after the named step")

	alone := testKill{step: "write_marker", log: slog.New(slog.DiscardHandler), kill: func() { killed = append(killed, "alone") }}
	require.NoError(t, alone.Before("write_marker"))
	alone.After("confine_proxies")
	alone.After("write_marker")
	require.Equal(t, []string{"at boot", "alone"}, killed)
}

// TestSelfKill runs the real kill in a child process: it dies of SIGKILL
// right after the named step, never after an earlier one.
func TestSelfKill(t *testing.T) {
	if os.Getenv("LWKNODE_SELFKILL_CHILD") == "1" {
		k := testKill{step: "boot", log: slog.New(slog.DiscardHandler), kill: selfKill}
		k.After("set_kernel_args")
		os.Stdout.WriteString("survived set_kernel_args\n")
		k.After("boot")
		os.Stdout.WriteString("survived boot\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSelfKill$")
	cmd.Env = append(os.Environ(), "LWKNODE_SELFKILL_CHILD=1")
	out, err := cmd.Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled(), "exit status %v", ws)
	require.Equal(t, syscall.SIGKILL, ws.Signal())
	require.Contains(t, string(out), "survived set_kernel_args")
	require.NotContains(t, string(out), "survived boot")
}
