// Command benchisolation measures how well the proxy confinement protects a
// Linux job (paper §6.3, Table 2). On real cgroups it runs, on an app core,
// a system-call loop and an exec loop (UnixBench "System Call Overhead" and
// "Execl Throughput"), alternating in every round between: alone; next to a
// storm of busy proxy-like processes confined as an LWK job's proxies are
// (pkg/proxycgroup, the same code the prolog runs), at several CPU shares of
// the OS cores; next to the same storm unconfined; and next to one busy loop
// on an OS core (what a busy OS core costs by itself). The storm is
// read(2) on a tmpfs file (the paper's mcexec load) and, once per round,
// 64-byte writes over a socket (communication offload). It prints, per
// condition, the ratio to alone (mean and range over the rounds) and the
// confined storm's CPU use against its quota.
//
// Needs root, gcc, and writable cgroup v1 cpuset, memory and cpu
// hierarchies. Run through "make bench-isolation".
package main

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
)

//go:embed workload.c.in
var workloadC []byte

type condition struct {
	name   string
	storm  string // "", "read", "pipe", "spin"
	share  int    // confined storm: percent of the OS cores; 0 unconfined
	stormN int
}

type sample struct {
	syscall, exec float64 // per second
	stormCPU      float64 // CPUs used by the confined storm
	quotaCPU      float64 // its quota in CPUs
	throttled     uint64
	// ofQuota is the storm's CPU time over what its quota allowed in the
	// CFS periods it was active in (cpu.stat nr_periods x quota): the
	// kernel's own bound, free of where the wall-clock window cuts a period.
	ofQuota float64
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchisolation:", err)
		os.Exit(1)
	}
}

func run() error {
	rounds := flag.Int("rounds", 5, "rounds (each runs every condition once, alternating)")
	dur := flag.Duration("duration", time.Second, "length of each measurement")
	appCPU := flag.Int("app-cpu", 1, "the Linux job's CPU (an app core)")
	osCPUs := flag.String("os-cpus", "0", "the OS cores, where proxies run")
	stormN := flag.Int("storm", 7, "number of storm processes (the paper: 7 mcexec)")
	sharesF := flag.String("shares", "10,25,50", "CPU shares of the OS cores to sweep (percent)")
	defShare := flag.Int("default-share", 50, "the share lwk.conf defaults to (ProxyCPUShare)")
	flag.Parse()

	if os.Geteuid() != 0 {
		return errors.New("needs root (creates cgroups)")
	}
	osSet, err := cpuset.Parse(*osCPUs)
	if err != nil || osSet.IsEmpty() || osSet.Contains(*appCPU) {
		return fmt.Errorf("--os-cpus %q: want a non-empty set without the app CPU %d", *osCPUs, *appCPU)
	}
	var shares []int
	for s := range strings.SplitSeq(*sharesF, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 1 || v > 100 {
			return fmt.Errorf("--shares: %q is not a percentage", s)
		}
		shares = append(shares, v)
	}
	layout, err := proxycgroup.Detect(procfs.Default())
	if err != nil {
		return err
	}
	if layout.Mode != proxycgroup.V1 {
		return fmt.Errorf("cgroup %s: this benchmark confines the storm in cgroup v1 hierarchies; under v2 the confinement lives on Slurm's step cgroups", layout.Mode)
	}
	work, err := os.MkdirTemp("", "benchisolation-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "workload")
	src := filepath.Join(work, "workload.c")
	if err := os.WriteFile(src, workloadC, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-o", bin, src).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc: %v: %s", err, out)
	}
	// The storm's file: 4 KiB on tmpfs (/dev/shm), as the paper's ramfs.
	shm, err := os.MkdirTemp("/dev/shm", "benchisolation-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(shm)
	data := filepath.Join(shm, "data")
	if err := os.WriteFile(data, make([]byte, 4096), 0o644); err != nil {
		return err
	}
	m := proxycgroup.Manager{Layout: layout, FS: proxycgroup.Kernel{}, Prefix: fmt.Sprintf("slurm-lwk-bench-%d", os.Getpid())}
	defer func() {
		for _, c := range proxycgroup.Controllers {
			_ = proxycgroup.Kernel{}.Remove(filepath.Join(layout.V1[c], m.Prefix))
		}
	}()

	conds := []condition{{name: "alone"}, {name: "storm read, unconfined", storm: "read", stormN: *stormN}}
	for _, s := range shares {
		conds = append(conds, condition{name: fmt.Sprintf("storm read, confined %d%%", s), storm: "read", share: s, stormN: *stormN})
	}
	conds = append(conds,
		condition{name: "storm socket, unconfined", storm: "pipe", stormN: *stormN},
		condition{name: fmt.Sprintf("storm socket, confined %d%%", *defShare), storm: "pipe", share: *defShare, stormN: *stormN},
		condition{name: "one busy loop on an OS core", storm: "spin", stormN: 1})

	fmt.Printf("isolation benchmark: app CPU %d, OS cores %s, %d storm processes, %s per measurement, %d rounds\n",
		*appCPU, osSet, *stormN, *dur, *rounds)
	// Each condition is paired with a measurement alone right next to it
	// (alone first in odd rounds, second in even ones), and its ratio is
	// taken against that pair: on a shared or virtual machine the baseline
	// drifts, and a pair sees the same drift.
	res := map[string][]sample{}
	pairs := map[string][]sample{}
	var job uint32 = 4200000000
	for r := 0; r < *rounds; r++ {
		order := slices.Clone(conds[1:])
		k := r % len(order)
		order = append(order[k:], order[:k]...)
		for _, c := range order {
			job++
			var s, a sample
			var err error
			if r%2 == 0 {
				if a, err = measure(m, job, bin, data, conds[0], *appCPU, osSet, *dur); err == nil {
					s, err = measure(m, job, bin, data, c, *appCPU, osSet, *dur)
				}
			} else if s, err = measure(m, job, bin, data, c, *appCPU, osSet, *dur); err == nil {
				a, err = measure(m, job, bin, data, conds[0], *appCPU, osSet, *dur)
			}
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, c.name, err)
			}
			res[c.name] = append(res[c.name], s)
			pairs[c.name] = append(pairs[c.name], a)
			res["alone"] = append(res["alone"], a)
		}
		fmt.Fprintf(os.Stderr, "round %d/%d done\n", r+1, *rounds)
	}
	for _, c := range conds[1:] {
		res["alone of "+c.name] = pairs[c.name]
	}
	report(conds, res, *rounds, *defShare)
	return nil
}

// measure runs both loops once under one condition.
func measure(m proxycgroup.Manager, job uint32, bin, data string, c condition, appCPU int, osSet cpuset.CPUSet, dur time.Duration) (sample, error) {
	var s sample
	var procs []*exec.Cmd
	stop := func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}
	defer stop()
	confined := c.share > 0
	var rec *proxycgroup.Record
	var quotaUS int64
	if confined {
		period := int64(100000)
		quota := period * int64(osSet.Size()) * int64(c.share) / 100
		quotaUS = quota
		var err error
		rec, err = m.Create(job, proxycgroup.Limits{CPUs: osSet, MemoryBytes: 128 << 20, CPUQuotaUS: quota, CPUPeriodUS: period, BatchCPUs: osSet})
		if err != nil {
			return s, err
		}
		s.quotaCPU = float64(quota) / float64(period)
		defer func() {
			stop()
			procs = nil
			_ = m.Remove(job)
		}()
	}
	var gos []io.WriteCloser
	for i := 0; i < c.stormN; i++ {
		var args []string
		switch c.storm {
		case "read":
			args = []string{"read", data}
		case "pipe":
			args = []string{"pipe"}
		case "spin":
			args = []string{"spin", strconv.Itoa(osSet.List()[0])}
		}
		p := exec.Command(bin, args...)
		in, err := p.StdinPipe()
		if err != nil {
			return s, err
		}
		if err := p.Start(); err != nil {
			return s, err
		}
		procs = append(procs, p)
		gos = append(gos, in)
		if confined {
			if err := m.Join(rec, p.Process.Pid, proxycgroup.Proxy); err != nil {
				return s, err
			}
		}
	}
	for _, g := range gos {
		_, _ = g.Write([]byte("g"))
	}
	if len(procs) > 0 {
		time.Sleep(200 * time.Millisecond) // let the storm reach steady state
	}
	var st0 proxycgroup.Stats
	t0 := time.Now()
	if confined {
		var err error
		if st0, err = m.Stats(job); err != nil {
			return s, err
		}
	}
	var err error
	if s.syscall, err = loop(bin, "syscall", appCPU, dur); err != nil {
		return s, err
	}
	if s.exec, err = loop(bin, "exec", appCPU, dur); err != nil {
		return s, err
	}
	if confined {
		st1, err := m.Stats(job)
		if err != nil {
			return s, err
		}
		s.stormCPU = float64(st1.Usage-st0.Usage) / float64(time.Since(t0))
		s.throttled = st1.Throttled - st0.Throttled
		if p := st1.Periods - st0.Periods; p > 0 {
			allowed := time.Duration(p) * time.Duration(quotaUS) * time.Microsecond
			s.ofQuota = float64(st1.Usage-st0.Usage) / float64(allowed)
		}
	}
	return s, nil
}

// loop runs one of the job's loops on the app CPU and returns its rate.
func loop(bin, mode string, cpu int, dur time.Duration) (float64, error) {
	out, err := exec.Command(bin, mode, strconv.Itoa(cpu), strconv.FormatFloat(dur.Seconds(), 'f', 3, 64)).Output()
	if err != nil {
		return 0, fmt.Errorf("%s loop: %w", mode, err)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("%s loop printed %q", mode, out)
	}
	return n / dur.Seconds(), nil
}

type stat struct{ mean, lo, hi float64 }

func summarize(v []float64) stat {
	s := stat{lo: v[0], hi: v[0]}
	for _, x := range v {
		s.mean += x
		s.lo, s.hi = min(s.lo, x), max(s.hi, x)
	}
	s.mean /= float64(len(v))
	return s
}

func (s stat) String() string { return fmt.Sprintf("%.3f [%.3f-%.3f]", s.mean, s.lo, s.hi) }

func report(conds []condition, res map[string][]sample, rounds, defShare int) {
	alone := res["alone"]
	ratio := func(name string, f func(sample) float64) stat {
		var v []float64
		for i, s := range res[name] {
			v = append(v, f(s)/f(res["alone of "+name][i]))
		}
		return summarize(v)
	}
	sys := func(s sample) float64 { return s.syscall }
	exe := func(s sample) float64 { return s.exec }
	a := summarize(mapf(alone, sys))
	e := summarize(mapf(alone, exe))
	fmt.Printf("\nalone: system-call loop %.0f iterations/s [%.0f-%.0f], exec loop %.0f execs/s [%.0f-%.0f]\n",
		a.mean, a.lo, a.hi, e.mean, e.lo, e.hi)
	fmt.Printf("\nratio to alone measured right beside it (mean [min-max] over %d rounds)\n", rounds)
	fmt.Printf("| %-32s | %-21s | %-21s | %-30s | %-23s |\n", "condition", "system-call loop", "exec loop", "storm CPU / quota (CPUs)", "storm / quota, cpu.stat")
	fmt.Printf("|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 34), strings.Repeat("-", 23), strings.Repeat("-", 23), strings.Repeat("-", 32), strings.Repeat("-", 25))
	for _, c := range conds[1:] {
		q, oq := "", ""
		if c.share > 0 {
			oq = summarize(mapf(res[c.name], func(s sample) float64 { return s.ofQuota })).String()
			u := summarize(mapf(res[c.name], func(s sample) float64 { return s.stormCPU }))
			var thr uint64
			for _, s := range res[c.name] {
				thr += s.throttled
			}
			q = fmt.Sprintf("%.3f [%.3f-%.3f] / %.2f", u.mean, u.lo, u.hi, res[c.name][0].quotaCPU)
			_ = thr
		}
		fmt.Printf("| %-32s | %-21s | %-21s | %-30s | %-23s |\n", c.name, ratio(c.name, sys), ratio(c.name, exe), q, oq)
	}
	// The targets of the issue, measured in this run.
	fmt.Println()
	busy := ratio("one busy loop on an OS core", exe)
	for _, c := range conds {
		if c.share == 0 {
			continue
		}
		sr := ratio(c.name, sys)
		verdict(fmt.Sprintf("%s: system-call loop >= 0.97 of alone", c.name), sr.mean >= 0.97, sr.mean)
		oq := summarize(mapf(res[c.name], func(s sample) float64 { return s.ofQuota }))
		verdict(fmt.Sprintf("%s: storm within quota + 2%% (cpu.stat periods x quota; max %.3f)", c.name, oq.hi), oq.hi <= 1.02, oq.hi)
		if c.share == defShare {
			er := ratio(c.name, exe)
			verdict(fmt.Sprintf("%s: exec loop (%.3f) no worse than beside one busy OS core (%.3f)", c.name, er.mean, busy.mean), er.mean >= busy.mean, er.mean-busy.mean)
		}
	}
}

func verdict(what string, ok bool, v float64) {
	s := "MISS"
	if ok {
		s = "ok  "
	}
	fmt.Printf("%s %s (%.3f)\n", s, what, v)
}

func mapf(s []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}
