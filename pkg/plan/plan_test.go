package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

func mustParse(t testing.TB, s string) cpuset.CPUSet {
	t.Helper()
	c, err := cpuset.Parse(s)
	require.NoError(t, err)
	return c
}

func mustConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	// No headroom: the cases below are about placement; TestHeadroom
	// covers it.
	text := `IHKBackend=sim
OSCores=0
LWKMemoryHeadroom=0%
Profile=mck Image=/opt/mckernel/mckernel.img Kargs="hidos dump_level=24" AllowKargs=allow_oversubscribe,time_sharing,dump_level=
` + extra
	cfg, err := config.Parse(strings.NewReader(text), "lwk.conf")
	require.NoError(t, err)
	return cfg
}

func mustRequest(t testing.TB, spec string) lwkmode.Request {
	t.Helper()
	r, err := lwkmode.Parse(spec)
	require.NoError(t, err)
	return r
}

// machine builds a topology: nodes maps NUMA node → its CPUs (list
// syntax); siblings pairs hyper-threads (cpu → core id = lowest sibling);
// offline lists offline CPUs; free is per-node free memory (total is free +
// 256 MiB); group puts nodes in distance groups: 10 to itself, 11 within a group,
// 20 across.
type machine struct {
	nodes    map[int]string
	siblings map[int]int
	offline  string
	free     map[int]uint64
	group    map[int]int
	// empty are online nodes with neither cpus nor memory.
	empty []int
}

func (m machine) build(t testing.TB) *topology.Topology {
	t.Helper()
	topo := &topology.Topology{EmptyNodes: m.empty}
	offline := cpuset.New()
	if m.offline != "" {
		offline = mustParse(t, m.offline)
	}
	ids := cpuset.New()
	for _, n := range sortedNodes(m.nodes) {
		cpus := cpuset.New()
		if m.nodes[n] != "" {
			cpus = mustParse(t, m.nodes[n])
		}
		ids = ids.Union(cpus)
		dist := map[int]int{}
		for _, o := range sortedNodes(m.nodes) {
			switch {
			case o == n:
				dist[o] = 10
			case m.group[o] == m.group[n]:
				dist[o] = 11
			default:
				dist[o] = 20
			}
		}
		topo.Nodes = append(topo.Nodes, topology.NUMANode{
			ID: n, CPUs: cpus, MemFreeBytes: m.free[n], MemTotalBytes: m.free[n] + 256*mib, Distances: dist,
		})
	}
	for _, id := range ids.List() {
		core := id
		if s, ok := m.siblings[id]; ok {
			core = s
		}
		node := -1
		for n, l := range m.nodes {
			if l != "" && mustParse(t, l).Contains(id) {
				node = n
			}
		}
		topo.CPUs = append(topo.CPUs, topology.CPU{ID: id, Core: core, Socket: m.group[node], NUMANode: node, Online: !offline.Contains(id)})
	}
	return topo
}

// twoNode is 2 nodes × 4 cores, no SMT, 4 GiB free each.
var twoNode = machine{
	nodes: map[int]string{0: "0-3", 1: "4-7"},
	free:  map[int]uint64{0: 4 * gib, 1: 4 * gib},
	group: map[int]int{0: 0, 1: 1},
}

// smt is 1 node, 4 cores × 2 threads: cores 0-3 with siblings 4-7.
var smt = machine{
	nodes:    map[int]string{0: "0-7"},
	siblings: map[int]int{4: 0, 5: 1, 6: 2, 7: 3},
	free:     map[int]uint64{0: 8 * gib},
}

// split is the paper's shape in miniature: CPUs on system nodes 0 (socket 0)
// and 1 (socket 1); memory-only job nodes 2,4 near node 0 and 3,5 near node 1.
var split = machine{
	nodes: map[int]string{0: "0-3", 1: "4-7", 2: "", 3: "", 4: "", 5: ""},
	free:  map[int]uint64{0: 512 * mib, 1: 512 * mib, 2: gib, 3: gib, 4: gib, 5: gib},
	group: map[int]int{0: 0, 1: 1, 2: 0, 3: 1, 4: 0, 5: 1},
}

// twoNodeFull1 is twoNode with nothing free on node 1.
var twoNodeFull1 = machine{
	nodes: map[int]string{0: "0-3", 1: "4-7"},
	free:  map[int]uint64{0: 4 * gib, 1: 0},
	group: map[int]int{0: 0, 1: 1},
}

// splitEmpty is split with online nodes 6-8 holding neither cpus nor
// memory, as Grace lists nodes for GPU memory.
var splitEmpty = func() machine { m := split; m.empty = []int{6, 7, 8}; return m }()

// hbm has CPUs and DDR on node 0 and a memory-only HBM node 1.
var hbm = machine{
	nodes: map[int]string{0: "0-3", 1: ""},
	free:  map[int]uint64{0: 2 * gib, 1: 16 * gib},
	group: map[int]int{0: 0, 1: 0},
}

func TestMake(t *testing.T) {
	tests := []struct {
		name    string
		m       machine
		conf    string
		cpus    string
		mem     uint64
		spec    string
		held    Held
		want    []int
		wantMem []ihk.MemChunk
		wantErr string
		nodeErr bool // the error is the node's, not the request's
	}{
		{
			name: "all job cpus, default share, proportional per node",
			m:    twoNode, cpus: "1-7", mem: 7 * gib, spec: "mck",
			// 90% of 7 GiB = 6451.2 MiB → 1612 granules; node 0 has 3/7 (690.9 → 690),
			// node 1 4/7 (921.1 → 921) plus the leftover granule (most cpus).
			want:    []int{1, 2, 3, 4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: 690 * 4 * mib}, {NUMANode: 1, Bytes: 922 * 4 * mib}},
		},
		{
			name: "os cores never planned",
			m:    twoNode, cpus: "0-7", mem: 4 * gib, spec: "mck:mem=1G",
			want: []int{1, 2, 3, 4, 5, 6, 7},
			// 256 granules: 3/7 → 109, 4/7 → 146, leftover granule to node 1.
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: 109 * 4 * mib}, {NUMANode: 1, Bytes: 147 * 4 * mib}},
		},
		{
			name: "cores=4 takes the whole free node first",
			m:    twoNode, cpus: "1-7", mem: 4 * gib, spec: "mck:cores=4,mem=1G",
			want:    []int{4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 1, Bytes: gib}},
		},
		{
			name: "cores=2 packs onto one node, lowest ids",
			m:    twoNode, cpus: "1-7", mem: 4 * gib, spec: "mck:cores=2,mem=1G",
			want:    []int{4, 5},
			wantMem: []ihk.MemChunk{{NUMANode: 1, Bytes: gib}},
		},
		{
			name: "whole cores before single threads",
			// Job has core 1 (1,5), core 2 (2,6) whole, core 3 only thread 3.
			m: smt, cpus: "1-3,5,6", mem: 4 * gib, spec: "mck:cores=2,mem=1G",
			want:    []int{1, 2, 5, 6},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "threads when whole cores run out",
			m:    smt, cpus: "1-3,5,6", mem: 4 * gib, spec: "mck:cores=3,mem=1G",
			want:    []int{1, 2, 3, 5, 6},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "offline cpus are skipped",
			m:    func() machine { m := smt; m.offline = "5-7"; return m }(), cpus: "1-7", mem: 4 * gib, spec: "mck:mem=1G",
			want:    []int{1, 2, 3, 4},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "held cpus are skipped",
			m:    twoNode, cpus: "1-7", mem: 4 * gib, spec: "mck:mem=1G", held: Held{CPUs: cpuset.New(4, 5, 6, 7)},
			want:    []int{1, 2, 3},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "split node: memory only on job nodes nearest the cpus",
			m:    split, conf: "SystemNUMANodes=0-1\nJobNUMANodes=2-5\n",
			cpus: "1-7", mem: 2 * gib, spec: "mck:mem=1792M",
			// Node 0 holds 3 cpus (768 MiB share), node 1 holds 4 (1 GiB).
			want:    []int{1, 2, 3, 4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 2, Bytes: 768 * mib}, {NUMANode: 3, Bytes: gib}},
		},
		{
			name: "split node: strict stays on the nearest job nodes",
			m:    split, conf: "SystemNUMANodes=0-1\nJobNUMANodes=2-5\n",
			cpus: "4-7", mem: 4 * gib, spec: "mck:mem=3G",
			wantErr: "lwk memory 3 GiB for cpus on numa nodes 1 (numa=strict): available 2 GiB on nodes 3,5 (3:1 GiB 5:1 GiB), short by 1 GiB",
		},
		{
			name: "split node: near goes on to farther job nodes",
			m:    split, conf: "SystemNUMANodes=0-1\nJobNUMANodes=2-5\n",
			cpus: "4-7", mem: 4 * gib, spec: "mck:mem=3G,numa=near",
			want:    []int{4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 2, Bytes: gib}, {NUMANode: 3, Bytes: gib}, {NUMANode: 5, Bytes: gib}},
		},
		{
			name: "split node: strict spills between the sources' nearest tiers",
			m:    split, conf: "SystemNUMANodes=0-1\nJobNUMANodes=2-3\n",
			// Node 0's 3 cpus want 876 MiB from node 2; node 1's 4 cpus want
			// 1172 MiB but node 3 has 1 GiB: the rest spills to node 2.
			cpus: "1-7", mem: 4 * gib, spec: "mck:mem=2G",
			want:    []int{1, 2, 3, 4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 2, Bytes: gib}, {NUMANode: 3, Bytes: gib}},
		},
		{
			name: "memory-only hbm node unused under strict",
			m:    hbm, cpus: "1-3", mem: 8 * gib, spec: "mck:mem=1G",
			want:    []int{1, 2, 3},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "near spills to the memory-only node",
			m:    hbm, cpus: "1-3", mem: 8 * gib, spec: "mck:mem=6G,numa=near",
			want: []int{1, 2, 3},
			// IHK takes at most 95% of node 0's free memory: 1944 MiB of 2 GiB.
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: 1944 * mib}, {NUMANode: 1, Bytes: 4200 * mib}},
		},
		{
			name: "strict shortage names nodes and free memory",
			m:    hbm, cpus: "1-3", mem: 8 * gib, spec: "mck:mem=6G",
			wantErr: "lwk memory 6 GiB for cpus on numa nodes 0 (numa=strict): available 1.9 GiB on nodes 0 (0:1.9 GiB), short by 4.1 GiB; numa=near may use farther nodes",
		},
		{
			name: "mem beyond the job's memory",
			m:    twoNode, cpus: "1-7", mem: 2 * gib, spec: "mck:mem=3G",
			wantErr: "mem=3 GiB: more than the job's memory on this node (2 GiB)",
		},
		{
			name: "percentage of job memory",
			m:    twoNode, cpus: "4-7", mem: 2 * gib, spec: "mck:mem=50%",
			want:    []int{4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 1, Bytes: gib}},
		},
		{
			name: "cores beyond the job's",
			m:    twoNode, cpus: "1-3", mem: 2 * gib, spec: "mck:cores=4",
			wantErr: "cores=4: job has 3 usable cores (cpus 1-3; per numa node: 0: 3 whole)",
		},
		{
			name: "only os cores",
			m:    twoNode, cpus: "0", mem: 2 * gib, spec: "mck",
			wantErr: "job cpus 0: none usable for the lwk (os cores 0, offline , held by ihk )",
			nodeErr: true,
		},
		{
			name: "cpu not on this node",
			m:    twoNode, cpus: "6-9", mem: 2 * gib, spec: "mck",
			wantErr: "job cpus 6-9: cpus 8-9 do not exist on this node (cpus 0-7)",
			nodeErr: true,
		},
		{
			name: "cores short because ihk holds some: the node's problem",
			m:    twoNode, cpus: "1-7", mem: 2 * gib, spec: "mck:cores=6", held: Held{CPUs: cpuset.New(4, 5)},
			wantErr: "cores=6: job has 5 usable cores (cpus 1-3,6-7; per numa node: 0: 3 whole; 1: 2 whole); the rest are held by ihk 4-5",
			nodeErr: true,
		},
		{
			name: "mem=50% too small names what was asked",
			m:    twoNode, cpus: "4-7", mem: 6 * mib, spec: "mck:mem=50%",
			wantErr: "lwk memory mem=50% of the job's 6 MiB on this node (3 MiB): less than 4 MiB, the unit IHK reserves memory in",
		},
		{
			name: "default share too small names the share and the job memory",
			m:    twoNode, cpus: "4-7", mem: 4 * mib, spec: "mck",
			wantErr: "lwk memory the default LWKMemoryShare=90% of the job's 4 MiB on this node (3.6 MiB): less than 4 MiB",
		},
		{
			name: "mem= bytes too small",
			m:    twoNode, cpus: "4-7", mem: 6 * mib, spec: "mck:mem=3M",
			wantErr: "lwk memory mem=3 MiB: less than 4 MiB",
		},
		{
			name: "cores=N avoids the node without free memory",
			// Node 1 has the most whole cores but nothing free; under
			// numa=strict its cores could not get memory, node 0's can.
			m: twoNodeFull1, cpus: "1-7", mem: 4 * gib, spec: "mck:cores=2,mem=1G",
			want:    []int{1, 2},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "cores=N skips a whole node without memory until one with memory is taken",
			m:    twoNodeFull1, cpus: "1-7", mem: 4 * gib, spec: "mck:cores=4,mem=1G",
			want:    []int{1, 2, 3, 4},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "cores=N with numa=near keeps the most-cores order",
			m:    twoNodeFull1, cpus: "1-7", mem: 4 * gib, spec: "mck:cores=2,mem=1G,numa=near",
			want:    []int{4, 5},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: gib}},
		},
		{
			name: "cores=N when no single node holds the memory: most cores first",
			m:    twoNode, cpus: "1-7", mem: 8 * gib, spec: "mck:cores=5,mem=6G",
			want:    []int{1, 4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 0, Bytes: 2 * gib}, {NUMANode: 1, Bytes: 4 * gib}},
		},
		{
			name: "empty online job nodes give nothing and are no error",
			m:    splitEmpty, conf: "SystemNUMANodes=0-1\nJobNUMANodes=2-8\n",
			cpus: "4-7", mem: 4 * gib, spec: "mck:mem=1G",
			want:    []int{4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 3, Bytes: gib}},
		},
		{
			name: "job nodes that do not exist are told from empty ones",
			m:    splitEmpty, conf: "SystemNUMANodes=0-1\nJobNUMANodes=2-9\n",
			cpus: "4-7", mem: 4 * gib, spec: "mck:mem=1G",
			wantErr: "job numa nodes 2-9: nodes 9 do not exist (online nodes with cpus or memory: 0-5; without either: 6-8)",
			nodeErr: true,
		},
		{
			name: "job nodes that are all empty",
			m:    splitEmpty, conf: "SystemNUMANodes=0-1\nJobNUMANodes=6-8\n",
			cpus: "4-7", mem: 4 * gib, spec: "mck:mem=1G",
			wantErr: "job numa nodes 6-8: none has memory (online without cpus or memory: 6-8; nodes with memory: 0-5)",
			nodeErr: true,
		},
		{
			name: "unknown profile",
			m:    twoNode, cpus: "1-7", mem: 2 * gib, spec: "linux2",
			wantErr: `profile "linux2"`,
		},
		{
			name: "karg outside the allow list",
			m:    twoNode, cpus: "1-7", mem: 2 * gib, spec: "mck:kargs=memdebug",
			wantErr: `kernel argument "memdebug": not allowed by profile "mck"`,
		},
		{
			name: "allowed kargs appended in order",
			m:    twoNode, cpus: "4-7", mem: 2 * gib, spec: "mck:mem=1G,kargs=time_sharing+dump_level=0",
			want:    []int{4, 5, 6, 7},
			wantMem: []ihk.MemChunk{{NUMANode: 1, Bytes: gib}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{
				Topology: tc.m.build(t),
				Config:   mustConfig(t, tc.conf),
				JobID:    12,
				Alloc:    Allocation{CPUs: mustParse(t, tc.cpus), MemoryBytes: tc.mem},
				Request:  mustRequest(t, tc.spec),
				Held:     tc.held,
			}
			p, err := Make(in)
			if tc.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErr)
				require.Equal(t, !tc.nodeErr, errors.Is(err, ErrRequest), "request errors wrap ErrRequest: %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, p.CPUs)
			require.Equal(t, tc.wantMem, p.Memory)
			for _, c := range p.Memory {
				require.Zero(t, c.Bytes%ihk.MemoryGranule, "node %d size %d", c.NUMANode, c.Bytes)
			}
			require.Equal(t, "mck", p.Profile)
			require.Equal(t, "/opt/mckernel/mckernel.img", p.Image)
			require.True(t, strings.HasPrefix(p.Kargs, "hidos dump_level=24"), p.Kargs)
		})
	}
}

func TestProxyAndKargs(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader(`IHKBackend=sim
OSCores=0-1
ProxyMemory=256M
ProxyCPUShare=50%
ProxyCPUPeriod=100ms
Profile=mck Image=/opt/mckernel/mckernel.img Kargs="hidos" AllowKargs=time_sharing,dump_level=
`), "lwk.conf")
	require.NoError(t, err)
	p, err := Make(Input{
		Topology: twoNode.build(t),
		Config:   cfg,
		JobID:    7,
		Alloc:    Allocation{CPUs: mustParse(t, "2-7"), MemoryBytes: 2 * gib},
		Request:  mustRequest(t, "mck:kargs=time_sharing+dump_level=0"),
	})
	require.NoError(t, err)
	// Paper §3.2.4: half of two OS cores is one full CPU: quota = period.
	// Every job core went to the LWK: the batch step has only the OS cores.
	require.Equal(t, Proxy{CPUs: cpuset.New(0, 1), MemoryBytes: 256 * mib, CPUQuotaUS: 100000, CPUPeriodUS: 100000, BatchCPUs: cpuset.New(0, 1)}, p.Proxy)
	require.Equal(t, "hidos time_sharing dump_level=0", p.Kargs)
	require.Equal(t, lwkmode.NUMAStrict, p.NUMAPolicy)
}

func TestProxyLimitsPerCase(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader(`IHKBackend=sim
OSCores=0-1
Profile=mck Image=/opt/mckernel/mckernel.img Kargs="hidos"
Profile=chatty Image=/opt/mckernel/mckernel.img Kargs="hidos" ProxyMemory=1G ProxyCPUShare=25% ProxyCPUPeriod=50ms
`), "lwk.conf")
	require.NoError(t, err)
	tests := []struct {
		name      string
		spec      string
		wantProxy Proxy
		wantBatch func(p *Plan) cpuset.CPUSet
	}{
		{name: "all cores to the LWK: batch on the OS cores", spec: "mck",
			wantProxy: Proxy{CPUs: cpuset.New(0, 1), MemoryBytes: 128 * mib, CPUQuotaUS: 100000, CPUPeriodUS: 100000},
			wantBatch: func(*Plan) cpuset.CPUSet { return cpuset.New(0, 1) }},
		{name: "cores=2: batch on the job's cores Linux keeps", spec: "mck:cores=2",
			wantProxy: Proxy{CPUs: cpuset.New(0, 1), MemoryBytes: 128 * mib, CPUQuotaUS: 100000, CPUPeriodUS: 100000},
			wantBatch: func(p *Plan) cpuset.CPUSet { return mustParse(t, "2-7").Difference(p.CPUSet()) }},
		{name: "profile overrides", spec: "chatty",
			// 25% of two OS cores at a 50ms period: 25ms per 50ms.
			wantProxy: Proxy{CPUs: cpuset.New(0, 1), MemoryBytes: 1024 * mib, CPUQuotaUS: 25000, CPUPeriodUS: 50000},
			wantBatch: func(*Plan) cpuset.CPUSet { return cpuset.New(0, 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Make(Input{Topology: twoNode.build(t), Config: cfg, JobID: 7,
				Alloc: Allocation{CPUs: mustParse(t, "2-7"), MemoryBytes: 2 * gib}, Request: mustRequest(t, tc.spec)})
			require.NoError(t, err)
			batch := tc.wantBatch(p)
			require.False(t, batch.IsEmpty())
			require.True(t, batch.Intersection(p.CPUSet()).IsEmpty(), "the batch step never gets an LWK CPU")
			want := tc.wantProxy
			want.BatchCPUs = batch
			require.Equal(t, want, p.Proxy)
		})
	}
}

// TestProxyLimitsCountOnlyOnlineOSCores: an offline OS core runs no proxy,
// so it is neither in the proxies' cpuset nor in their CPU quota.
func TestProxyLimitsCountOnlyOnlineOSCores(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader(`IHKBackend=sim
OSCores=0-1
ProxyCPUShare=50%
ProxyCPUPeriod=100ms
Profile=mck Image=/opt/mckernel/mckernel.img Kargs="hidos"
`), "lwk.conf")
	require.NoError(t, err)
	tests := []struct {
		name      string
		offline   string
		wantCPUs  cpuset.CPUSet
		wantQuota int64
		wantErr   string
	}{
		{name: "both online", wantCPUs: cpuset.New(0, 1), wantQuota: 100000},
		{name: "cpu 1 offline", offline: "1", wantCPUs: cpuset.New(0), wantQuota: 50000},
		{name: "both offline", offline: "0-1", wantErr: "os cores 0-1: none is online (online cpus 2-7)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := twoNode
			m.offline = tc.offline
			p, err := Make(Input{Topology: m.build(t), Config: cfg, JobID: 7,
				Alloc: Allocation{CPUs: mustParse(t, "2-7"), MemoryBytes: 2 * gib}, Request: mustRequest(t, "mck")})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotErrorIs(t, err, ErrRequest, "the node's configuration, not the job's request")
				return
			}
			require.NoError(t, err)
			require.True(t, tc.wantCPUs.Equals(p.Proxy.CPUs), "proxy cpus %s", p.Proxy.CPUs)
			require.Equal(t, tc.wantQuota, p.Proxy.CPUQuotaUS)
		})
	}
}

// TestDriverCPULimit: the IHK-SMP driver refuses CPU IDs from 512 up
// (SMP_MAX_CPUS), so on a 1024-CPU node a plan must never hold them.
func TestDriverCPULimit(t *testing.T) {
	topo := machineOf(4, 128, 32) // CPUs 0-511 thread 0 of each core, 512-1023 the siblings
	cfg := mustConfig(t, "")
	tests := []struct {
		name, cpus, spec string
		osCores          string // default: lwk.conf's
		wantCPUs         string
		wantIKC          string // checked when set
		wantErr          string
	}{
		{name: "whole node: only the cpus below 512", cpus: "0-1023", spec: "mck:mem=1G", wantCPUs: "1-511"},
		// OS cores 0 and its sibling 512: interrupts go to 0 only, the
		// driver cannot route to 512.
		{name: "ikc targets only below 512", cpus: "0-1023", spec: "mck:cores=4,mem=1G", osCores: "0,512",
			wantCPUs: "16-19", wantIKC: "16-19:0"},
		{name: "cores=4 takes single threads below 512, node with the most", cpus: "0-1023", spec: "mck:cores=4,mem=1G", wantCPUs: "16-19"},
		{name: "job only above 511", cpus: "600-700", spec: "mck:mem=1G",
			wantErr: "job cpus 600-700: ihk can take only cpus 0-511 (SMP_MAX_CPUS)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Topology: topo, Config: cfg, JobID: 3, Request: mustRequest(t, tc.spec),
				Alloc: Allocation{CPUs: mustParse(t, tc.cpus), MemoryBytes: 64 * gib}}
			if tc.osCores != "" {
				c := *cfg // cfg is shared by every case
				c.OSCores = mustParse(t, tc.osCores)
				in.Config = &c
			}
			p, err := Make(in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorIs(t, err, ErrRequest)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantCPUs, p.CPUSet().String())
			if tc.wantIKC != "" {
				require.Equal(t, tc.wantIKC, ihk.FormatIKCMap(p.IKCMap))
			}
			checkRules(t, in, p)
		})
	}
}
