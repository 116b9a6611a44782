// Command benchlifecycle measures what lwk-prolog and lwk-epilog themselves
// cost, with the simulated IHK backend and no boot delay, and what a
// Linux-only job pays for passing through them. Every round runs, in turn,
// /bin/true (the cost of starting any program), the scontrol stand-in the
// prolog calls, an LWK prolog+epilog pair and a Linux-only pair; it prints
// medians over the rounds and the overhead above the baseline.
//
//	go run ./tools/benchlifecycle [--rounds 30]   (as root, from the repository)
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

const scontrol = `#!/bin/sh
cat <<EOF
JobId=$4 JobName=bench
   JobState=RUNNING Reason=None Dependency=(null)
   NodeList=node1
   JOB_GRES=(null)
     Nodes=node1 CPU_IDs=0-15 Mem=10240 GRES=
EOF
`

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
	if err := os.WriteFile(filepath.Join(dir, "scontrol"), []byte(scontrol), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "mck.img"), []byte("image"), 0o644); err != nil {
		return err
	}
	conf := filepath.Join(dir, "lwk.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`IHKBackend=sim
OSCores=0-1
SystemNUMANodes=0-1
JobNUMANodes=2-11
StateDir=%[1]s/state
RunDir=%[1]s/run
LogDir=%[1]s/log
SimStateDir=%[1]s/sim
SimBootDelay=0s
SysfsRoot=%[2]s
ScontrolPath=%[1]s/scontrol
Profile=mck Image=%[1]s/mck.img Kargs="hidos"
`, dir, fixture)), 0o644); err != nil {
		return err
	}
	env := func(spec string) []string {
		return []string{"LWK_CONF=" + conf, "SLURM_JOB_ID=7", "SLURM_JOB_UID=65534", "SLURM_JOB_GID=65534",
			"SLURM_JOB_USER=nobody", "SLURMD_NODENAME=node1", "LWK_MODE=" + spec, "PATH=/usr/bin:/bin"}
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
	var base, sctl, lwk, linux []time.Duration
	for r := 0; r < rounds; r++ {
		t, err := timeIt("/bin/true", nil)
		if err != nil {
			return err
		}
		base = append(base, t)
		s, err := timeIt(filepath.Join(dir, "scontrol"), nil, "show", "job", "-d", "7")
		if err != nil {
			return err
		}
		sctl = append(sctl, s)
		p, err := timeIt(filepath.Join(bin, "lwk-prolog"), env("mck"))
		if err != nil {
			return err
		}
		e, err := timeIt(filepath.Join(bin, "lwk-epilog"), env("mck"))
		if err != nil {
			return err
		}
		lwk = append(lwk, p+e)
		lp, err := timeIt(filepath.Join(bin, "lwk-prolog"), env(""))
		if err != nil {
			return err
		}
		le, err := timeIt(filepath.Join(bin, "lwk-epilog"), env(""))
		if err != nil {
			return err
		}
		linux = append(linux, lp+le)
	}
	mb, ms, ml, mx := median(base), median(sctl), median(lwk), median(linux)
	fmt.Printf("rounds: %d (alternating; medians)\n", rounds)
	fmt.Printf("baseline /bin/true:                 %8.3f ms\n", ms2(mb))
	fmt.Printf("scontrol stand-in (shell script):   %8.3f ms\n", ms2(ms))
	fmt.Printf("LWK prolog+epilog (sim, no boot):   %8.3f ms\n", ms2(ml))
	// Two process starts are the baseline's; the prolog's scontrol call is
	// Slurm's cost, not ours.
	fmt.Printf("  own time (minus 2x baseline, scontrol): %8.3f ms   (target <= 10 ms)\n", ms2(ml-2*mb-ms))
	fmt.Printf("Linux-only prolog+epilog as Prolog=/Epilog= programs: %8.3f ms\n", ms2(mx))
	fmt.Printf("  own time (minus 2x baseline):           %8.3f ms   (the SPANK path forks nothing: see make bench)\n", ms2(mx-2*mb))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
