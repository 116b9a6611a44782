package lifecycle

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/hookserver"
)

// startService starts lwk-monitor on the node with its hook socket and
// returns the socket's path and the monitor's PID; the test's cleanup
// stops it (by that PID) and checks it exited cleanly.
func (n *node) startService() (string, int) {
	n.t.Helper()
	logf, err := os.Create(filepath.Join(n.dir, "monitor.log"))
	require.NoError(n.t, err)
	defer logf.Close()
	cmd := exec.Command(filepath.Join(binDir, "lwk-monitor"), "--config", n.conf, "--node", "node1",
		"--web.listen-address", "127.0.0.1:0", "--spool-dir", filepath.Join(n.dir, "spool"),
		"--interval", "1h", "--hang-interval", "0", "--suspend-interval", "0")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(n.t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	n.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			require.NoError(n.t, err, "lwk-monitor: %s", n.readFile("monitor.log"))
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			n.t.Errorf("lwk-monitor did not stop on SIGTERM: %s", n.readFile("monitor.log"))
		}
	})
	sock := filepath.Join(n.dir, "run", hookserver.SocketName)
	require.Eventually(n.t, func() bool {
		fi, err := os.Lstat(sock)
		return err == nil && fi.Mode().Type() == os.ModeSocket
	}, 20*time.Second, 10*time.Millisecond, "no hook socket: %s", n.readFile("monitor.log"))
	fi, err := os.Lstat(sock)
	require.NoError(n.t, err)
	require.Equal(n.t, os.FileMode(0o600), fi.Mode().Perm(), "the socket is root's alone")
	return sock, cmd.Process.Pid
}

func (n *node) readFile(name string) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, name))
	return string(b)
}

// ask has the service run a hook with the job environment n.run gives the
// programs.
func (n *node) ask(ctx context.Context, sock, hook string, jobID int) (int, string, error) {
	var stderr strings.Builder
	status, err := hookserver.Ask(ctx, sock, hookserver.Request{Hook: hook, ConfigPath: n.conf, Environ: n.jobEnv(jobID)}, &stderr)
	return status, stderr.String(), err
}

// openFDs counts the process's descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	require.NoError(t, err)
	return len(ents)
}

// doneLines returns the "prolog done" and "epilog done" log lines of a job.
func (n *node) doneLines(jobID int) []map[string]any {
	n.t.Helper()
	f, err := os.Open(filepath.Join(n.dir, "log", "slurm-lwk.log"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(n.t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if msg, _ := m["msg"].(string); (msg == "prolog done" || msg == "epilog done") && m["job"] == float64(jobID) {
			out = append(out, m)
		}
	}
	require.NoError(n.t, sc.Err())
	return out
}

// The node service runs job after job in its own process: each prolog
// boots (the same instance and marker as the program's), each epilog
// leaves the node pristine, the log says the service ran them, and the
// service keeps no descriptor per job.
func TestNodeServiceRunsJobAfterJob(t *testing.T) {
	n := newNode(t)
	sock, pid := n.startService()
	ctx := context.Background()
	const jobs = 12
	var fdsAfterFirst int
	for i := range jobs {
		job := 70 + i
		status, stderr, err := n.ask(ctx, sock, hookserver.HookProlog, job)
		require.NoError(t, err)
		require.Zero(t, status, "prolog of job %d: %s", job, stderr)
		st := n.status()
		require.Len(t, st.OSInstances, 1, "job %d", job)
		require.Equal(t, "RUNNING", st.OSInstances[0].Status)
		require.Equal(t, "2-15", st.OSInstances[0].CPUs)
		marker, err := os.ReadFile(filepath.Join(n.dir, "run", "job-"+strconv.Itoa(job)))
		require.NoError(t, err)
		require.Contains(t, string(marker), fmt.Sprintf("os=%d\nattempt=0\n", st.OSInstances[0].Index))

		status, stderr, err = n.ask(ctx, sock, hookserver.HookEpilog, job)
		require.NoError(t, err)
		require.Zero(t, status, "epilog of job %d: %s", job, stderr)
		n.requirePristine(fmt.Sprintf("after job %d", job))

		lines := n.doneLines(job)
		require.Len(t, lines, 2, "job %d: done lines", job)
		for _, l := range lines {
			require.Equal(t, true, l["resident"], "job %d: %v", job, l)
			require.Equal(t, float64(pid), l["pid"], "job %d ran in the service: %v", job, l)
		}
		if i == 1 {
			fdsAfterFirst = openFDs(t, pid)
		}
	}
	// The monitor's own descriptors for a job (eventfds) go when it next
	// sees the job gone: wait for that rather than race it.
	require.Eventually(t, func() bool { return openFDs(t, pid) <= fdsAfterFirst }, 10*time.Second, 50*time.Millisecond,
		"descriptors leaked over %d jobs: %d, %d after the second", jobs-2, openFDs(t, pid), fdsAfterFirst)
}

// A prolog whose client goes away (slurmd killed the plugin's process at
// PrologEpilogTimeout) stops as the killed program would, and the epilog,
// through the service, leaves the node pristine. A prolog failing in the
// service gives the program's status and line.
func TestNodeServiceClientGoneThenEpilog(t *testing.T) {
	n := newNode(t)
	sock, _ := n.startService()
	gate := filepath.Join(n.dir, "hold-show-job")
	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	t.Cleanup(func() { _ = os.Remove(gate) })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := n.ask(ctx, sock, hookserver.HookProlog, 81)
		done <- err
	}()
	require.Eventually(t, func() bool {
		for _, c := range n.slurmCalls("scontrol") {
			if strings.Contains(c, "show job -d 81") {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the prolog never asked for the job")
	cancel()
	select {
	case err := <-done:
		require.Error(t, err, "a client gone gets no status")
	case <-time.After(10 * time.Second):
		t.Fatal("Ask did not return after its context ended")
	}
	require.NoError(t, os.Remove(gate))

	status, stderr, err := n.ask(context.Background(), sock, hookserver.HookEpilog, 81)
	require.NoError(t, err)
	require.Zero(t, status, stderr)
	// The cancelled prolog has finished by now: the epilog waited for it
	// at the node lock, or it stopped before taking it and found the
	// job's end recorded.
	require.Eventually(t, func() bool {
		for _, l := range n.doneLines(81) {
			if l["msg"] == "epilog done" {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "log: %s", n.readFile("log/slurm-lwk.log"))
	n.requirePristine("after the cancelled prolog and its epilog")

	// A job that finds another job's LWK on the node is requeued, by the
	// service as by the program: the same status and line for slurmd.
	status, _, err = n.ask(context.Background(), sock, hookserver.HookProlog, 82)
	require.NoError(t, err)
	require.Zero(t, status)
	status, stderr, err = n.ask(context.Background(), sock, hookserver.HookProlog, 83)
	require.NoError(t, err)
	_, progStderr, progErr := n.run("lwk-prolog", 83, nil)
	var exitErr *exec.ExitError
	progStatus := 0
	if progErr != nil {
		require.ErrorAs(t, progErr, &exitErr)
		progStatus = exitErr.ExitCode()
	}
	require.Equal(t, progStatus, status, "service %q, program %q", stderr, progStderr)
	require.Contains(t, stderr, "lwk: job 83 requeued: ")
	require.Contains(t, progStderr, "lwk: job 83 requeued: ")
	for _, job := range []int{83, 82} {
		status, stderr, err = n.ask(context.Background(), sock, hookserver.HookEpilog, job)
		require.NoError(t, err)
		require.Zero(t, status, stderr)
	}
	n.requirePristine("after jobs 82 and 83")
}

// The service declines while the simulator injects faults (they act on a
// process of their own), and the program, which the plugin then runs,
// fails at the injected step as before.
func TestNodeServiceDeclinesWithFaults(t *testing.T) {
	n := newNode(t)
	sock, _ := n.startService()
	require.NoError(t, os.MkdirAll(filepath.Join(n.dir, "sim"), 0o700))
	faults := filepath.Join(n.dir, "sim", "faults")
	for _, directive := range []string{"fault boot", "crash boot"} {
		require.NoError(t, os.WriteFile(faults, []byte(directive+"\n"), 0o600))
		_, _, err := n.ask(context.Background(), sock, hookserver.HookProlog, 91)
		require.ErrorIs(t, err, hookserver.ErrDeclined, directive)
		require.Contains(t, err.Error(), "simulator injects faults")
		require.Empty(t, n.doneLines(91), "%s: a declined prolog ran", directive)
	}
	require.NoError(t, os.WriteFile(faults, []byte("fault boot\n"), 0o600))
	_, stderr, err := n.run("lwk-prolog", 91, nil)
	require.Error(t, err, "the program's prolog with a boot fault")
	require.Contains(t, stderr, "boot")
	lines := n.doneLines(91)
	require.Len(t, lines, 1)
	require.Nil(t, lines[0]["resident"], "the program's line: %v", lines[0])

	require.NoError(t, os.Remove(faults))
	status, stderr, err := n.ask(context.Background(), sock, hookserver.HookEpilog, 91)
	require.NoError(t, err)
	require.Zero(t, status, stderr)
	n.requirePristine("after the faulted prolog and the epilog")
}
