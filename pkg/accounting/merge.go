package accounting

import (
	"fmt"
	"sort"
)

// JobRecordVersion is the version of JobRecord's JSON form; it is also the
// digit in Prefix.
const JobRecordVersion = 1

// Bounds that keep a JobRecord small whatever the node count.
const (
	// DetailNodes: jobs with at most this many reporting nodes keep every
	// node's record; larger ones keep Summaries.
	DetailNodes = 8
	// OutlierNodes is how many nodes each end of a Summary names.
	OutlierNodes = 2
	// MaxListedNodes bounds the lists of node names (unreachable nodes,
	// nodes with events); the counts stay exact.
	MaxListedNodes = 8
)

// JobRecord is a job's LWK usage merged over its nodes: what is stored in
// the accounting database and what `lwkctl stats` prints.
type JobRecord struct {
	Version int    `json:"v"`
	JobID   uint32 `json:"job"`
	// Nodes is how many nodes the job had; Reported how many answered with
	// a record.
	Nodes    int `json:"nodes"`
	Reported int `json:"reported"`
	// UserSeconds and SystemSeconds are LWK CPU times summed over nodes.
	UserSeconds   float64 `json:"user_s"`
	SystemSeconds float64 `json:"sys_s"`
	// MaxMemoryBytes is the largest per-node peak user RSS.
	MaxMemoryBytes uint64 `json:"max_mem"`
	// MaxRSSByPageSize is the largest per-node peak per page-size class.
	MaxRSSByPageSize map[string]uint64 `json:"max_rss_pgsz,omitempty"`
	// MaxThreads is the largest per-node peak LWK thread count.
	MaxThreads int32 `json:"max_threads"`
	// Samples is the total number of monitor samples.
	Samples int `json:"samples"`
	// Partial counts nodes whose record is not from the epilog (see
	// NodeRecord.Final).
	Partial int `json:"partial,omitempty"`
	// Events sums the nodes' events; EventNodes names (at most
	// MaxListedNodes of) the nodes with an abnormal event.
	Events     map[string]int `json:"events,omitempty"`
	EventNodes []string       `json:"event_nodes,omitempty"`
	// Perf sums the performance counters over nodes.
	Perf map[string]uint64 `json:"perf,omitempty"`
	// PerNode holds every node's record (at most DetailNodes nodes).
	PerNode []NodeRecord `json:"per_node,omitempty"`
	// Stats summarises per-node quantities when there are more nodes:
	// user_s, sys_s, max_mem, max_threads, boot_s, teardown_s.
	Stats map[string]*Summary `json:"stats,omitempty"`
	// Unreachable counts the nodes that gave no record; UnreachableNodes
	// names at most MaxListedNodes of them.
	Unreachable      int      `json:"unreachable,omitempty"`
	UnreachableNodes []string `json:"unreachable_nodes,omitempty"`
}

// abnormal are the event kinds that mean something went wrong.
var abnormal = []string{EventPanic, EventHang, EventOOM}

// Merge combines the records of a job's nodes. nodes is the job's node
// list (for Nodes); unreachable are the nodes that gave no record. Records
// of another job are refused.
func Merge(jobID uint32, nodes int, recs []NodeRecord, unreachable []string) (*JobRecord, error) {
	j := &JobRecord{Version: JobRecordVersion, JobID: jobID, Nodes: nodes, Reported: len(recs)}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Node < recs[b].Node })
	var user, sys, mem, thr, boot, td []NodeValue
	for i := range recs {
		r := &recs[i]
		if r.JobID != jobID {
			return nil, fmt.Errorf("merge job %d: node %s sent a record of job %d", jobID, r.Node, r.JobID)
		}
		j.UserSeconds += r.UserSeconds
		j.SystemSeconds += r.SystemSeconds
		j.MaxMemoryBytes = max(j.MaxMemoryBytes, r.MaxMemoryBytes)
		j.MaxThreads = max(j.MaxThreads, r.MaxThreads)
		j.Samples += r.Samples
		if r.Final != FinalEpilog {
			j.Partial++
		}
		for k, v := range r.MaxRSSByPageSize {
			if j.MaxRSSByPageSize == nil {
				j.MaxRSSByPageSize = map[string]uint64{}
			}
			j.MaxRSSByPageSize[k] = max(j.MaxRSSByPageSize[k], v)
		}
		bad := false
		for k, v := range r.Events {
			if j.Events == nil {
				j.Events = map[string]int{}
			}
			j.Events[k] += v
			for _, a := range abnormal {
				bad = bad || (k == a && v > 0)
			}
		}
		if bad && len(j.EventNodes) < MaxListedNodes {
			j.EventNodes = append(j.EventNodes, r.Node)
		}
		for k, v := range r.Perf {
			if j.Perf == nil {
				j.Perf = map[string]uint64{}
			}
			j.Perf[k] += v
		}
		user = append(user, NodeValue{r.Node, round(r.UserSeconds)})
		sys = append(sys, NodeValue{r.Node, round(r.SystemSeconds)})
		mem = append(mem, NodeValue{r.Node, float64(r.MaxMemoryBytes)})
		thr = append(thr, NodeValue{r.Node, float64(r.MaxThreads)})
		boot = append(boot, NodeValue{r.Node, round(r.BootSeconds)})
		td = append(td, NodeValue{r.Node, round(r.TeardownSeconds)})
	}
	j.UserSeconds, j.SystemSeconds = round(j.UserSeconds), round(j.SystemSeconds)
	if len(recs) <= DetailNodes {
		j.PerNode = recs
	} else {
		j.Stats = map[string]*Summary{
			"user_s": summarize(user, OutlierNodes), "sys_s": summarize(sys, OutlierNodes),
			"max_mem": summarize(mem, OutlierNodes), "max_threads": summarize(thr, OutlierNodes),
			"boot_s": summarize(boot, OutlierNodes), "teardown_s": summarize(td, OutlierNodes),
		}
	}
	j.Unreachable = len(unreachable)
	un := append([]string(nil), unreachable...)
	sort.Strings(un)
	j.UnreachableNodes = un[:min(len(un), MaxListedNodes)]
	return j, nil
}
