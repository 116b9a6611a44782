package plan

import (
	"fmt"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// NUMAID pairs a Linux NUMA node with the id McKernel gives it.
type NUMAID struct {
	// Linux is the node's id on Linux (sysfs, numactl).
	Linux int `json:"linux"`
	// LWK is the node's id inside the LWK: what mbind, set_mempolicy and
	// mcexec's -m take from a program running on McKernel.
	LWK int `json:"lwk"`
}

// lwkNUMAIDs numbers the LWK's NUMA nodes as IHK's SMP driver does when it
// boots McKernel: the driver builds a mask of the Linux nodes that hold an
// assigned CPU or an assigned memory chunk (numa_mask) and hands them to
// McKernel packed, in ascending Linux order (linux_numa_2_lwk_numa). The
// numbers agree with Linux's only when those nodes are 0..k-1; on a split
// node whose LWK memory skips a job node they do not.
func lwkNUMAIDs(t *topology.Topology, cpus []int, memory []ihk.MemChunk) []NUMAID {
	var nodes []int
	for _, c := range cpus {
		if cpu, ok := t.CPU(c); ok {
			nodes = append(nodes, cpu.NUMANode)
		}
	}
	for _, m := range memory {
		if m.Bytes > 0 { // a chunk of nothing is never assigned
			nodes = append(nodes, m.NUMANode)
		}
	}
	ids := cpuset.New(nodes...).List()
	out := make([]NUMAID, len(ids))
	for i, n := range ids {
		out[i] = NUMAID{Linux: n, LWK: i}
	}
	return out
}

// FormatNUMAMap writes the mapping as LWK_NUMA_MAP carries it to the job:
// "linux:lwk" pairs in ascending Linux order, e.g. "0:0,1:1,2:2,4:3".
func FormatNUMAMap(ids []NUMAID) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d:%d", id.Linux, id.LWK)
	}
	return strings.Join(parts, ",")
}

// NUMAIdentical reports whether every LWK NUMA id equals its Linux id, so
// that programs may use Linux's node numbers inside the LWK.
func (p *Plan) NUMAIdentical() bool {
	for _, id := range p.LWKNUMA {
		if id.Linux != id.LWK {
			return false
		}
	}
	return true
}
