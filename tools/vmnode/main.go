// Command vmnode reads the serial-console logs of scripts/vm-node's guest
// runs and turns them into the comparison table (and the kernel arguments
// of the plan boot). Each log holds JSON sections between
// "@@VMNODE-BEGIN name" and "@@VMNODE-END name" lines and ends with
// "@@VMNODE-EXIT status".
//
//	vmnode kargs PLAN.log         print the plan's kernel arguments
//	vmnode table RUN.log...       one row per run, then per variant
//	vmnode smoke RUN.log          check a smoke run; exit 1 with the reason
//
// Run logs are named VARIANT-SEED.log.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/defrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodeprep"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: vmnode kargs|table|smoke LOG...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "kargs":
		err = kargs(os.Args[2])
	case "table":
		err = table(os.Args[2:])
	case "smoke":
		err = smoke(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmnode: %v\n", err)
		os.Exit(1)
	}
}

// sections reads a log's JSON sections and its exit status.
func sections(path string) (map[string][]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	out := map[string][]byte{}
	var cur string
	var buf strings.Builder
	exit := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "@@VMNODE-BEGIN "):
			cur = strings.TrimPrefix(line, "@@VMNODE-BEGIN ")
			buf.Reset()
		case strings.HasPrefix(line, "@@VMNODE-END "):
			out[cur] = []byte(buf.String())
			cur = ""
		case strings.HasPrefix(line, "@@VMNODE-EXIT "):
			exit = strings.TrimPrefix(line, "@@VMNODE-EXIT ")
		case cur != "":
			buf.WriteString(line)
			buf.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	return out, exit, nil
}

func decode(secs map[string][]byte, name, path string, v any) error {
	b, ok := secs[name]
	if !ok {
		return fmt.Errorf("%s: no %q section", path, name)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: section %q: %w", path, name, err)
	}
	return nil
}

func kargs(path string) error {
	secs, exit, err := sections(path)
	if err != nil {
		return err
	}
	if exit != "0" {
		return fmt.Errorf("%s: plan boot exited %q", path, exit)
	}
	var p nodeprep.Plan
	if err := decode(secs, "plan", path, &p); err != nil {
		return err
	}
	fmt.Println(strings.Join(p.KernelArgs, " "))
	return nil
}

// run is one guest run's figures.
type run struct {
	variant, seed   string
	share           float64 // job memory in >= 256 MiB free runs, after
	shareBoot       float64
	free2MBBoot     uint64
	free2MBAfter    uint64
	movable, blocks int
	// movableBoot counts the job blocks Movable at the boot report (after
	// apply, before the stress and the defragmentation).
	movableBoot       int
	defragSec         float64
	defragBefore      float64
	evacuated, refuse int
	// kernelBlocks are the Movable blocks the defragmentation onlined as
	// kernel memory (--online-kernel); restored and restoreRefused what
	// the epilog's --restore-movable then did (-1: not run).
	kernelBlocks             int
	restored, restoreRefused int
	// ihk and ihkMovable: IHK-style reservations of the job nodes' memory,
	// as IHK on current kernels and with the ZONE_MOVABLE fallback.
	ihk, ihkMovable ihkFigure
}

// ihkFigure is one IHK-style reservation of the job nodes' memory
// (tools/ihkreserve): share is the part of the request obtained in >= 256
// MiB runs after merging adjacent chunks, obtained the part obtained at
// all; both NaN without that section.
type ihkFigure struct {
	share, obtained float64
	failed          []int
}

func (r run) lost() float64 {
	if r.free2MBBoot == 0 {
		return 0
	}
	d := float64(r.free2MBBoot) - float64(r.free2MBAfter)
	return 100 * d / float64(r.free2MBBoot)
}

func readRun(path string) (run, error) {
	base := strings.TrimSuffix(filepath.Base(path), ".log")
	v, s, ok := strings.Cut(base, "-")
	if !ok {
		return run{}, fmt.Errorf("%s: want VARIANT-SEED.log", path)
	}
	secs, exit, err := sections(path)
	if err != nil {
		return run{}, err
	}
	if exit != "0" {
		return run{}, fmt.Errorf("%s: guest exited %q", path, exit)
	}
	var boot, after nodeprep.Report
	if err := decode(secs, "boot", path, &boot); err != nil {
		return run{}, err
	}
	if err := decode(secs, "after", path, &after); err != nil {
		return run{}, err
	}
	r := run{variant: v, seed: s, share: after.JobContiguousShare, shareBoot: boot.JobContiguousShare,
		free2MBBoot: boot.JobFree2MBBlocks, free2MBAfter: after.JobFree2MBBlocks, defragSec: math.NaN(), defragBefore: math.NaN(),
		restored: -1, restoreRefused: -1,
	}
	if r.ihk, err = readIHK(secs, "ihkreserve", path); err != nil {
		return run{}, err
	}
	if r.ihkMovable, err = readIHK(secs, "ihkreserve-movable", path); err != nil {
		return run{}, err
	}
	for _, n := range boot.Nodes {
		if n.Job {
			r.movableBoot += n.Blocks["Movable"]
		}
	}
	for _, n := range after.Nodes {
		if n.Job {
			r.movable += n.Blocks["Movable"]
			for _, c := range n.Blocks {
				r.blocks += c
			}
		}
	}
	if _, ok := secs["defrag"]; ok {
		var d defrag.Result
		if err := decode(secs, "defrag", path, &d); err != nil {
			return run{}, err
		}
		r.defragSec, r.defragBefore = d.Duration.Seconds(), d.ShareBefore
		r.evacuated, r.refuse, r.kernelBlocks = d.Evacuated, d.Refused, len(d.KernelBlocks)
	}
	if _, ok := secs["restore"]; ok {
		var rs restored
		if err := decode(secs, "restore", path, &rs); err != nil {
			return run{}, err
		}
		if rs.Error != "" {
			return run{}, fmt.Errorf("%s: restore to Movable: %s", path, rs.Error)
		}
		r.restored, r.restoreRefused = len(rs.Changed), len(rs.Refused)
	}
	return r, nil
}

// restored is lwkctl node defrag --restore-movable's output.
type restored struct {
	Changed []int  `json:"changed"`
	Refused []int  `json:"refused"`
	Error   string `json:"error"`
}

// ihkReservation is the part of tools/ihkreserve's output the table shows.
type ihkReservation struct {
	RequestedBytes uint64  `json:"requested_bytes"`
	ObtainedBytes  uint64  `json:"obtained_bytes"`
	Share          float64 `json:"share"`
	FailedNodes    []int   `json:"failed_nodes"`
}

func readIHK(secs map[string][]byte, name, path string) (ihkFigure, error) {
	f := ihkFigure{share: math.NaN(), obtained: math.NaN()}
	if _, ok := secs[name]; !ok {
		return f, nil
	}
	var ir ihkReservation
	if err := decode(secs, name, path, &ir); err != nil {
		return f, err
	}
	if ir.RequestedBytes == 0 {
		return f, fmt.Errorf("%s: %s requested nothing", path, name)
	}
	f.share, f.failed = ir.Share, ir.FailedNodes
	f.obtained = float64(ir.ObtainedBytes) / float64(ir.RequestedBytes)
	return f, nil
}

// cell formats the reservation figure: share in >= 256 MiB merged runs,
// what was obtained at all, and the nodes whose reservation failed.
func (f ihkFigure) cell() string {
	if math.IsNaN(f.share) {
		return "-"
	}
	s := fmt.Sprintf("%.1f%% (got %.1f%%)", 100*f.share, 100*f.obtained)
	if len(f.failed) > 0 {
		s += fmt.Sprintf(", failed on nodes %v", f.failed)
	}
	return s
}

var variantOrder = map[string]int{"none": 0, "apply": 1, "movable": 2, "normal": 3, "applyk": 4, "movablek": 5}

var variantName = map[string]string{
	"none":     "no preparation",
	"apply":    "lwkctl node apply after boot",
	"movable":  "boot-time MOVABLE (plan) + apply + pre-boot defrag",
	"normal":   "no Movable; pre-boot defrag --online-kernel",
	"applyk":   "apply after boot; pre-boot defrag --online-kernel; epilog back to Movable",
	"movablek": "boot-time MOVABLE (plan) + apply; pre-boot defrag --online-kernel; epilog back to Movable",
}

func table(paths []string) error {
	var runs []run
	for _, p := range paths {
		r, err := readRun(p)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if runs[i].variant != runs[j].variant {
			return variantOrder[runs[i].variant] < variantOrder[runs[j].variant]
		}
		return runs[i].seed < runs[j].seed
	})
	fmt.Println("| variant | seed | job blocks Movable: boot -> at reservation | job memory in >=256 MiB free runs: boot -> after stress | IHK reservation of 90% of job MemFree: share in >=256 MiB merged chunks | same, IHK with ZONE_MOVABLE fallback | free 2 MiB blocks (job nodes): boot -> after | 2 MiB lost | pre-boot defrag |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range runs {
		d := "-"
		if !math.IsNaN(r.defragSec) {
			d = fmt.Sprintf("%.1f s, %.1f%% -> %.1f%%, %d blocks evacuated, %d refused", r.defragSec, 100*r.defragBefore, 100*r.share, r.evacuated, r.refuse)
			if r.kernelBlocks > 0 {
				d += fmt.Sprintf(", %d Movable -> kernel", r.kernelBlocks)
			}
			if r.restored >= 0 {
				d += fmt.Sprintf("; back to Movable after release: %d (%d refused)", r.restored, r.restoreRefused)
			}
		}
		fmt.Printf("| %s | %s | %d -> %d/%d | %.1f%% -> %.1f%% | %s | %s | %d -> %d | %.1f%% | %s |\n", r.variant, r.seed, r.movableBoot, r.movable, r.blocks,
			100*r.shareBoot, 100*r.share, r.ihk.cell(), r.ihkMovable.cell(), r.free2MBBoot, r.free2MBAfter, r.lost(), d)
	}
	fmt.Println()
	fmt.Println("| variant | runs | share in >=256 MiB runs (kpageflags), mean (min-max) | IHK reservation share in >=256 MiB merged chunks, mean (min-max) | same, IHK with ZONE_MOVABLE fallback | 2 MiB pages lost, mean (min-max) |")
	fmt.Println("|---|---|---|---|---|---|")
	byVariant := map[string][]run{}
	var names []string
	for _, r := range runs {
		if _, ok := byVariant[r.variant]; !ok {
			names = append(names, r.variant)
		}
		byVariant[r.variant] = append(byVariant[r.variant], r)
	}
	for _, v := range names {
		rs := byVariant[v]
		var s, l, h, hm []float64
		for _, r := range rs {
			s = append(s, 100*r.share)
			l = append(l, r.lost())
			if !math.IsNaN(r.ihk.share) {
				h = append(h, 100*r.ihk.share)
			}
			if !math.IsNaN(r.ihkMovable.share) {
				hm = append(hm, 100*r.ihkMovable.share)
			}
		}
		name := variantName[v]
		if name == "" {
			name = v
		}
		fmt.Printf("| %s | %d | %.1f%% (%.1f-%.1f) | %s | %s | %.1f%% (%.1f-%.1f) |\n", name, len(rs), mean(s), minOf(s), maxOf(s), summary(h), summary(hm), mean(l), minOf(l), maxOf(l))
	}
	return nil
}

// summary is "mean% (min-max)" of percentages, "-" for none.
func summary(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%% (%.1f-%.1f)", mean(xs), minOf(xs), maxOf(xs))
}

func mean(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

func minOf(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = math.Min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	return m
}

// smoke checks a smoke run end to end: the guest finished, apply changed
// job-node blocks to Movable for real, the report read kpageflags, the
// defrag step ran, and undo reversed every recorded change.
func smoke(path string) error {
	r, err := readRun(path)
	if err != nil {
		return err
	}
	secs, _, _ := sections(path)
	var apply, undo nodeprep.Result
	if err := decode(secs, "apply", path, &apply); err != nil {
		return err
	}
	if err := decode(secs, "undo", path, &undo); err != nil {
		return err
	}
	var after nodeprep.Report
	if err := decode(secs, "after", path, &after); err != nil {
		return err
	}
	var errs []error
	if len(apply.Changed) == 0 {
		errs = append(errs, errors.New("apply changed nothing"))
	}
	if r.movableBoot == 0 {
		errs = append(errs, errors.New("no job-node block is Movable after apply"))
	}
	for _, n := range after.Nodes {
		if !n.KPageFlags {
			errs = append(errs, fmt.Errorf("node %d: report could not read kpageflags", n.Node))
		}
	}
	if _, ok := secs["defrag"]; ok && math.IsNaN(r.defragSec) {
		errs = append(errs, errors.New("defrag section unreadable"))
	}
	// After a defragmentation with --online-kernel: Movable job blocks
	// became kernel memory, and the restore turned them back.
	kernel := ""
	if r.restored >= 0 {
		if r.kernelBlocks == 0 {
			errs = append(errs, errors.New("defrag --online-kernel turned no Movable job block into kernel memory"))
		}
		if r.restored == 0 {
			errs = append(errs, fmt.Errorf("restore turned none of the %d kernel blocks back into ZONE_MOVABLE (%d refused)", r.kernelBlocks, r.restoreRefused))
		}
		kernel = fmt.Sprintf(", %d Movable blocks onlined as kernel memory and %d back to Movable (%d refused)", r.kernelBlocks, r.restored, r.restoreRefused)
	}
	if undo.Recorded != 0 {
		errs = append(errs, fmt.Errorf("undo left %d changes recorded: %+v", undo.Recorded, undo.Refused))
	}
	if len(undo.Changed) == 0 {
		errs = append(errs, errors.New("undo reversed nothing"))
	}
	if out, ok := secs["simcheck"]; ok {
		if !strings.Contains(string(out), "--- PASS: TestRealCPUOfflineInGuest") || !strings.Contains(string(out), "exit 0") {
			errs = append(errs, fmt.Errorf("simulator CPU offlining in the guest failed:\n%s", out))
		}
	} else {
		errs = append(errs, errors.New("no simcheck section"))
	}
	if out, ok := secs["cgcheck"]; ok {
		errs = append(errs, cgcheckErrors(string(out))...)
	} else {
		errs = append(errs, errors.New("no cgcheck section"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Printf("smoke ok: %d changes applied (%d refused), %d/%d job blocks Movable, job share in >=256 MiB runs %.1f%% -> %.1f%%%s, %d changes undone, simulator took a CPU offline and back, cgroup v2 confinement checks passed (%s)\n",
		len(apply.Changed), len(apply.Refused), r.movableBoot, r.blocks, 100*r.shareBoot, 100*r.share, kernel, len(undo.Changed), strings.Join(cgcheckTests, ", "))
	return nil
}

// cgcheckTests are the cgroup v2 checks tests/vmnode runs in the guest; the
// smoke needs every one to have passed (a skip is a failure there).
var cgcheckTests = []string{"TestJobIDTreeAfterProlog", "TestSLUIDTreeBeforeProlog"}

// cgcheckErrors judges the "cgcheck" section: go test -v output followed by
// "exit <status>".
func cgcheckErrors(out string) []error {
	var errs []error
	for _, name := range cgcheckTests {
		if !strings.Contains(out, "--- PASS: "+name+" ") {
			errs = append(errs, fmt.Errorf("cgroup v2 check %s did not pass", name))
		}
	}
	if !strings.Contains(out, "\nexit 0") {
		errs = append(errs, errors.New("the cgroup v2 checks exited non-zero"))
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("cgcheck output:\n%s", out))
	}
	return errs
}
