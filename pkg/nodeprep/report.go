package nodeprep

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
)

// ContiguousBytes is the run length the report counts: 256 MiB, the
// paper's threshold for LWK-assignable contiguous memory.
const ContiguousBytes = 256 << 20

// NodeReport describes one NUMA node's memory. Units: bytes.
type NodeReport struct {
	Node int  `json:"node"`
	Job  bool `json:"job"`
	// TotalBytes and FreeBytes are nodeN/meminfo's MemTotal and MemFree.
	TotalBytes uint64 `json:"total_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
	// Free2MBBlocks and Free4MBBlocks count the free blocks of 2 and 4 MiB
	// the buddy allocator holds (buddyinfo, all zones of the node).
	Free2MBBlocks uint64 `json:"free_2mb_blocks"`
	Free4MBBlocks uint64 `json:"free_4mb_blocks"`
	// FreeInRunsBytes is the free memory found in /proc/kpageflags;
	// ContiguousFreeBytes the part of it in runs of at least 256 MiB;
	// ContiguousShare that part over TotalBytes; LongestRunBytes the
	// longest run. All zero with KPageFlags false (not readable).
	KPageFlags          bool    `json:"kpageflags"`
	FreeInRunsBytes     uint64  `json:"free_in_runs_bytes"`
	ContiguousFreeBytes uint64  `json:"contiguous_free_bytes"`
	ContiguousShare     float64 `json:"contiguous_share"`
	LongestRunBytes     uint64  `json:"longest_run_bytes"`
	// NotFreeFrames counts the frames that are not free by what they hold
	// (memfrag.Kind): what breaks the runs.
	NotFreeFrames map[string]uint64 `json:"not_free_frames,omitempty"`
	// PerCPUFreeFrames are free pages on per-CPU lists (zoneinfo
	// pagesets): among the "flagless" frames, free but not in the runs.
	PerCPUFreeFrames uint64 `json:"per_cpu_free_frames"`
	// Blocks are the node's memory blocks by zone ("Movable", "Normal",
	// "DMA32", "none", "offline"): counts.
	Blocks map[string]int `json:"blocks"`
	// NotMovable lists the online blocks outside ZONE_MOVABLE.
	NotMovable []int `json:"not_movable_blocks"`
}

// IRQReport is an interrupt allowed on app cores.
type IRQReport struct {
	Number   int      `json:"irq"`
	Affinity string   `json:"affinity"`
	Handlers []string `json:"handlers,omitempty"`
}

// ProcessReport is a user-space process allowed on app cores.
type ProcessReport struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	CPUs string `json:"cpus"`
}

// Report is the node's preparation state.
type Report struct {
	OSCores     string       `json:"os_cores"`
	JobNodes    string       `json:"job_nodes"`
	SystemNodes string       `json:"system_nodes"`
	Nodes       []NodeReport `json:"nodes"`
	// Job sums the job nodes: share of their memory in ≥ 256 MiB free
	// runs, and their free 2 MiB blocks.
	JobTotalBytes      uint64  `json:"job_total_bytes"`
	JobContiguousBytes uint64  `json:"job_contiguous_bytes"`
	JobContiguousShare float64 `json:"job_contiguous_share"`
	JobFree2MBBlocks   uint64  `json:"job_free_2mb_blocks"`
	// JobCpusetMems are the memory nodes a job cpuset must hold now: the
	// job nodes, plus the first system node when no job node has Normal
	// memory (node/has_normal_memory): a cpuset with only Movable memory
	// makes pipe and ramfs writes fail with ENOMEM.
	JobCpusetMems string `json:"job_cpuset_mems"`
	// IRQsOnAppCores and DaemonsOnAppCores are what may still run on app
	// cores; KernelThreadsOnAppCores counts unbound kernel threads allowed
	// there (per-CPU kernel threads cannot move and are not counted).
	IRQsOnAppCores          []IRQReport     `json:"irqs_on_app_cores"`
	DaemonsOnAppCores       []ProcessReport `json:"daemons_on_app_cores"`
	KernelThreadsOnAppCores int             `json:"kernel_threads_on_app_cores"`
}

// MakeReport reads what it needs beyond m below m.Root. The node split is
// s's; with none, every memory node counts as a job node.
func MakeReport(m *Machine, s Settings) (*Report, error) {
	if s.PageBytes == 0 {
		s.PageBytes = 4096
	}
	job, sys := s.JobNodes, s.SystemNodes
	if job.IsEmpty() {
		job = m.Topo.MemoryNodes()
	}
	r := &Report{OSCores: s.OSCores.String(), JobNodes: job.String(), SystemNodes: sys.String()}
	buddy, err := memfrag.ReadBuddyInfo(m.Root)
	if err != nil {
		return nil, err
	}
	flags := memfrag.NewPageFlags(m.Root)
	for _, n := range m.Topo.Nodes {
		if n.MemTotalBytes == 0 {
			continue
		}
		nr := NodeReport{Node: n.ID, Job: job.Contains(n.ID), TotalBytes: n.MemTotalBytes, FreeBytes: n.MemFreeBytes, Blocks: map[string]int{}}
		for _, z := range m.Zones {
			if z.Node == n.ID {
				nr.PerCPUFreeFrames += z.PerCPU
			}
		}
		for _, z := range buddy {
			if z.Node == n.ID {
				nr.Free2MBBlocks += z.FreeBlocksOfBytes(2<<20, s.PageBytes)
				nr.Free4MBBlocks += z.FreeBlocksOfBytes(4<<20, s.PageBytes)
			}
		}
		st, err := flags.Scan(memfrag.NodeRanges(m.Zones, n.ID), ContiguousBytes/s.PageBytes)
		switch {
		case err == nil:
			nr.KPageFlags = true
			nr.FreeInRunsBytes = st.FreeFrames * s.PageBytes
			nr.ContiguousFreeBytes = st.LongFrames * s.PageBytes
			nr.LongestRunBytes = st.Longest * s.PageBytes
			nr.NotFreeFrames = st.NotFree
			nr.ContiguousShare = float64(nr.ContiguousFreeBytes) / float64(nr.TotalBytes)
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
		default:
			return nil, err
		}
		for _, b := range m.Topo.MemoryBlocksOfNode(n.ID) {
			zone := "offline"
			if b.State == "online" && len(b.ValidZones) > 0 {
				zone = b.ValidZones[0]
			}
			nr.Blocks[zone]++
			if b.State == "online" && zone != "Movable" {
				nr.NotMovable = append(nr.NotMovable, b.Index)
			}
		}
		if nr.Job {
			r.JobTotalBytes += nr.TotalBytes
			r.JobContiguousBytes += nr.ContiguousFreeBytes
			r.JobFree2MBBlocks += nr.Free2MBBlocks
		}
		r.Nodes = append(r.Nodes, nr)
	}
	if r.JobTotalBytes > 0 {
		r.JobContiguousShare = float64(r.JobContiguousBytes) / float64(r.JobTotalBytes)
	}
	r.JobCpusetMems = JobCpusetMems(job, sys, m.NormalNodes).String()
	all := cpuset.New()
	for _, c := range m.Topo.CPUs {
		all = all.Union(cpuset.New(c.ID))
	}
	app := all.Difference(s.OSCores)
	r.IRQsOnAppCores, r.DaemonsOnAppCores = []IRQReport{}, []ProcessReport{}
	for _, irq := range m.IRQs {
		if !irq.Affinity.Intersection(app).IsEmpty() {
			r.IRQsOnAppCores = append(r.IRQsOnAppCores, IRQReport{Number: irq.Number, Affinity: irq.Affinity.String(), Handlers: irq.Handlers})
		}
	}
	for _, p := range m.Processes {
		if p.CPUs.Intersection(app).IsEmpty() {
			continue
		}
		if p.Kernel {
			if p.CPUs.Size() > 1 {
				r.KernelThreadsOnAppCores++
			}
			continue
		}
		r.DaemonsOnAppCores = append(r.DaemonsOnAppCores, ProcessReport{PID: p.PID, Comm: p.Comm, CPUs: p.CPUs.String()})
	}
	return r, nil
}

// Format writes the report for people.
func (r *Report) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "OS cores %s; job nodes %s; system nodes %s\n", r.OSCores, r.JobNodes, r.SystemNodes)
	fmt.Fprintf(&b, "%-5s %-4s %9s %9s %7s %7s %9s %7s %9s  %s\n", "node", "job", "total MiB", "free MiB", "free 2M", "free 4M", ">=256M MiB", "share", "longest", "blocks")
	for _, n := range r.Nodes {
		job := "no"
		if n.Job {
			job = "yes"
		}
		share := "n/a"
		if n.KPageFlags {
			share = fmt.Sprintf("%.1f%%", 100*n.ContiguousShare)
		}
		var zones []string
		for z, c := range n.Blocks {
			zones = append(zones, fmt.Sprintf("%s:%d", z, c))
		}
		sort.Strings(zones)
		fmt.Fprintf(&b, "%-5d %-4s %9d %9d %7d %7d %9d %7s %9d  %s\n", n.Node, job, n.TotalBytes>>20, n.FreeBytes>>20, n.Free2MBBlocks, n.Free4MBBlocks, n.ContiguousFreeBytes>>20, share, n.LongestRunBytes>>20, strings.Join(zones, " "))
	}
	fmt.Fprintf(&b, "job nodes: %.1f%% of %d MiB in free runs of >= 256 MiB; %d free 2 MiB blocks\n", 100*r.JobContiguousShare, r.JobTotalBytes>>20, r.JobFree2MBBlocks)
	fmt.Fprintf(&b, "IRQs allowed on app cores: %d", len(r.IRQsOnAppCores))
	for _, i := range r.IRQsOnAppCores {
		fmt.Fprintf(&b, " %d(%s)", i.Number, i.Affinity)
	}
	fmt.Fprintf(&b, "\nprocesses allowed on app cores: %d", len(r.DaemonsOnAppCores))
	for _, p := range r.DaemonsOnAppCores {
		fmt.Fprintf(&b, " %s[%d]", p.Comm, p.PID)
	}
	fmt.Fprintf(&b, "\nunbound kernel threads allowed on app cores: %d\n", r.KernelThreadsOnAppCores)
	return b.String()
}

// JobCpusetMems returns the job nodes, plus the lowest system node when
// none of the job nodes has Normal memory.
func JobCpusetMems(job, sys, normal cpuset.CPUSet) cpuset.CPUSet {
	if !job.Intersection(normal).IsEmpty() || sys.IsEmpty() {
		return job
	}
	return job.Union(cpuset.New(sys.List()[0]))
}
