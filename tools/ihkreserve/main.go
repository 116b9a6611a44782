// Command ihkreserve measures what an IHK-style memory reservation really
// gets on a node, for the VM harness's contiguity comparison
// (scripts/vm-node compare). It runs in the guest with the IHK test driver
// (tests/ihk-testdrv) loaded and debugfs mounted:
//
//	ihkreserve --report /tmp/after.json [--share 90] [--dev /dev] [--root /]
//
// For every job node of the report (lwkctl node report --json) it asks
// IHK_DEVICE_RESERVE_MEM, through the real ioctl backend (pkg/ihk/ioctl),
// for --share percent of the node's MemFree in 4 MiB granules: an LWK job
// taking the job nodes' memory. It then reads each reserved chunk's
// physical start from the driver's debugfs list, merges physically adjacent
// chunks, and prints as JSON the share of the requested bytes obtained in
// merged runs of at least 256 MiB (the paper's Figures 5-7), per node and
// in total. A node whose reservation fails (ENOMEM: the driver could not
// find the memory even in single pages within its timeout) gets nothing
// and is listed as failed. Everything reserved is released before exit.
//
// A test tool: it reserves memory on whatever node it runs on.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ioctl"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodeprep"
	"github.com/slurm-lwk/slurm-lwk/pkg/physrun"
)

// NodeResult is one job node's reservation. Units: bytes.
type NodeResult struct {
	Node            int     `json:"node"`
	RequestedBytes  uint64  `json:"requested_bytes"`
	ObtainedBytes   uint64  `json:"obtained_bytes"`
	ContiguousBytes uint64  `json:"contiguous_bytes"`
	Share           float64 `json:"share"`
	Chunks          int     `json:"chunks"`
	Runs            int     `json:"runs"`
	LongestRunBytes uint64  `json:"longest_run_bytes"`
	Error           string  `json:"error,omitempty"`
}

// Result sums the job nodes: Share is ContiguousBytes over RequestedBytes.
type Result struct {
	RequestedBytes  uint64       `json:"requested_bytes"`
	ObtainedBytes   uint64       `json:"obtained_bytes"`
	ContiguousBytes uint64       `json:"contiguous_bytes"`
	Share           float64      `json:"share"`
	FailedNodes     []int        `json:"failed_nodes"`
	Nodes           []NodeResult `json:"nodes"`
}

func main() {
	report := flag.String("report", "", "lwkctl node report --json output naming the job nodes and their MemFree")
	share := flag.Int("share", 90, "percent of each job node's MemFree to reserve (1-100)")
	dev := flag.String("dev", "/dev", "directory of the IHK device nodes")
	root := flag.String("root", "/", "root below which debugfs is mounted at sys/kernel/debug")
	flag.Parse()
	if err := run(*report, *share, *dev, *root); err != nil {
		fmt.Fprintf(os.Stderr, "ihkreserve: %v\n", err)
		os.Exit(1)
	}
}

// requests are the per-node reservation sizes: pct% of each job node's
// MemFree, rounded down to IHK's granule; nodes that round to nothing are
// left out.
func requests(r *nodeprep.Report, pct int) []ihk.MemChunk {
	var out []ihk.MemChunk
	for _, n := range r.Nodes {
		if !n.Job {
			continue
		}
		b := n.FreeBytes / 100 * uint64(pct)
		b -= b % ihk.MemoryGranule
		if b > 0 {
			out = append(out, ihk.MemChunk{NUMANode: n.Node, Bytes: b})
		}
	}
	return out
}

func run(reportPath string, pct int, dev, root string) error {
	if reportPath == "" {
		return errors.New("--report is required")
	}
	if pct < 1 || pct > 100 {
		return fmt.Errorf("--share %d: want 1-100", pct)
	}
	b, err := os.ReadFile(reportPath)
	if err != nil {
		return fmt.Errorf("read node report: %w", err)
	}
	var rep nodeprep.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("node report %s: %w", reportPath, err)
	}
	c, err := ioctl.New(dev)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if held, err := c.ReservedMemory(ctx); err != nil {
		return err
	} else if len(held) > 0 {
		return fmt.Errorf("ihk device %s already holds memory %v: not measuring on top of it", c.DevicePath(), held)
	}
	res, measureErr := measure(ctx, c, requests(&rep, pct), root)
	// Release whatever the driver holds, whatever happened above.
	if held, err := c.ReservedMemory(ctx); err != nil {
		return errors.Join(measureErr, err)
	} else if len(held) > 0 {
		if err := c.ReleaseMemory(ctx, held); err != nil {
			return errors.Join(measureErr, err)
		}
	}
	if measureErr != nil {
		return measureErr
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// measure reserves node by node (a failure on one node must not hide what
// the others give), then reads and merges the chunks.
func measure(ctx context.Context, c *ioctl.Client, reqs []ihk.MemChunk, root string) (*Result, error) {
	res := &Result{FailedNodes: []int{}}
	failed := map[int]string{}
	for _, q := range reqs {
		if err := c.ReserveMemory(ctx, []ihk.MemChunk{q}); err != nil {
			var ie *ihk.Error
			if !errors.As(err, &ie) {
				return nil, err
			}
			failed[q.NUMANode] = err.Error()
			res.FailedNodes = append(res.FailedNodes, q.NUMANode)
		}
	}
	all, err := physrun.Read(root)
	if err != nil {
		return nil, err
	}
	free := physrun.Owned(all, physrun.FreePool)
	// The debugfs list must agree with IHK's own query.
	held, err := c.ReservedMemory(ctx)
	if err != nil {
		return nil, err
	}
	if err := agree(held, free); err != nil {
		return nil, err
	}
	for _, q := range reqs {
		var mine []physrun.Chunk
		for _, ch := range free {
			if ch.Node == q.NUMANode {
				mine = append(mine, ch)
			}
		}
		runs, err := physrun.Merge(mine)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", q.NUMANode, err)
		}
		share, err := physrun.Share(mine, q.Bytes, nodeprep.ContiguousBytes)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", q.NUMANode, err)
		}
		nr := NodeResult{Node: q.NUMANode, RequestedBytes: q.Bytes, Chunks: len(mine), Runs: len(runs),
			ContiguousBytes: physrun.BytesInRuns(runs, nodeprep.ContiguousBytes), LongestRunBytes: physrun.Longest(runs),
			Share: share, Error: failed[q.NUMANode]}
		for _, ch := range mine {
			nr.ObtainedBytes += ch.Bytes
		}
		res.RequestedBytes += nr.RequestedBytes
		res.ObtainedBytes += nr.ObtainedBytes
		res.ContiguousBytes += min(nr.ContiguousBytes, nr.RequestedBytes)
		res.Nodes = append(res.Nodes, nr)
	}
	if res.RequestedBytes > 0 {
		res.Share = float64(res.ContiguousBytes) / float64(res.RequestedBytes)
	}
	return res, nil
}

// agree checks the debugfs chunks against QUERY_MEM's per-node totals.
func agree(held []ihk.MemChunk, free []physrun.Chunk) error {
	want, got := map[int]uint64{}, map[int]uint64{}
	for _, h := range held {
		want[h.NUMANode] += h.Bytes
	}
	for _, f := range free {
		got[f.Node] += f.Bytes
	}
	for n, b := range want {
		if got[n] != b {
			return fmt.Errorf("node %d: QUERY_MEM reports %d bytes reserved, the driver's chunk list %d", n, b, got[n])
		}
	}
	for n, b := range got {
		if want[n] != b {
			return fmt.Errorf("node %d: the driver's chunk list holds %d bytes, QUERY_MEM %d", n, b, want[n])
		}
	}
	return nil
}
