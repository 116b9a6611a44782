// Command benchlifecycle measures what lwk-prolog and lwk-epilog themselves
// cost, with the simulated IHK backend and no boot delay, and what a
// Linux-only job pays for passing through them. Every round runs, in turn,
// /bin/true (the cost of starting any program), an empty Go program (the
// least any Go program costs to start and exit), the scontrol stand-in the
// prolog calls (twice), LWK prolog+epilog pairs on the paper's node and on
// a generated 1024-CPU node, and a Linux-only pair; it prints medians over
// the rounds, the overhead above the baseline, and for each node the ratio
// of the pair's own time to two bare process starts (target: at most 2).
//
// The LWK pairs and the empty program run with GOMAXPROCS=2, as the SPANK
// plugin starts its programs; the 1024-CPU pair also runs with
// GOMAXPROCS=1024, the runtime's default on such a node, as a
// Prolog=/Epilog= program without the plugin would start. Each pair's own
// time is split into "in main", from each program's start of work to its
// "done" log line (its "seconds", less Slurm and the driver), and "outside
// main", the rest of its wall time beyond a bare process start: runtime
// start, package initialisation, the little left after the log line, exit.
//
// The same pairs then run through the node service, as the SPANK plugin
// has them run when lwk-monitor serves the node's lwk.conf: one lwk-monitor
// per node, asked over its hook socket, starts no program; all of such a
// pair's wall time less Slurm and the driver is its own, and its ratio is
// against the same two bare process starts.
//
//	go run ./tools/benchlifecycle [--rounds 30]   (as root, from the repository)
//
// The 1024-CPU sysfs tree is written into the temporary directory by
// testdata/machines/gen (it is not committed), and the empty Go program
// (./tools/benchlifecycle/empty) is built there, so the go tool must be on
// PATH.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/hookserver"
)

// scontrol is the stand-in for Slurm's scontrol: the node's layout and the
// job's allocation (every CPU, memMB of memory) on it.
func scontrol(sockets, coresPerSocket, cpus, memMB int) string {
	return fmt.Sprintf(`#!/bin/sh
if [ "$2" = node ]; then
	echo "NodeName=node1 CoresPerSocket=%[2]d CPUTot=%[3]d Sockets=%[1]d Boards=1 ThreadsPerCore=2"
	exit 0
fi
cat <<EOF
JobId=$4 JobName=bench
   JobState=RUNNING Reason=None Dependency=(null)
   NodeList=node1
   JOB_GRES=(null)
     Nodes=node1 CPU_IDs=0-%[4]d Mem=%[5]d GRES=
EOF
`, sockets, coresPerSocket, cpus, cpus-1, memMB)
}

func main() {
	rounds := flag.Int("rounds", 30, "rounds (at least 20)")
	bin := flag.String("bin", "bin", "directory with lwk-prolog and lwk-epilog")
	flag.Parse()
	if err := run(*rounds, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "benchlifecycle:", err)
		os.Exit(1)
	}
}

func run(rounds int, bin string) error {
	if rounds < 20 {
		return fmt.Errorf("--rounds %d: at least 20", rounds)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the prolog chowns the instance's device")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	fixture, err := filepath.Abs("testdata/machines/paper-e5520-fake12")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lwk-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer removeCgroupPrefix()
	big, err := generateBig(dir)
	if err != nil {
		return err
	}
	emptyGo, err := buildEmptyGo(dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scontrol"), []byte(scontrol(2, 4, 16, 10240)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scontrol-big"), []byte(scontrol(4, 128, 1024, 65536)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "mck.img"), []byte("image"), 0o644); err != nil {
		return err
	}
	// The journal's StateDir on this machine's disk, and on a tmpfs as the
	// default (/run/slurm-lwk/state) is on a production node.
	tmpfs := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(tmpfs, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", tmpfs, err)
	}
	defer func() { _ = syscall.Unmount(tmpfs, 0) }()
	diskConf, err := writeConf(dir, "disk", filepath.Join(dir, "state"), fixture, paperNode)
	if err != nil {
		return err
	}
	tmpfsConf, err := writeConf(dir, "tmpfs", filepath.Join(tmpfs, "state"), fixture, paperNode)
	if err != nil {
		return err
	}
	bigConf, err := writeConf(dir, "big", filepath.Join(tmpfs, "state-big"), big, bigNode)
	if err != nil {
		return err
	}
	// The node service serving the hooks, one per node (each has its own
	// RunDir and so its own socket), as a node runs it: on its OS cores,
	// sampling rarely, so that its own work stays out of the figures.
	for _, m := range []struct{ conf, name string }{{tmpfsConf, "tmpfs"}, {bigConf, "big"}} {
		stop, err := startMonitor(bin, dir, m.conf, m.name)
		if err != nil {
			return err
		}
		defer stop()
	}
	// Each pair is a new job: an epilog records that the job's epilog ran,
	// and a later prolog of the same job attempt boots nothing.
	job := 6
	// The SPANK plugin runs the programs with GOMAXPROCS=2 (spank/lwk.c);
	// procs "" leaves the runtime its default, one scheduler per CPU.
	env := func(conf, spec, procs string) []string {
		e := []string{"LWK_CONF=" + conf, "SLURM_JOB_ID=" + strconv.Itoa(job), "SLURM_JOB_UID=65534", "SLURM_JOB_GID=65534",
			"SLURM_JOB_USER=nobody", "SLURMD_NODENAME=node1", "LWK_MODE=" + spec, "PATH=/usr/bin:/bin"}
		if procs != "" {
			e = append(e, "GOMAXPROCS="+procs)
		}
		return e
	}
	timeIt := func(path string, env []string, args ...string) (time.Duration, error) {
		cmd := exec.Command(path, args...)
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("%s: %w: %s", path, err, out)
		}
		return d, nil
	}
	// pair runs an LWK prolog and epilog and returns their wall time and,
	// from their last log lines, the time their main functions took and
	// the part of it spent in the simulated driver.
	pair := func(conf, logDir, procs string) (sample, error) {
		job++
		p, err := timeIt(filepath.Join(bin, "lwk-prolog"), env(conf, "mck", procs))
		if err != nil {
			return sample{}, err
		}
		e, err := timeIt(filepath.Join(bin, "lwk-epilog"), env(conf, "mck", procs))
		if err != nil {
			return sample{}, err
		}
		s, err := doneTimes(filepath.Join(logDir, "slurm-lwk.log"))
		s.wall = p + e
		return s, err
	}
	// resident has the node service at conf's socket run the pair: no
	// program starts.
	resident := func(conf, name, logDir string) (sample, error) {
		job++
		sock := filepath.Join(dir, "run-"+name, hookserver.SocketName)
		start := time.Now()
		for _, hook := range []string{hookserver.HookProlog, hookserver.HookEpilog} {
			var out strings.Builder
			status, err := hookserver.Ask(context.Background(), sock, hookserver.Request{
				Hook: hook, ConfigPath: conf, Environ: env(conf, "mck", ""),
			}, &out)
			if err != nil || status != 0 {
				return sample{}, fmt.Errorf("%s through %s: status %d, %v: %s", hook, sock, status, err, out.String())
			}
		}
		wall := time.Since(start)
		s, err := doneTimes(filepath.Join(dir, logDir, "slurm-lwk.log"))
		s.wall = wall
		return s, err
	}
	var base, empty, sctl, linux []time.Duration
	var disk, mem, large, largeDefault, memRes, largeRes samples
	for r := 0; r < rounds; r++ {
		t, err := timeIt("/bin/true", nil)
		if err != nil {
			return err
		}
		base = append(base, t)
		g, err := timeIt(emptyGo, []string{"GOMAXPROCS=2"})
		if err != nil {
			return err
		}
		empty = append(empty, g)
		s, err := timeIt(filepath.Join(dir, "scontrol"), nil, "show", "job", "-d", "7")
		if err != nil {
			return err
		}
		sctl = append(sctl, s)
		for _, p := range []struct {
			conf, logDir, procs string
			to                  *samples
		}{
			{diskConf, "log-disk", "2", &disk}, {tmpfsConf, "log-tmpfs", "2", &mem}, {bigConf, "log-big", "2", &large},
			// As a real 1024-CPU node starts a Prolog=/Epilog= program
			// that no plugin gave GOMAXPROCS.
			{bigConf, "log-big", "1024", &largeDefault},
		} {
			s, err := pair(p.conf, filepath.Join(dir, p.logDir), p.procs)
			if err != nil {
				return err
			}
			p.to.add(s)
		}
		for _, p := range []struct {
			conf, name string
			to         *samples
		}{{tmpfsConf, "tmpfs", &memRes}, {bigConf, "big", &largeRes}} {
			s, err := resident(p.conf, p.name, "log-"+p.name)
			if err != nil {
				return err
			}
			p.to.add(s)
		}
		job++
		lp, err := timeIt(filepath.Join(bin, "lwk-prolog"), env(diskConf, "", ""))
		if err != nil {
			return err
		}
		le, err := timeIt(filepath.Join(bin, "lwk-epilog"), env(diskConf, "", ""))
		if err != nil {
			return err
		}
		linux = append(linux, lp+le)
	}
	mb, mg, ms, mx := median(base), median(empty), median(sctl), median(linux)
	fmt.Printf("rounds: %d (alternating; medians)\n", rounds)
	fmt.Printf("baseline /bin/true:                          %8.3f ms\n", ms2(mb))
	fmt.Printf("empty Go program:                            %8.3f ms\n", ms2(mg))
	fmt.Printf("scontrol stand-in (shell script):            %8.3f ms\n", ms2(ms))
	// Own time: wall time less two process starts (the baseline), the two
	// scontrol calls (show node, show job: Slurm's time) and the simulated
	// driver's work (a real IHK ioctl's time is the kernel's). Outside
	// main: wall time less the two mains, less the two process starts.
	own := func(s samples) (all, outside, work time.Duration) {
		wall, main, drv := median(s.wall), median(s.main), median(s.driver)
		return wall - 2*mb - 2*ms - drv, wall - main - 2*mb, main - 2*ms - drv
	}
	ownD, _, _ := own(disk)
	ownT, outT, workT := own(mem)
	ownG, outG, workG := own(large)
	ownGD, outGD, _ := own(largeDefault)
	// Through the node service no program starts: all of the wall time
	// less Slurm and the driver is the pair's own.
	ownRes := func(s samples) time.Duration {
		return median(s.wall) - 2*ms - median(s.driver)
	}
	ownTR, ownGR := ownRes(memRes), ownRes(largeRes)
	fmt.Printf("simulated driver, per prolog+epilog:         %8.3f ms (paper node), %.3f ms (1024 CPUs)\n", ms2(median(mem.driver)), ms2(median(large.driver)))
	fmt.Printf("LWK prolog+epilog, StateDir on tmpfs:        %8.3f ms   own %8.3f ms (outside main %.3f, in main %.3f)\n", ms2(median(mem.wall)), ms2(ownT), ms2(outT), ms2(workT))
	fmt.Printf("LWK prolog+epilog, 1024-CPU node, tmpfs:     %8.3f ms   own %8.3f ms (outside main %.3f, in main %.3f)\n", ms2(median(large.wall)), ms2(ownG), ms2(outG), ms2(workG))
	fmt.Printf("  same, GOMAXPROCS=1024 (its default):       %8.3f ms   own %8.3f ms (outside main %.3f)\n", ms2(median(largeDefault.wall)), ms2(ownGD), ms2(outGD))
	fmt.Printf("same pairs run by the node service (socket): paper node %.3f ms own %.3f ms, 1024-CPU node %.3f ms own %.3f ms\n",
		ms2(median(memRes.wall)), ms2(ownTR), ms2(median(largeRes.wall)), ms2(ownGR))
	fmt.Printf("LWK prolog+epilog, StateDir on this disk:    %8.3f ms   own %8.3f ms (adds the journal's fsyncs)\n", ms2(median(disk.wall)), ms2(ownD))
	fmt.Printf("Linux-only, as Prolog=/Epilog= programs:     %8.3f ms   own %8.3f ms (the SPANK path forks nothing)\n", ms2(mx), ms2(mx-2*mb))
	// Two empty Go programs in place of the pair: what starting and ending
	// two Go processes costs beyond two bare process starts on this
	// machine, whatever the programs do.
	fmt.Printf("two empty Go programs:                       %8.3f ms   own %8.3f ms\n", ms2(2*mg), ms2(2*mg-2*mb))
	// The target: the pair's own time is at most twice the two bare
	// process starts it is compared with.
	fmt.Printf("ratio own / two bare process starts:         paper node %.2f, 1024-CPU node %.2f (target <= 2); two empty Go programs %.2f\n",
		float64(ownT)/float64(2*mb), float64(ownG)/float64(2*mb), float64(2*mg-2*mb)/float64(2*mb))
	fmt.Printf("  through the node service:                  paper node %.2f, 1024-CPU node %.2f (target <= 2)\n",
		float64(ownTR)/float64(2*mb), float64(ownGR)/float64(2*mb))
	return nil
}

// sample is one prolog+epilog pair: the two programs' wall time, the time
// their main functions logged, and the simulated driver's part of that.
type sample struct{ wall, main, driver time.Duration }

// samples collects one node's pairs.
type samples struct{ wall, main, driver []time.Duration }

func (s *samples) add(x sample) {
	s.wall, s.main, s.driver = append(s.wall, x.wall), append(s.main, x.main), append(s.driver, x.driver)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// doneTimes sums the seconds and sim_driver_seconds of the last "prolog
// done" and "epilog done" lines of a lifecycle log. It fails when that
// prolog did not boot an LWK: the pair would then not measure the lifecycle.
func doneTimes(path string) (sample, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sample{}, err
	}
	type done struct {
		Msg    string  `json:"msg"`
		PID    int     `json:"pid"`
		Secs   float64 `json:"seconds"`
		Driver float64 `json:"sim_driver_seconds"`
	}
	var prolog, epilog done
	var runningPID int
	for _, line := range strings.Split(string(b), "\n") {
		var rec done
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "lwk running":
			runningPID = rec.PID
		case "prolog done":
			prolog = rec
		case "epilog done":
			epilog = rec
		}
	}
	if prolog.PID == 0 || runningPID != prolog.PID {
		return sample{}, fmt.Errorf("%s: the last prolog did not boot an LWK", path)
	}
	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	return sample{main: secs(prolog.Secs + epilog.Secs), driver: secs(prolog.Driver + epilog.Driver)}, nil
}

// nodeConf is the part of lwk.conf that describes the node.
type nodeConf struct {
	lines    string // OSCores= and the NUMA split
	scontrol string // the stand-in's name in the bench dir
}

var (
	paperNode = nodeConf{lines: "OSCores=0-1\nSystemNUMANodes=0-1\nJobNUMANodes=2-11\n", scontrol: "scontrol"}
	// The 1024-CPU node's OS cores are CPUs 0 and 1 (thread 0 of its
	// first two cores): the prolog confines the proxies on this machine's
	// real cgroups, whose cpusets must hold the OS cores, and every machine
	// this runs on has CPUs 0-1. The node is not split into system and job
	// NUMA nodes.
	bigNode = nodeConf{lines: "OSCores=0-1\n", scontrol: "scontrol-big"}
)

// writeConf writes an lwk.conf for the simulator with its journal in
// stateDir and its topology under sysfsRoot.
func writeConf(dir, name, stateDir, sysfsRoot string, node nodeConf) (string, error) {
	conf := filepath.Join(dir, name+".conf")
	return conf, os.WriteFile(conf, []byte(fmt.Sprintf(`IHKBackend=sim
CgroupPrefix=%[7]s
%[5]sStateDir=%[2]s
RunDir=%[1]s/run-%[3]s
LogDir=%[1]s/log-%[3]s
SimStateDir=%[1]s/sim-%[3]s
SimBootDelay=0s
SysfsRoot=%[4]s
ScontrolPath=%[1]s/%[6]s
Profile=mck Image=%[1]s/mck.img Kargs="hidos"
`, dir, stateDir, name, sysfsRoot, node.lines, node.scontrol, cgroupPrefix)), 0o644)
}

// cgroupPrefix is the directory of the bench jobs' cgroups under each
// cgroup v1 hierarchy: its own, so that the bench's job IDs never meet the
// cgroups of a real slurm-lwk job (or of a test run) on the same machine.
var cgroupPrefix = "slurm-lwk-bench-" + strconv.Itoa(os.Getpid())

// removeCgroupPrefix removes the bench's cgroup directories, which the
// epilogs leave empty (the prefix is made once and kept, as on a node).
func removeCgroupPrefix() {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cgroupPrefix))
	for _, d := range dirs {
		if err := os.Remove(d); err != nil {
			fmt.Fprintf(os.Stderr, "benchlifecycle: remove cgroup %s: %v\n", d, err)
		}
	}
}

// generateBig writes the 1024-CPU sysfs tree into dir and returns its root.
func generateBig(dir string) (string, error) {
	cmd := exec.Command("go", "run", "./testdata/machines/gen", "-out", dir, "-only", "big-1024")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("generate the 1024-CPU tree: %w: %s", err, out)
	}
	return filepath.Join(dir, "big-1024"), nil
}

// buildEmptyGo builds ./tools/benchlifecycle/empty, a Go program whose main
// does nothing, as the lifecycle programs are built (static, trimmed
// paths), into dir and returns its path.
func buildEmptyGo(dir string) (string, error) {
	out := filepath.Join(dir, "empty-go")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./tools/benchlifecycle/empty")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build an empty Go program: %w: %s", err, b)
	}
	return out, nil
}

// startMonitor starts bin/lwk-monitor for conf (its HTTP endpoint on a free
// loopback port, its spool in dir) and waits for its hook socket. stop ends
// it by its PID and waits for it.
func startMonitor(bin, dir, conf, name string) (stop func(), err error) {
	spool := filepath.Join(dir, "spool-"+name)
	cmd := exec.Command(filepath.Join(bin, "lwk-monitor"), "--config", conf, "--node", "node1",
		"--web.listen-address", "127.0.0.1:0", "--spool-dir", spool,
		"--interval", "1h", "--hang-interval", "0", "--suspend-interval", "0")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	logf, err := os.Create(filepath.Join(dir, "monitor-"+name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lwk-monitor: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	sock := filepath.Join(dir, "run-"+name, hookserver.SocketName)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(sock); err == nil && fi.Mode().Type() == os.ModeSocket {
			return stop, nil
		}
	}
	stop()
	b, _ := os.ReadFile(logf.Name())
	return nil, fmt.Errorf("lwk-monitor for %s: no socket %s after 10 s: %s", conf, sock, b)
}
