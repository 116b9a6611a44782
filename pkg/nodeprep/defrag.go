package nodeprep

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/defrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
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
		out = append(out, defrag.Block{Index: b.Index, Node: b.NUMANode, Movable: movableOnline(b),
			Range: memfrag.Range{Start: start, End: start + frames}})
	}
	return out
}

// movableOnline reports whether a block is online in ZONE_MOVABLE.
func movableOnline(b topology.MemoryBlock) bool {
	return b.State == "online" && len(b.ValidZones) > 0 && b.ValidZones[0] == memblock.ZoneMovable
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
	// Blocks changes block zones for RestoreJobBlocks; nil means the
	// kernel below Root (memblock).
	Blocks BlockZoner
}

// Defrag runs defrag.Run over the job nodes as the profile's policy says
// (evacuating partly used Movable blocks; with OnlineKernel also the Normal
// ones, and onlining every evacuated block as kernel memory) and returns
// its result as JSON.
func (d Defragmenter) Defrag(ctx context.Context, p config.DefragPolicy) (json.RawMessage, error) {
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
	o := defrag.Options{Nodes: d.Settings.JobNodes, DropCaches: p.DropCaches, Evacuate: true, OnlineKernel: p.OnlineKernel,
		Budget: p.Budget, Blocks: DefragBlocks(m, d.Settings.JobNodes, d.Settings.PageBytes), Flags: &flags}
	res, err := defrag.Run(ctx, k, nil, MeasureJobShare(d.Root, d.Settings), o, d.Log)
	if res == nil {
		return nil, err
	}
	b, jerr := json.Marshal(res)
	return b, errors.Join(err, jerr)
}

// JobBlocks returns the job nodes' blocks online in ZONE_MOVABLE (what a
// defragmentation with OnlineKernel may turn into kernel memory) and those
// offline (an admin's or a failed block's, which a restore must leave
// alone), both ascending: journaled before the defragmentation starts, so
// the epilog puts back exactly what it changed.
func (d Defragmenter) JobBlocks() (movable, offline []int, err error) {
	topo, err := topology.Read(d.Root)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range topo.MemoryBlocks {
		switch {
		case !d.Settings.JobNodes.Contains(b.NUMANode):
		case movableOnline(b):
			movable = append(movable, b.Index)
		case b.State == "offline":
			offline = append(offline, b.Index)
		}
	}
	sort.Ints(movable)
	sort.Ints(offline)
	return movable, offline, nil
}

// RestoreJobBlocks puts the job nodes' memory blocks back as a pre-boot
// defragmentation found them: every block listed in movable that is now
// kernel memory or offline is made Movable again (wherever it is: a change
// of JobNUMANodes meanwhile does not strand it), and every other offline
// job block goes online, except those listed in keepOffline (offline
// before the defragmentation) — Movable when kernel is false, as kernel
// memory otherwise (it was a Normal block evacuated in place). It returns
// the blocks it changed and those it could not make Movable (they stay
// online as kernel memory: unmovable kernel allocations landed there
// meanwhile, or another LWK holds memory in them); the error means a block
// may be left offline.
func (d Defragmenter) RestoreJobBlocks(movable, keepOffline []int, kernel bool) (changed, refused []int, err error) {
	fs, err := sysfs.New(d.Root)
	if err != nil {
		return nil, nil, err
	}
	k := d.Blocks
	if k == nil {
		if k, err = memblock.New(d.Root); err != nil {
			return nil, nil, err
		}
	}
	topo, err := topology.Read(d.Root)
	if err != nil {
		return nil, nil, err
	}
	want := make(map[int]bool, len(movable))
	for _, i := range movable {
		want[i] = true
	}
	keep := make(map[int]bool, len(keepOffline))
	for _, i := range keepOffline {
		keep[i] = true
	}
	var errs []error
	for _, b := range topo.MemoryBlocks {
		zone := memblock.ZoneMovable
		switch {
		case want[b.Index]:
			if movableOnline(b) {
				continue
			}
		case !d.Settings.JobNodes.Contains(b.NUMANode) || b.State != "offline" || keep[b.Index]:
			continue
		case kernel:
			zone = memblock.ZoneNormal
		}
		ch, serr := k.SetZone(b.Index, zone)
		if serr == nil {
			if ch {
				changed = append(changed, b.Index)
			}
			continue
		}
		// A block left online (offlining refused, or onlining Movable
		// refused and the block put back) stays usable by Linux: not an
		// error.
		if now, rerr := fs.MemoryBlock(b.Index); rerr == nil && now.State == "online" {
			refused = append(refused, b.Index)
			d.log().Warn("job-node block stays kernel memory: it could not be made Movable", "step", "restore_movable",
				"block", b.Index, "err", serr)
			continue
		}
		errs = append(errs, serr)
	}
	return changed, refused, errors.Join(errs...)
}

func (d Defragmenter) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}
