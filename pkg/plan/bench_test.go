package plan

import (
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// bigMachine is 512 logical CPUs: 4 sockets × 64 cores × 2 threads, 32 NUMA
// nodes of 8 cores each (e.g. 4-socket EPYC in NPS8-like layout), 16 GiB free
// per node. Linux numbering: thread 0 of every core first, then siblings.
func bigMachine() *topology.Topology { return machineOf(4, 64, 32) }

// machineOf is a 2-thread machine of sockets × coresPerSocket cores in
// nodes NUMA nodes, numbered as bigMachine is.
func machineOf(sockets, coresPerSocket, nodes int) *topology.Topology {
	cores := sockets * coresPerSocket
	coresPerNode := cores / nodes
	t := &topology.Topology{}
	for n := 0; n < nodes; n++ {
		var ids []int
		for c := n * coresPerNode; c < (n+1)*coresPerNode; c++ {
			ids = append(ids, c, c+cores)
		}
		dist := map[int]int{}
		for o := 0; o < nodes; o++ {
			switch {
			case o == n:
				dist[o] = 10
			case o/(nodes/sockets) == n/(nodes/sockets):
				dist[o] = 12
			default:
				dist[o] = 32
			}
		}
		t.Nodes = append(t.Nodes, topology.NUMANode{ID: n, CPUs: cpuset.New(ids...), MemTotalBytes: 17 * gib, MemFreeBytes: 16 * gib, Distances: dist})
	}
	for id := 0; id < 2*cores; id++ {
		core := id % cores
		t.CPUs = append(t.CPUs, topology.CPU{ID: id, Core: core, Socket: core / coresPerSocket, NUMANode: core / coresPerNode, Online: true})
	}
	return t
}

func BenchmarkMake512CPUs32Nodes(b *testing.B) { benchmarkMake(b, bigMachine()) }

// BenchmarkMake1024CPUs32Nodes is the node benchlifecycle generates.
func BenchmarkMake1024CPUs32Nodes(b *testing.B) { benchmarkMake(b, machineOf(4, 128, 32)) }

func benchmarkMake(b *testing.B, topo *topology.Topology) {
	cfg, err := config.Parse(strings.NewReader(`IHKBackend=ihk
OSCores=0-1,256-257
Profile=mck Image=/opt/mckernel/mckernel.img Kargs="hidos"
`), "lwk.conf")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, spec string }{
		{"all-cores", "mck"},
		{"cores=100,near", "mck:cores=100,numa=near"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := Input{
				Topology: topo, Config: cfg, JobID: 1,
				Alloc:   Allocation{CPUs: topo.AllCPUs(), MemoryBytes: 400 * gib},
				Request: mustRequest(b, bc.spec),
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Make(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
