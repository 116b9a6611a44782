package slurm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// ErrNotAllocated is returned when the job has no allocation on the node
// asked about (the job is pending, or runs on other nodes).
var ErrNotAllocated = errors.New("job has no allocation on this node")

// ErrAmbiguous is returned when the output cannot be read safely: Slurm
// prints user-controlled fields (JobName, Comment, WorkDir, ...) verbatim,
// newlines included, so a job can fake record or detail lines. The parser
// reads only the detail block after the single JOB_GRES= line of the single
// record of the job, and refuses output where either is duplicated.
var ErrAmbiguous = errors.New("ambiguous scontrol output")

// JobAllocation is what Slurm allocated to a job on one node, from the
// detail lines of `scontrol show job -d`.
type JobAllocation struct {
	// JobID is the job the allocation belongs to.
	JobID uint32
	// Node is the node name.
	Node string
	// CPUIDs are the allocated CPUs in Slurm's abstract numbering (CPU_IDs=):
	// Slurm numbers CPUs socket by socket, core by core, thread by thread,
	// which need not match the kernel's CPU numbers. Mapping them is the
	// caller's job.
	CPUIDs cpuset.CPUSet
	// MemoryMB is the job's memory on the node (Mem=). Units: MiB, which
	// Slurm calls MB. 0 when Slurm does not track memory.
	MemoryMB uint64
	// GRES is the detail line's GRES= text, uninterpreted (e.g.
	// "gpu:2(IDX:0-1)"); empty when the job has none.
	GRES string
}

// jobRecord is one job's block of `scontrol show job -d` output.
type jobRecord struct {
	jobID uint32
	state string
	lines []string // trimmed of leading and trailing blanks
}

// ParseShowJob returns the allocation on node from the output of
// `scontrol show job -d <id>` for a job that is a single record (not a
// heterogeneous job, whose components print one record each; use
// ParseShowJobFor with the component's job ID for those).
func ParseShowJob(out []byte, node string) (JobAllocation, error) {
	recs, err := splitRecords(out)
	if err != nil {
		return JobAllocation{}, err
	}
	if len(recs) != 1 {
		return JobAllocation{}, fmt.Errorf("scontrol show job: output holds %d job records, want 1: %w", len(recs), ErrAmbiguous)
	}
	return allocationOn(recs[0], node)
}

// ParseShowJobFor is ParseShowJob for the record of job jobID; other records
// (the other components of a heterogeneous job) are ignored.
func ParseShowJobFor(out []byte, jobID uint32, node string) (JobAllocation, error) {
	recs, err := splitRecords(out)
	if err != nil {
		return JobAllocation{}, err
	}
	var found *jobRecord
	for i := range recs {
		if recs[i].jobID != jobID {
			continue
		}
		if found != nil {
			return JobAllocation{}, fmt.Errorf("scontrol show job: job %d appears twice in the output: %w", jobID, ErrAmbiguous)
		}
		found = &recs[i]
	}
	if found == nil {
		return JobAllocation{}, fmt.Errorf("scontrol show job: no record for job %d in the output", jobID)
	}
	return allocationOn(*found, node)
}

// splitRecords cuts the output into job records; each starts with a line
// "JobId=<n> ...".
func splitRecords(out []byte) ([]jobRecord, error) {
	var recs []jobRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	// A small first buffer, grown by the scanner up to the 1 MiB limit.
	sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "JobId=") {
			first, _, _ := strings.Cut(line, " ")
			id, err := parseDecimal32(strings.TrimPrefix(first, "JobId="))
			if err != nil || id == 0 {
				return nil, fmt.Errorf("scontrol show job: bad %q", first)
			}
			recs = append(recs, jobRecord{jobID: id})
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("scontrol show job: unexpected text before the first JobId=: %q", truncate(line, 80))
		}
		r := &recs[len(recs)-1]
		r.lines = append(r.lines, line)
		if strings.HasPrefix(line, "JobState=") && r.state == "" {
			st, _, _ := strings.Cut(strings.TrimPrefix(line, "JobState="), " ")
			r.state = st
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scontrol show job: %w", err)
	}
	if len(recs) == 0 {
		return nil, errors.New("scontrol show job: no job record in the output")
	}
	return recs, nil
}

// allocationOn finds node in the record's detail lines.
//
// Detail lines ("Nodes=... CPU_IDs=... Mem=... GRES=...", one per group of
// nodes with identical allocations) are printed by -d right after the
// JOB_GRES= line (22.05; Socks/Node= in older releases). Only that run of
// lines is read: free-text fields the user controls (JobName, Comment) may
// contain newlines and so fake a "Nodes=" line elsewhere. If the anchor
// line itself appears more than once, the output is ambiguous and refused.
func allocationOn(rec jobRecord, node string) (JobAllocation, error) {
	if err := CheckNodeName(node); err != nil {
		return JobAllocation{}, err
	}
	anchor, err := detailAnchor(rec)
	if err != nil {
		return JobAllocation{}, err
	}
	var found *JobAllocation
	n := 0
	for _, line := range rec.lines[anchor+1:] {
		if !strings.HasPrefix(line, "Nodes=") {
			break
		}
		n++
		a, hosts, err := parseDetailLine(line)
		if err != nil {
			return JobAllocation{}, fmt.Errorf("job %d: %w", rec.jobID, err)
		}
		for _, h := range hosts {
			if h != node {
				continue
			}
			if found != nil {
				return JobAllocation{}, fmt.Errorf("job %d: node %s appears in two detail lines: %w", rec.jobID, node, ErrAmbiguous)
			}
			a.JobID, a.Node = rec.jobID, node
			found = &a
		}
	}
	if n == 0 {
		return JobAllocation{}, fmt.Errorf("job %d (JobState=%s): no Nodes= detail lines (is the job running, and was -d given?): %w",
			rec.jobID, rec.state, ErrNotAllocated)
	}
	if found == nil {
		return JobAllocation{}, fmt.Errorf("job %d: node %s: %w", rec.jobID, node, ErrNotAllocated)
	}
	return *found, nil
}

func detailAnchor(rec jobRecord) (int, error) {
	for _, key := range []string{"JOB_GRES=", "Socks/Node="} {
		idx := -1
		for i, line := range rec.lines {
			if !strings.HasPrefix(line, key) {
				continue
			}
			if idx >= 0 {
				return 0, fmt.Errorf("job %d: %s appears twice in the record (a job name or comment with newlines?): %w",
					rec.jobID, strings.TrimSuffix(key, "="), ErrAmbiguous)
			}
			idx = i
		}
		if idx >= 0 {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("job %d: neither JOB_GRES= nor Socks/Node= found; not `scontrol show job -d` output of a known version", rec.jobID)
}

// parseDetailLine parses "Nodes=<hostlist> CPU_IDs=<list> Mem=<MiB> GRES=<text>".
func parseDetailLine(line string) (JobAllocation, []string, error) {
	fields := strings.Fields(line)
	var a JobAllocation
	if len(fields) < 3 {
		return a, nil, fmt.Errorf("detail line %q: want Nodes= CPU_IDs= Mem=", line)
	}
	nodes, ok1 := strings.CutPrefix(fields[0], "Nodes=")
	cpus, ok2 := strings.CutPrefix(fields[1], "CPU_IDs=")
	mem, ok3 := strings.CutPrefix(fields[2], "Mem=")
	if !ok1 || !ok2 || !ok3 {
		return a, nil, fmt.Errorf("detail line %q: want Nodes= CPU_IDs= Mem= in that order", line)
	}
	for _, f := range fields[3:] {
		switch {
		case strings.HasPrefix(f, "GRES="):
			a.GRES = strings.TrimPrefix(f, "GRES=")
		case strings.HasPrefix(f, "GRES_IDX="):
			a.GRES = strings.TrimPrefix(f, "GRES_IDX=")
		default:
			return a, nil, fmt.Errorf("detail line %q: unexpected field %q", line, f)
		}
	}
	hosts, err := ExpandHostlist(nodes)
	if err != nil {
		return a, nil, fmt.Errorf("detail line %q: %w", line, err)
	}
	if cpus == "" {
		return a, nil, fmt.Errorf("detail line %q: empty CPU_IDs", line)
	}
	set, err := cpuset.Parse(cpus)
	if err != nil {
		return a, nil, fmt.Errorf("detail line %q: CPU_IDs: %w", line, err)
	}
	a.CPUIDs = set
	if mem == "" {
		return a, nil, fmt.Errorf("detail line %q: empty Mem", line)
	}
	for i := 0; i < len(mem); i++ {
		if mem[i] < '0' || mem[i] > '9' {
			return a, nil, fmt.Errorf("detail line %q: Mem=%q is not a number of MiB", line, mem)
		}
	}
	a.MemoryMB, err = strconv.ParseUint(mem, 10, 64)
	if err != nil {
		return a, nil, fmt.Errorf("detail line %q: Mem=%q: %w", line, mem, err)
	}
	return a, hosts, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
