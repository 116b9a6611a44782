package main

import (
	"strings"
	"testing"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodeprep"
	"github.com/slurm-lwk/slurm-lwk/pkg/physrun"
)

const mib = 1 << 20

func TestRequests(t *testing.T) {
	// The VM harness's layout: node 0 for the system, 1-3 for jobs; node 3
	// nearly full after the stress.
	rep := &nodeprep.Report{Nodes: []nodeprep.NodeReport{
		{Node: 0, Job: false, FreeBytes: 1500 * mib},
		{Node: 1, Job: true, FreeBytes: 1000 * mib},
		{Node: 2, Job: true, FreeBytes: 1003 * mib},
		{Node: 3, Job: true, FreeBytes: 3 * mib},
	}}
	tests := []struct {
		pct  int
		want []ihk.MemChunk
	}{
		// 90% of 1000 MiB is 900 MiB, a whole number of 4 MiB granules;
		// 90% of 1003 MiB (902.7) rounds down to 900; node 3 gives nothing.
		{90, []ihk.MemChunk{{NUMANode: 1, Bytes: 900 * mib}, {NUMANode: 2, Bytes: 900 * mib}}},
		{100, []ihk.MemChunk{{NUMANode: 1, Bytes: 1000 * mib}, {NUMANode: 2, Bytes: 1000 * mib}}},
		{1, []ihk.MemChunk{{NUMANode: 1, Bytes: 8 * mib}, {NUMANode: 2, Bytes: 8 * mib}}},
	}
	for _, tt := range tests {
		got := requests(rep, tt.pct)
		if len(got) != len(tt.want) {
			t.Fatalf("requests(%d%%) = %v, want %v", tt.pct, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("requests(%d%%)[%d] = %v, want %v", tt.pct, i, got[i], tt.want[i])
			}
			if got[i].Bytes%ihk.MemoryGranule != 0 {
				t.Errorf("requests(%d%%)[%d] = %v: not whole granules", tt.pct, i, got[i])
			}
		}
	}
}

func TestAgree(t *testing.T) {
	free := []physrun.Chunk{
		{Node: 1, Owner: -1, Start: 0x140000000, Bytes: 256 * mib},
		{Node: 1, Owner: -1, Start: 0x150400000, Bytes: 4 * mib},
		{Node: 2, Owner: -1, Start: 0x180000000, Bytes: 8 * mib},
	}
	tests := []struct {
		name string
		held []ihk.MemChunk
		err  string
	}{
		{"same totals", []ihk.MemChunk{{NUMANode: 1, Bytes: 256 * mib}, {NUMANode: 1, Bytes: 4 * mib}, {NUMANode: 2, Bytes: 8 * mib}}, ""},
		{"query holds more", []ihk.MemChunk{{NUMANode: 1, Bytes: 264 * mib}, {NUMANode: 2, Bytes: 8 * mib}}, "node 1: QUERY_MEM"},
		{"a node missing from the query", []ihk.MemChunk{{NUMANode: 1, Bytes: 260 * mib}}, "node 2: the driver's chunk list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := agree(tt.held, free)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("agree error %v, want one with %q", err, tt.err)
			}
		})
	}
}
