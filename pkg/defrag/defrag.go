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
	// Budget bounds the whole run; steps not started in time are skipped.
	Budget time.Duration
	// Blocks are the job nodes' blocks (for Evacuate).
	Blocks []Block
	// Flags reads page flags to tell how used a block is; nil evacuates
	// every Movable block.
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
	step := func(name, object string, fn func() error) {
		st := Step{Name: name, Object: object}
		if !now().Before(deadline) {
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
		step("drop-caches", "", k.DropCleanPageCache)
	} else {
		res.Steps = append(res.Steps, Step{Name: "drop-caches", Skipped: "not allowed by the profile"})
	}
	for _, n := range o.Nodes.List() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		step("compact", fmt.Sprintf("node%d", n), func() error { return k.Compact(n) })
	}
	if o.Evacuate {
		for _, b := range o.Blocks {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			obj := fmt.Sprintf("memory%d", b.Index)
			if !b.Movable {
				continue
			}
			if o.Flags != nil {
				st, err := o.Flags.Scan([]memfrag.Range{b.Range}, 1)
				if err == nil && st.FreeFrames == b.Range.End-b.Range.Start {
					continue // already all free: nothing to move
				}
				if err == nil && st.NotFree["reserved"] > 0 {
					// memblock-reserved frames (the memmap, made top-down
					// at boot) never migrate: offlining would only fail.
					res.Steps = append(res.Steps, Step{Name: "evacuate", Object: obj,
						Skipped: fmt.Sprintf("%d reserved frames cannot be migrated", st.NotFree["reserved"])})
					continue
				}
			}
			var jerr error
			step("evacuate", obj, func() error {
				if j != nil {
					if jerr = j.Intent("evacuate", obj); jerr != nil {
						return jerr
					}
				}
				err := k.Evacuate(b.Index)
				if err != nil {
					res.Refused++
					// A refused offline leaves the block online; make sure.
					if _, rerr := k.SetZone(b.Index, memblock.ZoneMovable); rerr != nil {
						err = errors.Join(err, rerr)
					}
				} else {
					res.Evacuated++
				}
				if j != nil {
					if jerr = j.Done("evacuate", obj); jerr != nil {
						return jerr
					}
				}
				return err
			})
			if jerr != nil {
				return res, fmt.Errorf("defrag journal: %w", jerr)
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

// Recover brings back online (Movable) a block a crash left offline in the
// middle of an evacuation.
func Recover(k Kernel, index int) error {
	_, err := k.SetZone(index, memblock.ZoneMovable)
	return err
}
