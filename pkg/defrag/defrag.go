package defrag

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
)

// Kernel is what defragmentation changes (memblock.Kernel).
type Kernel interface {
	DropCleanPageCache() error
	Compact(node int) error
	Evacuate(index int) error
	SetZone(index int, zone string) (bool, error)
}

// Journal records a block evacuation before it starts and after it ends.
type Journal interface {
	Intent(step, object string) error
	Done(step, object string) error
}

// Block is a memory block of a job node with its page-frame range.
type Block struct {
	Index int
	Node  int
	// Movable is set when the block is online in ZONE_MOVABLE.
	Movable bool
	// Range is the block's page frames.
	Range memfrag.Range
}

// Options say what to do.
type Options struct {
	// Nodes are the job NUMA nodes.
	Nodes cpuset.CPUSet
	// DropCaches allows dropping the clean page cache.
	DropCaches bool
	// Evacuate allows offlining and onlining Movable blocks.
	Evacuate bool
	// OnlineKernel also evacuates the partly used blocks that are not
	// Movable, and onlines every job block it evacuates as kernel memory
	// (ZONE_NORMAL), Movable ones included: IHK reserves with GFP_KERNEL,
	// which never takes pages from ZONE_MOVABLE on current kernels. The
	// Movable blocks it turns into kernel memory are listed in
	// Result.KernelBlocks; the epilog turns them back (nodeprep).
	OnlineKernel bool
	// Budget bounds the whole run; steps not started in time are skipped,
	// except turning Movable blocks into kernel memory (OnlineKernel).
	Budget time.Duration
	// Blocks are the job nodes' blocks (for Evacuate).
	Blocks []Block
	// Flags reads page flags to tell how used a block is; nil evacuates
	// every Movable block (every block with OnlineKernel) without looking.
	Flags *memfrag.PageFlags
	// Now is the clock the budget is checked against (time.Now when nil).
	Now func() time.Time
}

// Step is one step's outcome.
type Step struct {
	Name     string        `json:"name"`
	Object   string        `json:"object,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Skipped  string        `json:"skipped,omitempty"`
	Err      string        `json:"error,omitempty"`
}

// Result is a run's outcome.
type Result struct {
	Duration time.Duration `json:"duration_ns"`
	// ShareBefore and ShareAfter are the job nodes' share in free runs of
	// at least 256 MiB (negative when not measurable).
	ShareBefore float64 `json:"contiguous_share_before"`
	ShareAfter  float64 `json:"contiguous_share_after"`
	Steps       []Step  `json:"steps"`
	// Evacuated and Refused count block evacuations.
	Evacuated int  `json:"evacuated_blocks"`
	Refused   int  `json:"refused_blocks"`
	OverTime  bool `json:"budget_exhausted"`
	// KernelBlocks are the Movable blocks onlined as kernel memory
	// (Options.OnlineKernel), in the order converted.
	KernelBlocks []int `json:"kernel_blocks,omitempty"`
}

// pinnedKinds are the page kinds (memfrag.Kind) offlining cannot migrate:
// memblock-reserved frames (the memmap, made top-down at boot), slab and
// page tables. A block holding any would only refuse to go offline.
var pinnedKinds = []string{"reserved", "slab", "pgtable"}

// pinned returns the first kind of pinnedKinds the scan found and its count.
func pinned(st memfrag.RunStats) (string, uint64) {
	for _, k := range pinnedKinds {
		if n := st.NotFree[k]; n > 0 {
			return k, n
		}
	}
	return "", 0
}

// Measure returns the job nodes' contiguous share.
type Measure func() (float64, error)

// Run defragments. Errors of single steps are reported in the result, not
// returned; only a journal failure or a cancelled context stops the run.
func Run(ctx context.Context, k Kernel, j Journal, measure Measure, o Options, log *slog.Logger) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	deadline := start.Add(o.Budget)
	res := &Result{ShareBefore: -1, ShareAfter: -1}
	if measure != nil {
		if s, err := measure(); err == nil {
			res.ShareBefore = s
		} else {
			log.Warn("defrag: cannot measure contiguity", "step", "defrag", "err", err)
		}
	}
	step := func(name, object string, bounded bool, fn func() error) {
		st := Step{Name: name, Object: object}
		if bounded && !now().Before(deadline) {
			st.Skipped = "time budget exhausted"
			res.OverTime = true
		} else {
			t := now()
			err := fn()
			st.Duration = now().Sub(t)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				st.Skipped = "kernel interface absent: " + err.Error()
			case err != nil:
				st.Err = err.Error()
			}
		}
		res.Steps = append(res.Steps, st)
	}
	if o.DropCaches {
		step("drop-caches", "", true, k.DropCleanPageCache)
	} else {
		res.Steps = append(res.Steps, Step{Name: "drop-caches", Skipped: "not allowed by the profile"})
	}
	for _, n := range o.Nodes.List() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		step("compact", fmt.Sprintf("node%d", n), true, func() error { return k.Compact(n) })
	}
	if o.Evacuate {
		for _, b := range o.Blocks {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if !b.Movable && !o.OnlineKernel {
				continue
			}
			if err := evacuate(k, j, o, b, res, step); err != nil {
				return res, err
			}
		}
	} else {
		res.Steps = append(res.Steps, Step{Name: "evacuate", Skipped: "not allowed by the profile"})
	}
	if measure != nil {
		if s, err := measure(); err == nil {
			res.ShareAfter = s
		}
	}
	res.Duration = now().Sub(start)
	log.Info("defrag done", "step", "defrag", "duration", res.Duration, "share_before", res.ShareBefore, "share_after", res.ShareAfter,
		"evacuated", res.Evacuated, "refused", res.Refused, "over_time", res.OverTime)
	return res, nil
}

// evacuate offlines one block and onlines it again: in its own zone, or as
// kernel memory when the options say so (a Movable block so changed is
// added to res.KernelBlocks). Blocks that are all free (and need no zone
// change) or hold frames that never migrate are skipped without touching
// them. Only a journal failure is returned.
func evacuate(k Kernel, j Journal, o Options, b Block, res *Result, step func(name, object string, bounded bool, fn func() error)) error {
	obj := fmt.Sprintf("memory%d", b.Index)
	toKernel := o.OnlineKernel && b.Movable
	name := "evacuate"
	if toKernel {
		name = "online-kernel"
	}
	if o.Flags != nil {
		st, err := o.Flags.Scan([]memfrag.Range{b.Range}, 1)
		if err == nil && !toKernel && st.FreeFrames == b.Range.End-b.Range.Start {
			return nil // already all free: nothing to move
		}
		if kind, n := pinned(st); err == nil && n > 0 {
			res.Steps = append(res.Steps, Step{Name: name, Object: obj,
				Skipped: fmt.Sprintf("%d %s frames cannot be migrated", n, kind)})
			return nil
		}
	}
	back := memblock.ZoneNormal
	if b.Movable {
		back = memblock.ZoneMovable
	}
	var jerr error
	// Turning a Movable block into kernel memory is not bounded by the
	// budget: the reservation that follows needs it.
	step(name, obj, !toKernel, func() error {
		if j != nil {
			if jerr = j.Intent(name, obj); jerr != nil {
				return jerr
			}
		}
		var err error
		if toKernel {
			var changed bool
			if changed, err = k.SetZone(b.Index, memblock.ZoneNormal); err == nil && changed {
				res.KernelBlocks = append(res.KernelBlocks, b.Index)
			}
		} else {
			err = k.Evacuate(b.Index)
		}
		if err != nil {
			res.Refused++
			// A refused offline leaves the block online; make sure.
			if _, rerr := k.SetZone(b.Index, back); rerr != nil {
				err = errors.Join(err, rerr)
			}
		} else {
			res.Evacuated++
		}
		if j != nil {
			if jerr = j.Done(name, obj); jerr != nil {
				return jerr
			}
		}
		return err
	})
	if jerr != nil {
		return fmt.Errorf("defrag journal: %w", jerr)
	}
	return nil
}
