package nodeprep

import (
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/defrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
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
