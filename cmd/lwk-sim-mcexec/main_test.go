package main

import (
	"bufio"
	"context"
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
	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// Binaries built once by TestMain.
var standIn, lwkprog string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lwk-sim-mcexec-test")
	if err != nil {
		panic(err)
	}
	standIn = filepath.Join(dir, "lwk-sim-mcexec")
	lwkprog = filepath.Join(dir, "lwkprog")
	for out, pkg := range map[string]string{standIn: ".", lwkprog: "./testdata/lwkprog"} {
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg, err)
			os.Exit(2)
		}
	}
	// Other users (the permission test) must reach the binaries.
	_ = os.Chmod(dir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hostTopology is this 2-CPU test machine (fixture "this-host").
func hostTopology() *topology.Topology { return fixture.Topology("this-host") }

// bigTopology is the paper's 16-CPU numa=fake=12 node, larger than the host.
func bigTopology() *topology.Topology { return fixture.Topology("paper-e5520-fake12") }

type simNode struct {
	b    *sim.Backend
	conf string
	idx  int
}

// newFixture boots a simulated instance on cpus and writes an lwk.conf
// pointing at it.
func newFixture(t *testing.T, topo *topology.Topology, cpus []int, bootDelay time.Duration) *simNode {
	t.Helper()
	root := t.TempDir()
	// Let other users traverse to the device stand-ins (permission test).
	require.NoError(t, os.Chmod(root, 0o711))
	require.NoError(t, os.Chmod(filepath.Dir(root), 0o711))
	state := filepath.Join(root, "sim")
	b, err := sim.Open(sim.Options{StateDir: state, Topology: topo, BootDelay: bootDelay})
	require.NoError(t, err)
	ctx := context.Background()
	chunk := ihk.MemChunk{Bytes: 64 << 20, NUMANode: 0}
	require.NoError(t, b.ReserveMemory(ctx, []ihk.MemChunk{chunk}))
	require.NoError(t, b.ReserveCPUs(ctx, cpus))
	idx, err := b.CreateOS(ctx)
	require.NoError(t, err)
	require.NoError(t, b.AssignCPUs(ctx, idx, cpus))
	require.NoError(t, b.AssignMemory(ctx, idx, []ihk.MemChunk{chunk}))
	img := filepath.Join(root, "mckernel.img")
	require.NoError(t, os.WriteFile(img, []byte("simulated"), 0o644))
	require.NoError(t, b.LoadImage(ctx, idx, img))
	require.NoError(t, b.SetKernelArgs(ctx, idx, "hidos"))
	bootCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if bootDelay > time.Minute {
		// Stop waiting early: the instance stays BOOTING.
		bootCtx, cancel = context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, b.Boot(bootCtx, idx), context.DeadlineExceeded)
	} else {
		require.NoError(t, b.Boot(bootCtx, idx))
	}
	conf := filepath.Join(root, "lwk.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(
		"# test node\nIHKBackend=sim\nOSCores=0\nSimStateDir=%s\nProfile=mck Image=%s Kargs=hidos\n", state, img)), 0o644))
	return &simNode{b: b, conf: conf, idx: idx}
}

func (f *simNode) command(args ...string) *exec.Cmd {
	cmd := exec.Command(standIn, append([]string{"--config", f.conf}, args...)...)
	cmd.Env = append(os.Environ(), "LWK_CONF=/nonexistent")
	return cmd
}

// exitCode runs cmd and returns its exit status and output.
func exitCode(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "stderr: %s", stderr.String())
	}
	require.True(t, cmd.ProcessState.Exited(), "the stand-in exits, it is not killed")
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func allowedCPUs(t *testing.T) cpuset.CPUSet {
	var m unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &m))
	return fromMask(&m)
}

func TestPinning(t *testing.T) {
	if !allowedCPUs(t).Contains(1) {
		t.Skipf("needs CPU 1 in this process's affinity, have %s", allowedCPUs(t))
	}
	f := newFixture(t, hostTopology(), []int{1}, 0)
	code, out, errOut := exitCode(t, f.command("-n", "1", lwkprog, "info"))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "Cpus_allowed_list:\t1\n")
	require.Contains(t, out, "LWK_SIM_OS=0\n")
	require.Contains(t, out, "LWK_SIM_CPUS=1\n")
	require.Empty(t, errOut)
}

// TestUsage checks that the instance's rusage counts the program while it
// runs (a child of the holder) and after it ended (the stand-in's record).
func TestUsage(t *testing.T) {
	f := newFixture(t, hostTopology(), []int{1}, 0)
	ctx := context.Background()
	cmd := f.command(lwkprog, "burn", "400ms")
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		ru, err := f.b.Rusage(ctx, f.idx)
		return err == nil && ru.Threads > 0 && ru.UserNanoseconds > 0
	}, 5*time.Second, 20*time.Millisecond, "live program counted")
	require.NoError(t, cmd.Wait())
	ru, err := f.b.Rusage(ctx, f.idx)
	require.NoError(t, err)
	require.Zero(t, ru.Threads, "nothing runs any more")
	require.GreaterOrEqual(t, ru.UserNanoseconds+ru.SystemTicks*1e7, uint64(100*time.Millisecond), "400 ms of burning recorded")
	require.NotZero(t, ru.MemoryMaxUsageBytes)
}

func TestFixtureLargerThanHost(t *testing.T) {
	f := newFixture(t, bigTopology(), []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 0)
	present, err := readCPUList("/sys/devices/system/cpu/present")
	require.NoError(t, err)
	if present.Intersection(cpuset.New(2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)).Size() > 0 {
		t.Skipf("host has CPUs beyond 0-1 (%s)", present)
	}
	allowed := allowedCPUs(t)
	code, out, errOut := exitCode(t, f.command(lwkprog, "info"))
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "lwk-sim-mcexec: simulated LWK CPUs 2-15 are not present on this host; running on "+allowed.String()+"\n", errOut)
	require.Contains(t, out, "Cpus_allowed_list:\t"+allowed.String()+"\n")
	require.Contains(t, out, "LWK_SIM_CPUS=2-15\n")
}

func TestExitStatus(t *testing.T) {
	f := newFixture(t, hostTopology(), []int{1}, 0)
	dev := f.b.DevicePath(f.idx)
	tests := []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{name: "success", args: []string{lwkprog, "exit", "0"}, want: 0},
		{name: "exit 3", args: []string{lwkprog, "exit", "3"}, want: 3},
		{name: "explicit os index", args: []string{"0", lwkprog, "exit", "4"}, want: 4},
		{name: "ignored mcexec options", args: []string{"-t", "4", "--mpol-threshold=1M", "--disable-sched-yield", "-n1", lwkprog, "exit", "5"}, want: 5},
		{name: "-n larger than the LWK CPUs", args: []string{"-n", "4", lwkprog, "exit", "0"}, want: 22,
			wantErr: "mcexec: -n 4 is larger than the 1 LWK CPUs\n"},
		{name: "program on PATH", args: []string{"true"}, want: 0},
		{name: "missing program", args: []string{"/nonexistent/prog"}, want: 1,
			wantErr: "mcexec: /nonexistent/prog: No such file or directory\n"},
		{name: "missing os", args: []string{"7", lwkprog, "exit", "0"}, want: 1,
			wantErr: "mcexec: cannot open " + filepath.Join(filepath.Dir(dev), "mcos7") + ": No such file or directory\n"},
		{name: "unknown option", args: []string{"-x", lwkprog}, want: 1, wantErr: "lwk-sim-mcexec: usage: unknown option -x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := exitCode(t, f.command(tc.args...))
			require.Equal(t, tc.want, code, errOut)
			if tc.wantErr != "" {
				require.True(t, strings.HasPrefix(errOut, tc.wantErr), "stderr %q", errOut)
			}
		})
	}
}

// startSleeping runs "lwkprog sleep" through the stand-in and returns the
// command and the program's pid.
func startSleeping(t *testing.T, f *simNode, args ...string) (*exec.Cmd, int) {
	t.Helper()
	cmd := f.command(append(args, lwkprog, "sleep")...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	return cmd, pid
}

func TestKilledProgram(t *testing.T) {
	f := newFixture(t, hostTopology(), []int{1}, 0)
	tests := []struct {
		name string
		kill func(standIn *exec.Cmd, prog int)
		want int
	}{
		{
			name: "program killed by SIGKILL",
			kill: func(_ *exec.Cmd, prog int) { require.NoError(t, syscall.Kill(prog, syscall.SIGKILL)) },
			want: 128 + 9,
		},
		{
			name: "SIGTERM to the stand-in is forwarded",
			kill: func(c *exec.Cmd, _ int) { require.NoError(t, c.Process.Signal(syscall.SIGTERM)) },
			want: 128 + 15,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, pid := startSleeping(t, f)
			// The instance is held while the stand-in runs.
			require.ErrorIs(t, f.b.DestroyOS(context.Background(), f.idx), ihk.ErrBusy)
			tc.kill(cmd, pid)
			err := cmd.Wait()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			require.True(t, cmd.ProcessState.Exited())
			require.Equal(t, tc.want, cmd.ProcessState.ExitCode())
		})
	}
}

func TestStandInKilledKillsProgram(t *testing.T) {
	f := newFixture(t, hostTopology(), []int{1}, 0)
	cmd, pid := startSleeping(t, f)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool {
		// Gone, or a zombie waiting for init.
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(data), ") Z ")
	}, 5*time.Second, 10*time.Millisecond)
	// Nothing holds the instance any more.
	require.NoError(t, f.b.DestroyOS(context.Background(), f.idx))
}

func TestSignalForwarding(t *testing.T) {
	f := newFixture(t, hostTopology(), []int{1}, 0)
	cmd := f.command(lwkprog, "trap-usr1", "7")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	require.NoError(t, cmd.Process.Signal(syscall.SIGUSR1))
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 7, cmd.ProcessState.ExitCode())
}

func TestNotRunning(t *testing.T) {
	f := newFixture(t, hostTopology(), []int{1}, time.Hour)
	code, _, errOut := exitCode(t, f.command(lwkprog, "exit", "0"))
	require.Equal(t, 1, code)
	require.Equal(t, "mcexec: os 0 is not running (status BOOTING)\n", errOut)
}

func TestWrongBackend(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "lwk.conf")
	require.NoError(t, os.WriteFile(conf, []byte("IHKBackend=ihk\nOSCores=0\nProfile=mck Image=/boot/mckernel.img Kargs=hidos\n"), 0o644))
	cmd := exec.Command(standIn, "--config", conf, "true")
	code, _, errOut := exitCode(t, cmd)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "works only with IHKBackend=sim")
}

func TestConfigFromEnv(t *testing.T) {
	f := newFixture(t, hostTopology(), []int{1}, 0)
	cmd := exec.Command(standIn, lwkprog, "exit", "6")
	cmd.Env = append(os.Environ(), "LWK_CONF="+f.conf)
	code, _, errOut := exitCode(t, cmd)
	require.Equal(t, 6, code, errOut)
}

// TestPermissionDenied runs the stand-in as nobody against a device that
// only root may open.
func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("LWK_FORCE_ROOT_TESTS") != "" {
			t.Fatal("LWK_FORCE_ROOT_TESTS is set but the test does not run as root")
		}
		t.Skip("needs root to run the stand-in as another user (set LWK_FORCE_ROOT_TESTS to make this a failure)")
	}
	f := newFixture(t, hostTopology(), []int{1}, 0)
	dev := f.b.DevicePath(f.idx)
	require.NoError(t, os.Chmod(dev, 0o600))
	cmd := f.command(lwkprog, "exit", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	code, _, errOut := exitCode(t, cmd)
	require.Equal(t, 1, code)
	require.Equal(t, "mcexec: cannot open "+dev+": Permission denied\n", errOut)

	// Granting the job user rw (what the prolog does) lets it run.
	require.NoError(t, os.Chown(dev, 65534, 65534))
	cmd = f.command(lwkprog, "exit", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	code, _, errOut = exitCode(t, cmd)
	require.Equal(t, 0, code, errOut)
}
