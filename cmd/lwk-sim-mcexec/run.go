package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
)

// host is what run needs from the machine and the process.
type host struct {
	// sysRoot is where the host's sys/devices/system/cpu is read ("/").
	sysRoot string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	// environ is the caller's environment, passed to the program.
	environ []string
}

// startError is a failure before the program ran, with mcexec's exit code.
type startError struct {
	code int
	msg  string
}

func (e *startError) Error() string { return e.msg }

func startFail(code int, format string, args ...any) error {
	return &startError{code: code, msg: fmt.Sprintf(format, args...)}
}

// strerror spells an errno as C's strerror does ("Permission denied").
func strerror(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		s := en.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// forwarded are the signals passed on to the program: 1-64 except those
// that cannot be caught (SIGKILL, SIGSTOP), SIGCHLD, the terminal stop
// signals mcexec does not forward (SIGTSTP, SIGTTIN, SIGTTOU) and SIGURG,
// which the Go runtime sends itself for preemption.
func forwarded() []os.Signal {
	skip := map[syscall.Signal]bool{
		syscall.SIGKILL: true, syscall.SIGSTOP: true, syscall.SIGCHLD: true,
		syscall.SIGTSTP: true, syscall.SIGTTIN: true, syscall.SIGTTOU: true, syscall.SIGURG: true,
	}
	var sigs []os.Signal
	for n := 1; n <= 64; n++ {
		if s := syscall.Signal(n); !skip[s] {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// findDevice picks the instance's stand-in: the given index, else mcos0,
// else the only mcosN present.
func findDevice(devDir string, index int) (string, error) {
	if index >= 0 {
		return filepath.Join(devDir, "mcos"+strconv.Itoa(index)), nil
	}
	first := filepath.Join(devDir, "mcos0")
	if _, err := os.Lstat(first); err == nil {
		return first, nil
	}
	entries, err := os.ReadDir(devDir)
	if err != nil {
		return first, nil // the open reports the error as mcexec would
	}
	var found []string
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "mcos")
		if _, err := strconv.Atoi(n); ok && err == nil {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 0:
		return first, nil
	case 1:
		return filepath.Join(devDir, found[0]), nil
	}
	return "", startFail(1, "mcexec: several OS instances in %s (%s): give the index, e.g. mcexec 1 PROGRAM", devDir, strings.Join(found, ", "))
}

// attach opens the stand-in O_RDWR, holds it with flock(LOCK_SH) and checks
// that it is still the instance's current file.
func attach(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, startFail(1, "mcexec: cannot open %s: %s", path, strerror(err))
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, startFail(1, "mcexec: cannot hold %s: %s", path, strerror(err))
	}
	// DestroyOS may have removed the file between open and flock.
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(path, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		f.Close()
		return nil, startFail(1, "mcexec: cannot open %s: %s", path, strerror(syscall.ENOENT))
	}
	return f, nil
}

// targetCPUs picks the Linux CPUs the program should run on: all LWK CPUs,
// LWK CPU -c, or the SLURM_LOCALID-th of -n slices.
func targetCPUs(o options, lwk []int, localID string) ([]int, error) {
	if o.Partitions > len(lwk) {
		return nil, startFail(22, "mcexec: -n %d is larger than the %d LWK CPUs", o.Partitions, len(lwk))
	}
	if o.StartCPU >= 0 {
		if o.StartCPU >= len(lwk) {
			return nil, startFail(1, "mcexec: -c %d: the instance has %d LWK CPUs", o.StartCPU, len(lwk))
		}
		return []int{lwk[o.StartCPU]}, nil
	}
	if o.Partitions > 1 {
		if r, err := strconv.Atoi(localID); err == nil && r >= 0 && r < o.Partitions {
			per := len(lwk) / o.Partitions
			return lwk[r*per : (r+1)*per], nil
		}
	}
	return lwk, nil
}

// placement decides where the program runs: the target CPUs this process
// may use, or, when none, all CPUs it may use; note says why it differs.
func placement(target, allowed, present cpuset.CPUSet) (pin cpuset.CPUSet, note string) {
	missing := target.Difference(allowed)
	pin = target.Intersection(allowed)
	if pin.IsEmpty() {
		pin = allowed
	}
	if missing.IsEmpty() {
		return pin, ""
	}
	why := "are not present on this host"
	if !missing.Intersection(present).IsEmpty() {
		why = "are not in this process's allowed CPUs " + allowed.String()
	}
	return pin, fmt.Sprintf("lwk-sim-mcexec: simulated LWK CPUs %s %s; running on %s", missing, why, pin)
}

func run(o options, cfg *config.Config, h host) (int, error) {
	if cfg.Backend != config.BackendSim {
		return 0, startFail(1, "lwk-sim-mcexec: lwk.conf has IHKBackend=%s; this simulated mcexec works only with IHKBackend=sim", cfg.Backend)
	}
	path, err := findDevice(cfg.DevDir, o.OSIndex)
	if err != nil {
		return 0, err
	}
	dev, err := attach(path)
	if err != nil {
		return 0, err
	}
	defer dev.Close()
	info, _, err := sim.ReadDevice(dev)
	if err != nil {
		return 0, startFail(1, "mcexec: %s: %v", path, err)
	}
	if st := info.Status(time.Now()); st != ihk.StatusRunning {
		return 0, startFail(1, "mcexec: os %d is not running (status %s)", info.Index, st)
	}
	target, err := targetCPUs(o, info.CPUs, lookupEnv(h.environ, "SLURM_LOCALID"))
	if err != nil {
		return 0, err
	}
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		return 0, startFail(1, "lwk-sim-mcexec: sched_getaffinity: %v", err)
	}
	allowed := fromMask(&mask)
	present, err := readCPUList(filepath.Join(h.sysRoot, "sys/devices/system/cpu/present"))
	if err != nil {
		present = allowed
	}
	pin, note := placement(cpuset.New(target...), allowed, present)
	if note != "" {
		fmt.Fprintln(h.stderr, note)
	}

	prog, err := exec.LookPath(o.Program)
	if err != nil && !errors.Is(err, exec.ErrDot) {
		return 0, startFail(1, "mcexec: %s: %s", o.Program, strerror(unwrapExec(err)))
	}
	if err != nil {
		// Like execvp, run ./prog when PATH names the current directory.
		prog = o.Program
	}
	cmd := &exec.Cmd{
		Path:   prog,
		Args:   append([]string{o.Program}, o.Args...),
		Env:    append(append([]string{}, h.environ...), "LWK_SIM_OS="+strconv.Itoa(info.Index), "LWK_SIM_CPUS="+cpuset.New(target...).String()),
		Stdin:  h.stdin,
		Stdout: h.stdout,
		Stderr: h.stderr,
		// Killing the proxy kills the program, as killing mcexec destroys
		// the LWK process.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded()...)
	defer signal.Stop(sigs)

	if err := startPinned(cmd, pin, &mask); err != nil {
		return 0, startFail(1, "mcexec: %s: %s", o.Program, strerror(unwrapExec(err)))
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	waitErr := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return 0, fmt.Errorf("lwk-sim-mcexec: wait for %s: %w", o.Program, waitErr)
	}
	recordUsage(dev, info.BootID, cmd.ProcessState, h.stderr)
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// startPinned starts cmd with the pin CPU affinity: the forking thread
// takes the affinity for the fork (the child inherits it) and gets its own
// back afterwards. The thread stays locked, because PR_SET_PDEATHSIG fires
// when the thread that forked exits.
func startPinned(cmd *exec.Cmd, pin cpuset.CPUSet, restore *unix.CPUSet) error {
	runtime.LockOSThread()
	var m unix.CPUSet
	for _, c := range pin.List() {
		m.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &m); err != nil {
		return fmt.Errorf("sched_setaffinity %s: %w", pin, err)
	}
	err := cmd.Start()
	_ = unix.SchedSetaffinity(0, restore)
	return err
}

func recordUsage(dev *os.File, bootID string, ps *os.ProcessState, stderr io.Writer) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return
	}
	rec := sim.UsageRecord{
		BootID:      bootID,
		PID:         ps.Pid(),
		UserNS:      uint64(ru.Utime.Nano()),
		SystemNS:    uint64(ru.Stime.Nano()),
		MaxRSSBytes: uint64(ru.Maxrss) * 1024, // getrusage(2): kilobytes
	}
	if err := sim.AppendUsage(dev, rec); err != nil {
		fmt.Fprintf(stderr, "lwk-sim-mcexec: cannot record usage: %v\n", err)
	}
}

func unwrapExec(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		if errors.Is(ee.Err, exec.ErrNotFound) {
			return syscall.ENOENT
		}
		return ee.Err
	}
	return err
}

func lookupEnv(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], key+"="); ok {
			return v
		}
	}
	return ""
}

func fromMask(m *unix.CPUSet) cpuset.CPUSet {
	var ids []int
	for c := 0; c < len(m)*64; c++ {
		if m.IsSet(c) {
			ids = append(ids, c)
		}
	}
	return cpuset.New(ids...)
}

func readCPUList(path string) (cpuset.CPUSet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return cpuset.New(), err
	}
	return cpuset.Parse(strings.TrimSpace(string(data)))
}
