//go:build vmnode

package vmnode

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// helperEnv selects what the test binary does when it is started as a
// helper process (a stand-in for a proxy or for the job's user): it waits
// for a line on stdin, so the test can place it in a cgroup first, then
// acts and reports on stdout.
const helperEnv = "LWK_VMNODE_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runHelper(mode string, args []string) int {
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "helper: no go-ahead:", err)
		return 2
	}
	switch mode {
	case "spin":
		// args[0] busy threads, until killed.
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return 2
		}
		for range n - 1 {
			go spin()
		}
		fmt.Println("spinning")
		spin()
	case "alloc":
		// Touch args[0] MiB of anonymous memory, then report survival.
		mib, err := strconv.Atoi(args[0])
		if err != nil {
			return 2
		}
		var keep [][]byte
		for range mib {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Printf("survived %d MiB\n", len(keep))
		_, _ = in.ReadString('\n')
	case "oncpu":
		// Pin to CPU args[0], run there, report the CPU the kernel ran us on.
		cpu, err := strconv.Atoi(args[0])
		if err != nil {
			return 2
		}
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			fmt.Println("error", err)
			return 0
		}
		deadline := time.Now().Add(50 * time.Millisecond)
		for time.Now().Before(deadline) {
		}
		b, err := os.ReadFile("/proc/thread-self/stat")
		if err != nil {
			fmt.Println("error", err)
			return 0
		}
		fmt.Println("ran-on", processorOf(string(b)))
	case "escape":
		// args: the job's cgroup dir, the user/ cgroup dir, a CPU outside
		// the confinement. Try every way out; report each errno.
		fmt.Println(string(tryEscape(args[0], args[1], args[2])))
		_, _ = in.ReadString('\n')
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
		return 2
	}
	return 0
}

func spin() {
	runtime.LockOSThread()
	for x := 0; ; x++ {
		_ = x
	}
}

// processorOf returns field 39 (processor) of a /proc stat line.
func processorOf(stat string) string {
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 37 {
		return "?"
	}
	return f[36]
}

// tryEscape is what an unprivileged process in the job tries: move itself
// to the root cgroup or to the job's own cgroup, widen or lift the limits,
// make a cgroup of its own, and run on a CPU outside its cpuset. The
// result maps each attempt to its error ("" when it succeeded).
func tryEscape(jobDir, userDir, outsideCPU string) []byte {
	pid := strconv.Itoa(os.Getpid())
	res := map[string]string{}
	write := func(name, path, value string) {
		res[name] = errString(os.WriteFile(path, []byte(value), 0))
	}
	write("move-to-root", "/sys/fs/cgroup/cgroup.procs", pid)
	write("move-to-job", filepath.Join(jobDir, "cgroup.procs"), pid)
	write("widen-user-cpus", filepath.Join(userDir, "cpuset.cpus"), "0-3")
	write("widen-job-cpus", filepath.Join(jobDir, "cpuset.cpus"), "0-3")
	write("lift-memory-max", filepath.Join(userDir, "memory.max"), "max")
	write("lift-cpu-max", filepath.Join(userDir, "cpu.max"), "max 100000")
	write("enable-controllers", filepath.Join(userDir, "cgroup.subtree_control"), "+cpu")
	res["mkdir-own-cgroup"] = errString(os.Mkdir(filepath.Join(userDir, "mine"), 0o755))
	cpu, err := strconv.Atoi(outsideCPU)
	if err != nil {
		res["setaffinity-outside"] = err.Error()
	} else {
		var set unix.CPUSet
		set.Set(cpu)
		res["setaffinity-outside"] = errString(unix.SchedSetaffinity(0, &set))
	}
	b, _ := json.Marshal(res)
	return b
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

// helper is one running helper process.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error
}

// startHelper starts the test binary as a helper; cred runs it as another
// user (nil: root).
func startHelper(t *testing.T, cred *syscall.Credential, mode string, args ...string) *helper {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, args...)
	cmd.Env = []string{helperEnv + "=" + mode, "PATH=/bin"}
	cmd.Dir = "/"
	cmd.Stderr = os.Stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	h := &helper{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		h.done <- cmd.Wait()
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// proceed lets the helper act.
func (h *helper) proceed() {
	h.t.Helper()
	_, err := io.WriteString(h.stdin, "go\n")
	require.NoError(h.t, err)
}

// line returns the helper's next output line ("" when it exited first).
func (h *helper) line() string {
	h.t.Helper()
	select {
	case l := <-h.lines:
		return l
	case <-time.After(2 * time.Minute):
		h.t.Fatalf("helper %d (%v) said nothing within 2 minutes", h.pid(), h.cmd.Args)
		return ""
	}
}

// wait returns how the helper ended.
func (h *helper) wait() error {
	h.t.Helper()
	for range h.lines {
	}
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(2 * time.Minute):
		h.t.Fatalf("helper %d did not end within 2 minutes", h.pid())
		return nil
	}
}

// stop kills the helper and reaps it.
func (h *helper) stop() {
	_ = h.cmd.Process.Kill()
	_ = h.stdin.Close()
	for range h.lines {
	}
	err := <-h.done
	h.done <- err
}
