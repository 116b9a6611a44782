// Command gen writes the sysfs fixture trees under testdata/machines.
//
// The synthetic machines are described in machines.go as data (one function
// per machine, annotated with where each fact comes from) and written as the
// kernel lays them out: plain files for attributes and relative symlinks for
// the cpuN/nodeK, nodeK/cpuN, memoryN/nodeK and nodeK/memoryN links.
// "this-host" is not synthetic: -capture copies the relevant files of the
// running machine's /sys/devices/system.
//
// Run from the repository root:
//
//	go run ./testdata/machines/gen                      # rewrite every synthetic machine
//	go run ./testdata/machines/gen -only epyc-nps4      # rewrite one
//	go run ./testdata/machines/gen -capture this-host   # capture this machine
//	go run ./testdata/machines/gen -out DIR -only big-1024  # the benchmark's 1024-CPU node
//
// Each run deletes and rewrites <name>/sys only; the README.md next to it is
// written by hand.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

func main() {
	out := flag.String("out", "testdata/machines", "directory holding the machine trees")
	only := flag.String("only", "", "write only this synthetic machine")
	capture := flag.String("capture", "", "capture the running machine's /sys into `NAME`")
	from := flag.String("from", "/", "root to capture from (with -capture)")
	flag.Parse()
	if err := run(*out, *only, *capture, *from); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out, only, capture, from string) error {
	if st, err := os.Stat(out); err != nil || !st.IsDir() {
		return fmt.Errorf("output directory %s missing (run from the repository root)", out)
	}
	if capture != "" {
		return captureHost(from, filepath.Join(out, capture))
	}
	found := false
	for _, m := range machines() {
		if only != "" && m.name != only || only == "" && m.onRequest {
			continue
		}
		found = true
		if err := m.write(filepath.Join(out, m.name)); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		fmt.Println("wrote", filepath.Join(out, m.name))
	}
	if !found {
		return fmt.Errorf("no machine named %q", only)
	}
	return nil
}

// cpu is one present logical CPU.
type cpu struct {
	id int
	// pkg and coreID are physical_package_id and core_id.
	pkg, coreID int
	// siblings are all hardware threads of the core (online or not).
	siblings []int
	// node is cpu_to_node: the target of the cpuN/nodeK link.
	node   int
	online bool
	// noHotplug: no cpuN/online file (cpu0 on x86 kernels).
	noHotplug bool
}

// node is one online NUMA node.
type node struct {
	id int
	// cpus is what nodeN/cpulist shows (online CPUs only on x86). When nil,
	// it is derived from the CPUs whose node is this one.
	cpus            *cpuset.CPUSet
	totalKB, freeKB uint64
	distance        []int
}

// block is one memory block.
type block struct {
	index     int
	nodes     []int
	state     string
	zones     string
	removable bool
}

type machine struct {
	name string
	// onRequest machines are written only when -only names them (big
	// trees generated for a benchmark, not committed).
	onRequest     bool
	possibleCPUs  string
	kernelMax     int
	smtControl    string // "" for no smt/ directory
	cpus          []cpu
	possibleNodes string
	nodes         []node
	hasNormal     string // node/has_normal_memory
	blockSize     uint64 // 0: no memory/ directory
	blocks        []block
}

func (m machine) write(dir string) error {
	sysDir := filepath.Join(dir, "sys")
	if err := os.RemoveAll(sysDir); err != nil {
		return err
	}
	w := &writer{root: filepath.Join(sysDir, "devices", "system")}

	var present, online, offline []int
	for _, c := range m.cpus {
		present = append(present, c.id)
		if c.online {
			online = append(online, c.id)
		}
	}
	possible, err := cpuset.Parse(m.possibleCPUs)
	if err != nil {
		return err
	}
	offline = possible.Difference(cpuset.New(online...)).List()
	nrCPUIDs := possible.List()[possible.Size()-1] + 1
	w.file("cpu/possible", m.possibleCPUs)
	w.file("cpu/present", cpuset.New(present...).String())
	w.file("cpu/online", cpuset.New(online...).String())
	w.file("cpu/offline", cpuset.New(offline...).String())
	w.file("cpu/kernel_max", strconv.Itoa(m.kernelMax))
	if m.smtControl != "" {
		w.file("cpu/smt/control", m.smtControl)
		active := "0"
		for _, c := range m.cpus {
			if c.online && len(c.siblings) > 1 && onlineCount(m.cpus, c.siblings) > 1 {
				active = "1"
			}
		}
		w.file("cpu/smt/active", active)
	}
	byID := map[int]cpu{}
	for _, c := range m.cpus {
		byID[c.id] = c
	}
	for _, c := range m.cpus {
		d := fmt.Sprintf("cpu/cpu%d", c.id)
		if !c.noHotplug {
			w.file(d+"/online", boolStr(c.online))
		}
		w.link(d+fmt.Sprintf("/node%d", c.node), fmt.Sprintf("../../node/node%d", c.node))
		if !c.online {
			continue // the kernel removes topology/ while a CPU is offline
		}
		var sib, pkg []int
		for _, s := range c.siblings {
			if byID[s].online {
				sib = append(sib, s)
			}
		}
		for _, o := range m.cpus {
			if o.online && o.pkg == c.pkg {
				pkg = append(pkg, o.id)
			}
		}
		sibs, pkgs := cpuset.New(sib...), cpuset.New(pkg...)
		w.file(d+"/topology/physical_package_id", strconv.Itoa(c.pkg))
		w.file(d+"/topology/die_id", "0")
		w.file(d+"/topology/core_id", strconv.Itoa(c.coreID))
		w.file(d+"/topology/thread_siblings_list", sibs.String())
		w.file(d+"/topology/thread_siblings", mask(sibs, nrCPUIDs))
		w.file(d+"/topology/core_cpus_list", sibs.String())
		w.file(d+"/topology/core_siblings_list", pkgs.String())
		w.file(d+"/topology/package_cpus_list", pkgs.String())
	}

	var nodeIDs, hasCPU, hasMem []int
	for _, n := range m.nodes {
		nodeIDs = append(nodeIDs, n.id)
		if n.totalKB > 0 {
			hasMem = append(hasMem, n.id)
		}
	}
	for _, c := range m.cpus {
		if c.online {
			hasCPU = append(hasCPU, c.node)
		}
	}
	if len(m.nodes) > 0 {
		w.file("node/possible", m.possibleNodes)
		w.file("node/online", cpuset.New(nodeIDs...).String())
		w.file("node/has_cpu", cpuset.New(hasCPU...).String())
		w.file("node/has_memory", cpuset.New(hasMem...).String())
		w.file("node/has_normal_memory", m.hasNormal)
	}
	for _, n := range m.nodes {
		if len(n.distance) != len(m.nodes) {
			return fmt.Errorf("node%d: %d distances for %d nodes", n.id, len(n.distance), len(m.nodes))
		}
		d := fmt.Sprintf("node/node%d", n.id)
		var list cpuset.CPUSet
		if n.cpus != nil {
			list = *n.cpus
		} else {
			var ids []int
			for _, c := range m.cpus {
				if c.online && c.node == n.id {
					ids = append(ids, c.id)
				}
			}
			list = cpuset.New(ids...)
		}
		w.file(d+"/cpulist", list.String())
		w.file(d+"/cpumap", mask(list, nrCPUIDs))
		w.file(d+"/distance", joinInts(n.distance))
		w.file(d+"/meminfo", meminfo(n.id, n.totalKB, n.freeKB))
		for _, c := range m.cpus {
			if c.node == n.id {
				w.link(fmt.Sprintf("%s/cpu%d", d, c.id), fmt.Sprintf("../../cpu/cpu%d", c.id))
			}
		}
	}

	if m.blockSize != 0 {
		w.file("memory/block_size_bytes", strconv.FormatUint(m.blockSize, 16))
		w.file("memory/auto_online_blocks", "offline")
		for _, b := range m.blocks {
			d := fmt.Sprintf("memory/memory%d", b.index)
			w.file(d+"/phys_index", fmt.Sprintf("%08x", b.index))
			w.file(d+"/phys_device", "0")
			w.file(d+"/state", b.state)
			w.file(d+"/online", boolStr(b.state == "online"))
			w.file(d+"/valid_zones", b.zones)
			w.file(d+"/removable", boolStr(b.removable))
			for _, n := range b.nodes {
				w.link(fmt.Sprintf("%s/node%d", d, n), fmt.Sprintf("../../node/node%d", n))
				w.link(fmt.Sprintf("node/node%d/memory%d", n, b.index), fmt.Sprintf("../../memory/memory%d", b.index))
			}
		}
	}
	return w.err
}

func onlineCount(cpus []cpu, ids []int) int {
	n := 0
	for _, c := range cpus {
		for _, id := range ids {
			if c.id == id && c.online {
				n++
			}
		}
	}
	return n
}

// meminfo renders nodeN/meminfo the way drivers/base/node.c does (the
// fields after MemFree are plausible fillers: Used, page cache, slab).
func meminfo(id int, totalKB, freeKB uint64) string {
	used := totalKB - freeKB
	file := used / 2
	anon := used / 4
	slab := used / 8
	lines := []struct {
		k string
		v uint64
	}{
		{"MemTotal", totalKB}, {"MemFree", freeKB}, {"MemUsed", used},
		{"SwapCached", 0}, {"Active", file/2 + anon}, {"Inactive", file / 2},
		{"Active(anon)", anon}, {"Inactive(anon)", 0}, {"Active(file)", file / 2},
		{"Inactive(file)", file / 2}, {"Unevictable", 0}, {"Mlocked", 0},
		{"Dirty", 0}, {"Writeback", 0}, {"FilePages", file}, {"Mapped", file / 8},
		{"AnonPages", anon}, {"Shmem", 0}, {"KernelStack", slab / 16},
		{"PageTables", slab / 8}, {"Bounce", 0}, {"WritebackTmp", 0},
		{"KReclaimable", slab / 2}, {"Slab", slab}, {"SReclaimable", slab / 2},
		{"SUnreclaim", slab - slab/2}, {"AnonHugePages", 0},
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "Node %d %-15s %8d kB\n", id, l.k+":", l.v)
	}
	for _, k := range []string{"HugePages_Total", "HugePages_Free", "HugePages_Surp"} {
		fmt.Fprintf(&b, "Node %d %-15s %5d\n", id, k+":", 0)
	}
	return b.String()
}

// mask renders a set as the kernel's comma-separated 32-bit hex words,
// nr_cpu_ids (highest possible CPU + 1) bits wide.
func mask(s cpuset.CPUSet, nrCPUIDs int) string {
	words := (nrCPUIDs + 31) / 32
	w := make([]uint32, words)
	for _, id := range s.List() {
		w[id/32] |= 1 << (id % 32)
	}
	parts := make([]string, words)
	for i := range w {
		parts[words-1-i] = fmt.Sprintf("%08x", w[i])
	}
	return strings.Join(parts, ",")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " ")
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// writer creates files and links below root, keeping the first error.
type writer struct {
	root string
	err  error
}

func (w *writer) file(rel, content string) {
	if w.err != nil {
		return
	}
	p := filepath.Join(w.root, rel)
	if w.err = os.MkdirAll(filepath.Dir(p), 0o755); w.err != nil {
		return
	}
	if !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	w.err = os.WriteFile(p, []byte(content), 0o644)
}

func (w *writer) link(rel, target string) {
	if w.err != nil {
		return
	}
	p := filepath.Join(w.root, rel)
	if w.err = os.MkdirAll(filepath.Dir(p), 0o755); w.err != nil {
		return
	}
	w.err = os.Symlink(target, p)
}

// captureHost copies the files slurm-lwk reads (and their neighbours that
// make the tree recognisable) from root's /sys/devices/system into dst/sys.
// Symlinks between cpu, node and memory are recreated; everything else
// (cpufreq, cpuidle, caches, power, hugepages, uevent) is skipped.
func captureHost(root, dst string) error {
	src := filepath.Join(root, "sys", "devices", "system")
	sysDir := filepath.Join(dst, "sys")
	if err := os.RemoveAll(sysDir); err != nil {
		return err
	}
	w := &writer{root: filepath.Join(sysDir, "devices", "system")}
	copyFile := func(rel string) {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			w.err = errors.Join(w.err, err)
			return
		}
		w.file(rel, string(b))
	}
	copyLinks := func(dir, prefix string) {
		ents, err := os.ReadDir(filepath.Join(src, dir))
		if err != nil {
			w.err = errors.Join(w.err, err)
			return
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), prefix) || e.Type()&os.ModeSymlink == 0 {
				continue
			}
			t, err := os.Readlink(filepath.Join(src, dir, e.Name()))
			if err != nil {
				w.err = errors.Join(w.err, err)
				continue
			}
			w.link(filepath.Join(dir, e.Name()), t)
		}
	}
	for _, f := range []string{"possible", "present", "online", "offline", "kernel_max", "smt/control", "smt/active"} {
		copyFile("cpu/" + f)
	}
	for _, d := range numbered(filepath.Join(src, "cpu"), "cpu") {
		copyFile(d + "/online")
		for _, f := range []string{"physical_package_id", "die_id", "core_id", "thread_siblings_list", "thread_siblings",
			"core_cpus_list", "core_siblings_list", "package_cpus_list"} {
			copyFile(d + "/topology/" + f)
		}
		copyLinks(filepath.Join("cpu", filepath.Base(d)), "node")
	}
	for _, f := range []string{"possible", "online", "has_cpu", "has_memory", "has_normal_memory"} {
		copyFile("node/" + f)
	}
	for _, d := range numbered(filepath.Join(src, "node"), "node") {
		for _, f := range []string{"cpulist", "cpumap", "distance", "meminfo"} {
			copyFile(d + "/" + f)
		}
		copyLinks(filepath.Join("node", filepath.Base(d)), "cpu")
		copyLinks(filepath.Join("node", filepath.Base(d)), "memory")
	}
	copyFile("memory/block_size_bytes")
	copyFile("memory/auto_online_blocks")
	for _, d := range numbered(filepath.Join(src, "memory"), "memory") {
		for _, f := range []string{"phys_index", "phys_device", "state", "online", "valid_zones", "removable"} {
			copyFile(d + "/" + f)
		}
		copyLinks(filepath.Join("memory", filepath.Base(d)), "node")
	}
	return w.err
}

// numbered lists dir's entries prefix<N> as "<base>/<entry>" paths relative
// to /sys/devices/system, sorted by N.
func numbered(dir, prefix string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type ent struct {
		n    int
		name string
	}
	var out []ent
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		out = append(out, ent{n, e.Name()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	names := make([]string, len(out))
	for i, e := range out {
		names[i] = filepath.Join(filepath.Base(dir), e.name)
	}
	return names
}
