package nodeprep_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/nodeprep"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysconfine"
)

func mustParse(t *testing.T, s string) cpuset.CPUSet {
	t.Helper()
	set, err := cpuset.Parse(s)
	require.NoError(t, err)
	return set
}

func split(t *testing.T) nodeprep.Settings {
	return nodeprep.Settings{OSCores: mustParse(t, "0-1"), SystemNodes: mustParse(t, "0"), JobNodes: mustParse(t, "1-3")}
}

func machine(t *testing.T, m *q35) *nodeprep.Machine {
	t.Helper()
	mc, err := nodeprep.ReadMachine(m.root)
	require.NoError(t, err)
	return mc
}

func TestPlanSplitNode(t *testing.T) {
	m := newQ35(t, 40)
	p, err := nodeprep.MakePlan(machine(t, m), split(t))
	require.NoError(t, err)
	// Node 0 is all DMA/DMA32: it absorbs kernelcore, so movablecore can
	// cover the three job nodes whole (what the VM showed: 8/8 blocks).
	require.Equal(t, []string{"movablecore=3072M", "irqaffinity=0-1"}, p.KernelArgs)
	require.Equal(t, []string{"movablecore=3072M"}, p.Missing)
	require.Equal(t, map[int]uint64{0: 0, 1: 1 << 30, 2: 1 << 30, 3: 1 << 30}, p.MovableBytes)
	// Fully Movable job nodes: the job cpuset must keep node 0.
	require.Equal(t, "0-3", p.JobCpusetMems)
	require.Len(t, p.Blocks, 23) // 24 job-node blocks, memory40 already Movable
	require.Equal(t, nodeprep.BlockChange{Index: 32, Node: 1, From: "Normal", To: "Movable"}, p.Blocks[0])
	require.Equal(t, []nodeprep.IRQChange{
		{Number: 24, From: "0-3", To: "0-1", Handlers: []string{"virtio0"}},
		{Number: 25, From: "3", To: "0-1"},
	}, p.IRQs)
	require.Equal(t, nodeprep.Confinement{Mode: sysconfine.ModeNone, CPUs: "0-1", Mems: "0"}, p.Confine)
	require.Contains(t, p.Format(), "movablecore=3072M irqaffinity=0-1")
}

func TestPlanFakeNUMA(t *testing.T) {
	m := newQ35(t)
	mc := machine(t, m)
	// Pretend one hardware node with all 4 GiB.
	mc.Topo.Nodes = mc.Topo.Nodes[:1]
	mc.Topo.Nodes[0].MemTotalBytes = 4 << 30
	for _, tc := range []struct {
		name     string
		sysMem   uint64
		args     []string
		fake     *nodeprep.FakeNUMA
		errorHas string
	}{
		{name: "1 GiB system part", sysMem: 1 << 30, args: []string{"numa=fake=4", "irqaffinity=0-1"},
			fake: &nodeprep.FakeNUMA{Nodes: 4, NodeBytes: 1 << 30, SystemNodes: "0", JobNodes: "1-3"}},
		{name: "system need rounded to blocks", sysMem: 300 << 20, args: []string{"numa=fake=10", "irqaffinity=0-1"},
			fake: &nodeprep.FakeNUMA{Nodes: 10, NodeBytes: 384 << 20, SystemNodes: "0", JobNodes: "1-9"}},
		{name: "tiny need capped at 64 nodes", sysMem: 1, args: []string{"numa=fake=32", "irqaffinity=0-1"},
			fake: &nodeprep.FakeNUMA{Nodes: 32, NodeBytes: 128 << 20, SystemNodes: "0", JobNodes: "1-31"}},
		{name: "no size given", sysMem: 0, errorHas: "--system-mem"},
		{name: "system needs everything", sysMem: 4 << 30, errorHas: "not below"},
		{name: "no room for jobs", sysMem: 3 << 30, errorHas: "cannot hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := nodeprep.MakePlan(mc, nodeprep.Settings{OSCores: mustParse(t, "0-1"), SystemMemBytes: tc.sysMem})
			if tc.errorHas != "" {
				require.ErrorContains(t, err, tc.errorHas)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.args, p.KernelArgs)
			require.Equal(t, tc.fake, p.FakeNUMA)
		})
	}
}

func TestPlanErrors(t *testing.T) {
	mc := machine(t, newQ35(t))
	_, err := nodeprep.MakePlan(mc, nodeprep.Settings{})
	require.ErrorContains(t, err, "OSCores")
	_, err = nodeprep.MakePlan(mc, nodeprep.Settings{OSCores: mustParse(t, "0-7")})
	require.ErrorContains(t, err, "not all on this node")
	s := split(t)
	s.JobNodes = mustParse(t, "1-5")
	_, err = nodeprep.MakePlan(mc, s)
	require.ErrorContains(t, err, "4-5 have no memory")
	// Several hardware nodes but no split: say so, change no blocks.
	p, err := nodeprep.MakePlan(mc, nodeprep.Settings{OSCores: mustParse(t, "0-1")})
	require.NoError(t, err)
	require.Empty(t, p.Blocks)
	require.Contains(t, p.Notes[0], "set SystemNUMANodes and JobNUMANodes")
}

func TestApplyUndoIdempotent(t *testing.T) {
	m := newQ35(t, 40)
	state := filepath.Join(t.TempDir(), "state")
	k := &fakeKernel{m: m, t: t, busy: map[int]bool{32: true, 39: true}}
	a := &nodeprep.Applier{Root: m.root, StateDir: state, Blocks: k}
	ctx := context.Background()
	p, err := nodeprep.MakePlan(machine(t, m), split(t))
	require.NoError(t, err)
	// IRQ 0 refuses as a per-CPU IRQ would: make its file a directory.
	res, err := a.Apply(ctx, p)
	require.NoError(t, err)
	require.Len(t, res.Changed, 21+2) // 23 blocks minus 2 busy, 2 IRQs
	require.Len(t, res.Refused, 2)
	require.Equal(t, "memory32", res.Refused[0].Object)
	require.Contains(t, res.Refused[0].Err, "device or resource busy")
	require.Equal(t, 23, res.Recorded)
	require.Equal(t, "Movable", m.blocks[33])
	require.Equal(t, "Normal", m.blocks[32])
	irq, err := os.ReadFile(filepath.Join(m.root, "proc/irq/25/smp_affinity_list"))
	require.NoError(t, err)
	require.Equal(t, "0-1", string(irq))
	st, err := os.Stat(filepath.Join(state, nodeprep.RecordName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Second apply from a fresh plan: nothing but the two busy blocks
	// left to try, nothing changes, record unchanged.
	p2, err := nodeprep.MakePlan(machine(t, m), split(t))
	require.NoError(t, err)
	require.Len(t, p2.Blocks, 2)
	require.Empty(t, p2.IRQs)
	res, err = a.Apply(ctx, p2)
	require.NoError(t, err)
	require.Empty(t, res.Changed)
	require.Len(t, res.Refused, 2)
	require.Equal(t, 23, res.Recorded)

	// Undo restores exactly what was changed: memory40 was Movable
	// before and stays so; the IRQs get their old affinities.
	res, err = a.Undo(ctx)
	require.NoError(t, err)
	require.Len(t, res.Changed, 23)
	require.Empty(t, res.Refused)
	for b, zone := range m.blocks {
		want := "Normal"
		if b < 8 {
			want = "DMA32"
		} else if b == 40 {
			want = "Movable"
		}
		require.Equal(t, want, zone, "memory%d", b)
	}
	irq, err = os.ReadFile(filepath.Join(m.root, "proc/irq/25/smp_affinity_list"))
	require.NoError(t, err)
	require.Equal(t, "3", string(irq))
	_, err = os.Stat(filepath.Join(state, nodeprep.RecordName))
	require.True(t, os.IsNotExist(err))
	// Undo with nothing recorded does nothing.
	res, err = a.Undo(ctx)
	require.NoError(t, err)
	require.Empty(t, res.Changed)
}

func TestUndoKeepsWhatRefuses(t *testing.T) {
	m := newQ35(t)
	state := t.TempDir()
	k := &fakeKernel{m: m, t: t, busy: map[int]bool{}}
	a := &nodeprep.Applier{Root: m.root, StateDir: state, Blocks: k}
	p, err := nodeprep.MakePlan(machine(t, m), split(t))
	require.NoError(t, err)
	_, err = a.Apply(context.Background(), p)
	require.NoError(t, err)
	k.busy[35] = true // a long-lived kernel allocation landed meanwhile
	res, err := a.Undo(context.Background())
	require.NoError(t, err)
	require.Len(t, res.Refused, 1)
	require.Equal(t, 1, res.Recorded)
	delete(k.busy, 35)
	res, err = a.Undo(context.Background())
	require.NoError(t, err)
	require.Len(t, res.Changed, 1)
	require.Equal(t, "Normal", m.blocks[35])
}

func TestCorruptRecord(t *testing.T) {
	m := newQ35(t)
	state := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(state, nodeprep.RecordName), []byte(`{"version":1,"sha256":"00","changes":[]}`), 0o600))
	a := &nodeprep.Applier{Root: m.root, StateDir: state, Blocks: &fakeKernel{m: m, t: t}}
	_, err := a.Undo(context.Background())
	var ce *nodeprep.CorruptRecordError
	require.ErrorAs(t, err, &ce)
	require.Contains(t, err.Error(), "remove the file")
	_, err = (&nodeprep.Applier{StateDir: "relative"}).Undo(context.Background())
	require.ErrorContains(t, err, "not an absolute path")
}

type fakeRunner struct{ calls [][]string }

func (f *fakeRunner) Run(_ context.Context, argv ...string) error {
	f.calls = append(f.calls, argv)
	return nil
}

func TestConfineSystemd(t *testing.T) {
	m := newQ35(t)
	put(t, m.root, "run/systemd/system/.keep", "")
	for _, d := range []string{"system.slice/cron.service", "system.slice/slurmd.service", "system.slice/slurmstepd.scope", "user.slice"} {
		require.NoError(t, os.MkdirAll(filepath.Join(m.root, "sys/fs/cgroup", d), 0o755))
	}
	// An admin's own drop-in with our name is kept and restored.
	put(t, m.root, "etc/systemd/system/user.slice.d/"+sysconfine.DropInName, "[Slice]\nCPUWeight=50\n")
	run := &fakeRunner{}
	a := &nodeprep.Applier{Root: m.root, StateDir: t.TempDir(), Blocks: &fakeKernel{m: m, t: t}, Runner: run}
	p, err := nodeprep.MakePlan(machine(t, m), split(t))
	require.NoError(t, err)
	require.Equal(t, []string{"cron.service", "user.slice"}, p.Confine.Units)
	_, err = a.Apply(context.Background(), p)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(m.root, "etc/systemd/system/cron.service.d", sysconfine.DropInName))
	require.NoError(t, err)
	require.Contains(t, string(b), "[Service]\nAllowedCPUs=0-1\nAllowedMemoryNodes=0\n")
	require.Equal(t, [][]string{{"systemctl", "daemon-reload"}}, run.calls)
	_, err = a.Apply(context.Background(), p)
	require.NoError(t, err)
	require.Len(t, run.calls, 1, "second apply changed nothing, no reload")

	_, err = a.Undo(context.Background())
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(m.root, "etc/systemd/system/cron.service.d"))
	require.True(t, os.IsNotExist(err))
	b, err = os.ReadFile(filepath.Join(m.root, "etc/systemd/system/user.slice.d", sysconfine.DropInName))
	require.NoError(t, err)
	require.Equal(t, "[Slice]\nCPUWeight=50\n", string(b))
	require.Len(t, run.calls, 2)
}

func TestConfineCgroup2(t *testing.T) {
	m := newQ35(t)
	cg := filepath.Join(m.root, "sys/fs/cgroup")
	put(t, m.root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu memory pids\n")
	put(t, m.root, "sys/fs/cgroup/cgroup.subtree_control", "memory\n")
	put(t, m.root, "sys/fs/cgroup/cgroup.procs", "1\n2\n40\n")
	a := &nodeprep.Applier{Root: m.root, StateDir: t.TempDir(), Blocks: &fakeKernel{m: m, t: t}}
	p, err := nodeprep.MakePlan(machine(t, m), split(t))
	require.NoError(t, err)
	require.Equal(t, sysconfine.ModeCgroup2, p.Confine.Mode)
	_, err = a.Apply(context.Background(), p)
	require.NoError(t, err)
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(cg, rel))
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "memory\n+cpuset\n", read("cgroup.subtree_control"))
	require.Equal(t, "0-1\n", read(sysconfine.GroupName+"/cpuset.cpus"))
	require.Equal(t, "0\n", read(sysconfine.GroupName+"/cpuset.mems"))
	// Kernel thread 2 stays; init and sshd move.
	require.Equal(t, "1\n40\n", read(sysconfine.GroupName+"/cgroup.procs"))

	_, err = a.Undo(context.Background())
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(read("cgroup.procs"), "1\n40\n"))
	require.Equal(t, "memory\n+cpuset\n-cpuset\n", read("cgroup.subtree_control"))
	_, err = os.Stat(filepath.Join(cg, sysconfine.GroupName))
	require.True(t, os.IsNotExist(err))
}

func TestReport(t *testing.T) {
	m := newQ35(t, 40, 41)
	r, err := nodeprep.MakeReport(machine(t, m), split(t))
	require.NoError(t, err)
	require.Len(t, r.Nodes, 4)
	n1, n2, n3 := r.Nodes[1], r.Nodes[2], r.Nodes[3]
	require.True(t, n1.Job)
	require.False(t, r.Nodes[0].Job)
	// Node 1: all 1 GiB free in one run.
	require.Equal(t, uint64(1<<30), n1.ContiguousFreeBytes)
	require.InDelta(t, 1.0, n1.ContiguousShare, 1e-9)
	require.Equal(t, uint64(3+2*100), n1.Free2MBBlocks)
	require.Equal(t, uint64(100), n1.Free4MBBlocks)
	// Node 2: a slab page in the middle of every block: runs of one
	// block less a page, across block boundaries.
	require.Equal(t, uint64(0), n2.ContiguousFreeBytes)
	require.Equal(t, uint64(128<<20-4096), n2.LongestRunBytes)
	require.Equal(t, map[string]int{"Movable": 2, "Normal": 6}, n2.Blocks)
	require.Equal(t, []int{42, 43, 44, 45, 46, 47}, n2.NotMovable)
	// Node 3: upper half free, 512 MiB.
	require.Equal(t, uint64(512<<20), n3.ContiguousFreeBytes)
	require.Equal(t, uint64(3<<30)/2, r.JobContiguousBytes)
	require.InDelta(t, 0.5, r.JobContiguousShare, 1e-9)
	require.Equal(t, []nodeprep.IRQReport{{Number: 24, Affinity: "0-3", Handlers: []string{"virtio0"}}, {Number: 25, Affinity: "3"}}, r.IRQsOnAppCores)
	require.Equal(t, []nodeprep.ProcessReport{{PID: 1, Comm: "init", CPUs: "0-3"}}, r.DaemonsOnAppCores)
	require.Equal(t, 1, r.KernelThreadsOnAppCores) // kthreadd; ksoftirqd/3 is per-CPU
	require.Contains(t, r.Format(), "job nodes: 50.0% of 3072 MiB")
	require.Equal(t, "1-3", r.JobCpusetMems)

	// Without kpageflags (not root, or no CONFIG_PROC_PAGE_MONITOR) the
	// run figures are absent, not zero-and-claimed.
	require.NoError(t, os.Remove(filepath.Join(m.root, "proc/kpageflags")))
	r, err = nodeprep.MakeReport(machine(t, m), split(t))
	require.NoError(t, err)
	require.False(t, r.Nodes[1].KPageFlags)
	require.Contains(t, r.Format(), "n/a")
}

func TestJobCpusetMems(t *testing.T) {
	job, sys := mustParse(t, "1-3"), mustParse(t, "0")
	for _, tc := range []struct{ normal, want string }{
		{"0-3", "1-3"}, // paper method: job nodes keep some Normal memory
		{"0,2", "1-3"}, // one job node with Normal memory is enough
		{"0", "0-3"},   // boot-time Movable: the trap, add node 0
		{"", "0-3"},
	} {
		require.Equal(t, tc.want, nodeprep.JobCpusetMems(job, sys, mustParse(t, tc.normal)).String(), tc.normal)
	}
	require.Equal(t, "1-3", nodeprep.JobCpusetMems(job, cpuset.New(), cpuset.New()).String())
}
