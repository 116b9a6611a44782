// Command benchmonitor measures lwk-monitor's own cost at 1 s sampling, with
// the simulated IHK backend and one booted LWK whose "program" is a
// CPU-bound loop pinned to an app core (as a child of a stand-in proxy that
// holds the device, so the simulator counts it as LWK time). Rounds
// alternate the monitor running and stopped (SIGSTOP), in ABBA order, and
// it prints:
//
//   - CPU seconds the monitor used per sample (utime+stime over the rounds
//     it ran, divided by the samples it spooled). With the simulator this
//     includes the simulator's own work (a state file under a lock and a
//     /proc scan per rusage read), so it is an upper bound for the real
//     driver, whose GETRUSAGE is a memory copy;
//
//   - how often any monitor thread was seen on an app core (every thread's
//     last CPU, /proc/<pid>/task/<tid>/stat field 39, read every 20 ms) and
//     whether every thread's affinity is the OS cores only (target: never);
//
//   - the loop's throughput with the monitor sampling vs stopped, per round
//     pair and overall (target >= 0.995).
//
//     go run ./tools/benchmonitor --bin bin [--rounds 6] [--round 12s]   (root)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/apply"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
)

const (
	modeEnv = "LWK_BENCHMONITOR_MODE"
	argEnv  = "LWK_BENCHMONITOR_ARG"
	job     = 777
)

func main() {
	switch os.Getenv(modeEnv) {
	case "proxy":
		proxy()
		return
	case "loop":
		loop()
		return
	}
	bin := flag.String("bin", "bin", "directory with lwk-monitor")
	rounds := flag.Int("rounds", 6, "rounds (pairs of monitor-on and monitor-off runs); at least 5")
	round := flag.Duration("round", 12*time.Second, "length of one run")
	osCore := flag.Int("os-core", 0, "the OS core (the monitor runs here)")
	appCore := flag.Int("app-core", 1, "the app core (the loop runs here)")
	flag.Parse()
	if err := run(*bin, *rounds, *round, *osCore, *appCore); err != nil {
		fmt.Fprintln(os.Stderr, "benchmonitor:", err)
		os.Exit(1)
	}
}

func run(bin string, rounds int, round time.Duration, osCore, appCore int) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (simulated IHK state, other processes' /proc)")
	}
	if rounds < 5 {
		return errors.New("--rounds: at least 5")
	}
	if runtime.NumCPU() < 2 || osCore == appCore {
		return errors.New("needs two CPUs: one OS core, one app core")
	}
	mon, err := filepath.Abs(filepath.Join(bin, "lwk-monitor"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(mon); err != nil {
		return fmt.Errorf("%w (make build)", err)
	}
	if err := pinAll(os.Getpid(), cpuset.New(osCore)); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchmonitor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf, cfg, err := writeConf(dir, osCore)
	if err != nil {
		return err
	}
	node, err := lwknode.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		return err
	}
	osIdx, err := boot(node, dir)
	// Whatever boot made (the instance, the reservations, the proxies'
	// cgroups on this host's hierarchies) goes again, as the epilog does,
	// also when boot failed half-way.
	defer func() {
		if _, terr := node.Cleanup(context.Background(), job); terr != nil {
			fmt.Fprintln(os.Stderr, "benchmonitor: teardown:", terr)
		}
	}()
	if err != nil {
		return err
	}
	dev := node.IHK.(*sim.Backend).DevicePath(osIdx)
	spoolDir := filepath.Join(dir, "spool")
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(mon, "--config", conf, "--node", "bench", "--interval", "1s",
		"--spool-dir", spoolDir, "--web.listen-address", port)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGCONT); _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	samplesFile := filepath.Join(spoolDir, fmt.Sprintf("job-%d.samples", job))
	// Wait for the first sample: the monitor found the job.
	for deadline := time.Now().Add(20 * time.Second); countLines(samplesFile) == 0; {
		if time.Now().After(deadline) {
			return errors.New("the monitor took no sample in 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("benchmonitor: lwk-monitor pid %d on os core %d, sampling every 1s; loop on app core %d; %d round pairs of %s\n",
		pid, osCore, appCore, rounds, round)

	var on, off, onCPU, offCPU []float64
	var cpuTicks uint64
	simSec := 0.0
	samples := 0
	seen, onApp := 0, 0
	for r := range rounds {
		order := []bool{true, false}
		if r%2 == 1 {
			order = []bool{false, true}
		}
		var pairOn, pairOff, pairOnCPU, pairOffCPU float64
		for _, running := range order {
			if running {
				_ = cmd.Process.Signal(syscall.SIGCONT)
			} else {
				_ = cmd.Process.Signal(syscall.SIGSTOP)
			}
			t0, s0 := procTicks(pid), countLines(samplesFile)
			d0 := 0.0
			if running {
				d0 = simSeconds(port)
			}
			stop := make(chan struct{})
			obs := make(chan [2]int, 1)
			go func() { obs <- watchCPUs(pid, appCore, stop) }()
			iters, perCPU, err := runLoop(dev, appCore, round)
			close(stop)
			o := <-obs
			if err != nil {
				return err
			}
			if running {
				cpuTicks += procTicks(pid) - t0
				simSec += simSeconds(port) - d0
				samples += countLines(samplesFile) - s0
				seen += o[0]
				onApp += o[1]
				pairOn, pairOnCPU = iters, perCPU
				on = append(on, iters)
				onCPU = append(onCPU, perCPU)
			} else {
				pairOff, pairOffCPU = iters, perCPU
				off = append(off, iters)
				offCPU = append(offCPU, perCPU)
			}
		}
		fmt.Printf("round %d: loop %.0f iterations/s with the monitor, %.0f without: ratio %.4f; per CPU second of the loop: ratio %.4f\n",
			r+1, pairOn, pairOff, pairOn/pairOff, pairOnCPU/pairOffCPU)
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	affinityOK, threads := affinityOnly(pid, cpuset.New(osCore))
	ratio := mean(on) / mean(off)
	var pairs []float64
	for i := range on {
		pairs = append(pairs, on[i]/off[i])
	}
	sort.Float64s(pairs)
	cpuSec := float64(cpuTicks) / 100
	fmt.Printf("monitor CPU: %.3f s over %d samples = %.2f ms per sample, simulated driver included (with the real driver GETRUSAGE is a memory copy)\n",
		cpuSec, samples, 1000*cpuSec/float64(max(samples, 1)))
	fmt.Printf("wall time inside the simulated driver (state file under a lock, /proc scans; waits included): %.2f ms per sample\n",
		1000*simSec/float64(max(samples, 1)))
	fmt.Printf("monitor threads on the app core: %d of %d observations; affinity of all %d threads = os core only: %v (target: never)\n",
		onApp, seen, threads, affinityOK)
	fmt.Printf("throughput ratio with/without 1 s sampling: %.4f overall (mean over rounds), per pair min %.4f median %.4f max %.4f (target >= 0.995)\n",
		ratio, pairs[0], pairs[len(pairs)/2], pairs[len(pairs)-1])
	fmt.Printf("throughput per CPU second of the loop with/without: %.4f overall\n", mean(onCPU)/mean(offCPU))
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at the end: %s", l)
	}
	if onApp > 0 || !affinityOK {
		return errors.New("a monitor thread ran on the app core")
	}
	return nil
}

// freePort returns a free loopback address.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// simSeconds is the monitor's time inside the simulated driver so far
// (wall time, an upper bound of its CPU time there).
func simSeconds(addr string) float64 {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/v1/status")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Sim *float64 `json:"sim_driver_seconds"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Sim == nil {
		return 0
	}
	return *st.Sim
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func writeConf(dir string, osCore int) (string, *config.Config, error) {
	root, err := fixtureRoot()
	if err != nil {
		return "", nil, err
	}
	image := filepath.Join(dir, "mckernel.img")
	if err := os.WriteFile(image, []byte("image"), 0o644); err != nil {
		return "", nil, err
	}
	text := fmt.Sprintf(`IHKBackend=sim
SysfsRoot=%s
OSCores=%d
SystemNUMANodes=0-1
JobNUMANodes=2-11
DefaultProfile=mck
Profile=mck Image=%s Kargs="hidos"
StateDir=%s/state
SimStateDir=%s/sim
SimBootDelay=10ms
LogDir=%s/log
RunDir=%s/run
McexecPath=/bin/true
ScontrolPath=/bin/true
ScancelPath=/bin/true
`, root, osCore, image, dir, dir, dir, dir)
	path := filepath.Join(dir, "lwk.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", nil, err
	}
	cfg, err := config.Load(path)
	return path, cfg, err
}

func fixtureRoot() (string, error) {
	p, err := filepath.Abs("testdata/machines/paper-e5520-fake12")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(p, "sys")); err != nil {
		return "", fmt.Errorf("run from the repository root: %w", err)
	}
	return p, nil
}

func boot(node *lwknode.Node, dir string) (int, error) {
	ctx := context.Background()
	lk, err := node.Lock(ctx)
	if err != nil {
		return -1, err
	}
	defer lk.Release()
	p := &plan.Plan{JobID: job, Profile: "mck", Image: filepath.Join(dir, "mckernel.img"), Kargs: "hidos",
		CPUs: []int{4, 5}, Memory: []ihk.MemChunk{{NUMANode: 2, Bytes: 64 << 20}},
		Proxy: plan.Proxy{CPUs: cpuset.New(0), MemoryBytes: 128 << 20, CPUQuotaUS: 50000, CPUPeriodUS: 100000}}
	return apply.Run(ctx, node.ApplyDeps(), apply.Job{ID: job, User: "root", Spec: "mck"}, p)
}

// runLoop runs the loop on the app core as the child of a device-holding
// proxy for d and returns its iterations per wall second and per second of
// its own CPU time (the second does not count time other programs of this
// shared machine took the app core; it still counts what the monitor could
// do to the loop from the OS core: caches, interrupts).
func runLoop(dev string, appCore int, d time.Duration) (float64, float64, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=proxy", argEnv+"="+dev+"|"+strconv.Itoa(appCore)+"|"+d.String())
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("loop: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("loop printed %q", out)
	}
	wall, err1 := strconv.ParseFloat(f[0], 64)
	cpu, err2 := strconv.ParseFloat(f[1], 64)
	return wall, cpu, errors.Join(err1, err2)
}

// proxy holds the device like mcexec and runs the loop as its child.
func proxy() {
	args := strings.Split(os.Getenv(argEnv), "|")
	f, err := os.OpenFile(args[0], os.O_RDWR, 0)
	if err != nil || unix.Flock(int(f.Fd()), unix.LOCK_SH) != nil {
		os.Exit(3)
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), modeEnv+"=loop", argEnv+"="+args[1]+"|"+args[2])
	child.Stdout = os.Stdout
	if child.Run() != nil {
		os.Exit(4)
	}
	info, _, err := sim.ReadDevice(f)
	if err == nil {
		ru, _ := child.ProcessState.SysUsage().(*syscall.Rusage)
		_ = sim.AppendUsage(f, sim.UsageRecord{BootID: info.BootID, PID: child.Process.Pid,
			UserNS: uint64(ru.Utime.Nano()), SystemNS: uint64(ru.Stime.Nano())})
	}
}

// loop pins itself to the app core and counts iterations of a fixed
// arithmetic kernel for the given time.
func loop() {
	args := strings.Split(os.Getenv(argEnv), "|")
	core, _ := strconv.Atoi(args[0])
	d, _ := time.ParseDuration(args[1])
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(core)
	if unix.SchedSetaffinity(0, &set) != nil {
		os.Exit(5)
	}
	var x uint64 = 1
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for range 1 << 16 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		n++
	}
	el := time.Since(start).Seconds()
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	fmt.Printf("%.0f %.0f\n", float64(n)*65536/el+float64(x&1)*0, float64(n)*65536/cpu)
}

// watchCPUs reads every monitor thread's last CPU every 20 ms until stop;
// it returns observations and how many were on the app core.
func watchCPUs(pid, appCore int, stop <-chan struct{}) [2]int {
	var seen, onApp int
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return [2]int{seen, onApp}
		case <-t.C:
		}
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			if err != nil {
				continue
			}
			s := string(b)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			if len(f) < 37 {
				continue
			}
			cpu, _ := strconv.Atoi(f[36]) // field 39
			seen++
			if cpu == appCore {
				onApp++
			}
		}
	}
}

// affinityOnly reports whether every thread of pid may run only on cpus.
func affinityOnly(pid int, cpus cpuset.CPUSet) (bool, int) {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	ok := true
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		var set unix.CPUSet
		if unix.SchedGetaffinity(tid, &set) != nil {
			continue
		}
		for c := range runtime.NumCPU() {
			if set.IsSet(c) != cpus.Contains(c) {
				ok = false
			}
		}
	}
	return ok, len(tasks)
}

// pinAll pins every thread of pid to cpus.
func pinAll(pid int, cpus cpuset.CPUSet) error {
	var set unix.CPUSet
	for _, c := range cpus.List() {
		set.Set(c)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}

// procTicks is utime+stime of pid. Units: 1/100 s.
func procTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}
