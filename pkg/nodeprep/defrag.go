package nodeprep

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/defrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// DefragBlocks lists the job nodes' memory blocks with their frame ranges
// for defrag.Options.
func DefragBlocks(m *Machine, job cpuset.CPUSet, pageBytes uint64) []defrag.Block {
	if pageBytes == 0 {
		pageBytes = 4096
	}
	frames := m.Topo.MemoryBlockBytes / pageBytes
	var out []defrag.Block
	for _, b := range m.Topo.MemoryBlocks {
		if !job.Contains(b.NUMANode) || frames == 0 {
			continue
		}
		start := uint64(b.Index) * frames
		out = append(out, defrag.Block{Index: b.Index, Node: b.NUMANode,
			Movable: b.State == "online" && len(b.ValidZones) > 0 && b.ValidZones[0] == memblock.ZoneMovable,
			Range:   memfrag.Range{Start: start, End: start + frames}})
	}
	return out
}

// MeasureJobShare returns a defrag.Measure that reads the machine below
// root afresh and returns the job nodes' share in free runs of at least
// 256 MiB.
func MeasureJobShare(root string, s Settings) defrag.Measure {
	return func() (float64, error) {
		m, err := ReadMachine(root)
		if err != nil {
			return 0, err
		}
		r, err := MakeReport(m, s)
		if err != nil {
			return 0, err
		}
		return r.JobContiguousShare, nil
	}
}

// Defragmenter runs the prolog's pre-boot defragmentation of the job nodes
// and repairs what an interrupted one left behind.
type Defragmenter struct {
	// Root is the machine's root directory ("/").
	Root string
	// Settings name the job nodes.
	Settings Settings
	// Log receives the run's summary.
	Log *slog.Logger
}

// Defrag runs defrag.Run over the job nodes (evacuating partly used
// Movable blocks) and returns its result as JSON.
func (d Defragmenter) Defrag(ctx context.Context, dropCaches bool, budget time.Duration) (json.RawMessage, error) {
	if d.Settings.JobNodes.IsEmpty() {
		return nil, errors.New("defragment: no job NUMA nodes")
	}
	k, err := memblock.New(d.Root)
	if err != nil {
		return nil, err
	}
	m, err := ReadMachine(d.Root)
	if err != nil {
		return nil, err
	}
	flags := memfrag.NewPageFlags(d.Root)
	o := defrag.Options{Nodes: d.Settings.JobNodes, DropCaches: dropCaches, Evacuate: true, Budget: budget,
		Blocks: DefragBlocks(m, d.Settings.JobNodes, d.Settings.PageBytes), Flags: &flags}
	res, err := defrag.Run(ctx, k, nil, MeasureJobShare(d.Root, d.Settings), o, d.Log)
	if res == nil {
		return nil, err
	}
	b, jerr := json.Marshal(res)
	return b, errors.Join(err, jerr)
}

// OnlineOfflineJobBlocks onlines, as Movable, every offline memory block of
// the job nodes.
func (d Defragmenter) OnlineOfflineJobBlocks() ([]int, error) {
	k, err := memblock.New(d.Root)
	if err != nil {
		return nil, err
	}
	topo, err := topology.Read(d.Root)
	if err != nil {
		return nil, err
	}
	var done []int
	var errs []error
	for _, b := range topo.MemoryBlocks {
		if !d.Settings.JobNodes.Contains(b.NUMANode) || b.State != "offline" {
			continue
		}
		if err := defrag.Recover(k, b.Index); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, b.Index)
	}
	return done, errors.Join(errs...)
}
