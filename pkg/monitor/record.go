package monitor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
	"github.com/slurm-lwk/slurm-lwk/pkg/finalusage"
)

// pendingPoll is how often Record looks again (in memory) for a job that
// is on the node but not yet tracked.
const pendingPoll = 50 * time.Millisecond

// Record returns the node's record of a job: the final one once the job has
// ended here (waiting up to wait for it while the job is still tracked, or
// not tracked yet but on the node: its journal or the epilog's reading is
// there), a partial one (Final "running") when it has not ended within
// wait, and false when the job is unknown on this node.
func (m *Monitor) Record(ctx context.Context, jobID uint32, wait time.Duration) (*accounting.NodeRecord, bool) {
	wait = min(wait, maxWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var poll *time.Ticker
	for {
		m.mu.Lock()
		if rec, ok := m.finals[jobID]; ok {
			m.mu.Unlock()
			return rec, true
		}
		inst, live := m.jobs[jobID]
		sig := m.finalSig
		m.mu.Unlock()
		if !live {
			if poll == nil {
				if rec, ok := m.spooledRecord(jobID); ok || wait <= 0 || !m.onNode(jobID) {
					return rec, ok
				}
				// The monitor has not looked since the job's prolog
				// or epilog changed the directories (see dirWatch).
				poll = time.NewTicker(pendingPoll)
				defer poll.Stop()
			}
			select {
			case <-sig:
			case <-poll.C:
			case <-deadline.C:
				return m.spooledRecord(jobID)
			case <-ctx.Done():
				return m.spooledRecord(jobID)
			}
			continue
		}
		select {
		case <-sig:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		m.mu.Lock()
		_, stillLive := m.jobs[jobID]
		m.mu.Unlock()
		if !stillLive {
			continue
		}
		return m.record(inst, accounting.FinalRunning), true
	}
}

// onNode reports whether the job has a journal or an epilog's reading here.
func (m *Monitor) onNode(jobID uint32) bool {
	if _, err := m.d.Journals.Read(jobID); err == nil {
		return true
	}
	keys, _ := finalusage.List(m.cfg.LogDir)
	for _, k := range keys {
		if k.JobID == jobID {
			return true
		}
	}
	return false
}

// spooledRecord reads a final record the memory no longer holds.
func (m *Monitor) spooledRecord(jobID uint32) (*accounting.NodeRecord, bool) {
	data, err := m.d.Spool.ReadFile(m.d.Spool.RecordPath(jobID))
	if err != nil {
		return nil, false
	}
	var rec accounting.NodeRecord
	if json.Unmarshal(data, &rec) != nil || rec.JobID != jobID {
		return nil, false
	}
	return &rec, true
}
