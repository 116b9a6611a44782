package teardown

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// claims are the IHK resources other jobs own: their OS instances, and what
// they reserved but have not yet assigned to an instance.
type claims struct {
	os     map[int]bool
	cpus   cpuset.CPUSet
	memory []ihk.MemChunk
	// ended are other jobs whose epilog already ran (package jobend) but
	// whose journal is still here: a prolog that booted after its own
	// epilog. They claim nothing; teardown collects what they hold and
	// then forgets them.
	ended []uint32
	// endedRecs are their journal records, in the order of ended.
	endedRecs []*journal.Record
}

// claimsExcept reads every other job's journal and run marker.
func claimsExcept(d Deps, jobID uint32) (claims, error) {
	c := claims{os: map[int]bool{}, cpus: cpuset.New()}
	ids, err := d.Journal.List()
	if err != nil {
		return c, fmt.Errorf("list journals: %w", err)
	}
	for _, id := range ids {
		if id == jobID {
			continue
		}
		rec, err := d.Journal.Read(id)
		if errors.Is(err, journal.ErrNotFound) {
			continue
		}
		if err != nil {
			// Its owner's epilog will recover it from live state; what it
			// holds cannot be told apart from orphans here.
			d.Log.Warn("another job's journal is unreadable; its resources count as orphans", "other_job", id, "err", err)
			continue
		}
		if d.Ended != nil {
			ended, err := d.Ended.Ended(jobend.Key{JobID: id, Attempt: rec.Attempt})
			if err != nil {
				return c, err
			}
			if ended {
				d.Log.Warn("another job's epilog already ran but its journal remains; collecting what it holds",
					"other_job", id, "attempt", rec.Attempt)
				c.ended = append(c.ended, id)
				c.endedRecs = append(c.endedRecs, rec)
				continue
			}
		}
		c.add(rec)
	}
	markers, err := jobmarker.List(d.RunDir)
	if err != nil {
		return c, err
	}
	for _, id := range markers {
		if id == jobID || slices.Contains(c.ended, id) {
			continue
		}
		if idx, err := jobmarker.Read(d.RunDir, id); err == nil {
			c.os[idx] = true
		}
	}
	return c, nil
}

func (c *claims) add(rec *journal.Record) {
	if idx, ok := steps.OSIndex(rec); ok {
		c.os[idx] = true
	}
	if done(rec, steps.ReserveCPUs) && !done(rec, steps.AssignCPUs) {
		var data steps.CPUs
		if st, _ := rec.Find(steps.ReserveCPUs); st.DecodeData(&data) == nil {
			c.cpus = c.cpus.Union(cpuset.New(data.CPUs...))
		}
	}
	if done(rec, steps.ReserveMemory) && !done(rec, steps.AssignMemory) {
		var data steps.Memory
		if st, _ := rec.Find(steps.ReserveMemory); st.DecodeData(&data) == nil {
			c.memory = append(c.memory, data.Reserved...)
		}
	}
}

func done(rec *journal.Record, name string) bool {
	st, ok := rec.Find(name)
	return ok && st.State == journal.StateDone
}
