package slurm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"
)

func mustParse(t *testing.T, s string) cpuset.CPUSet {
	t.Helper()
	set, err := cpuset.Parse(s)
	require.NoError(t, err)
	return set
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "showjob", name))
	require.NoError(t, err)
	return b
}

func TestExpandHostlist(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "single", in: "vm", want: []string{"vm"}},
		{name: "list", in: "a,b", want: []string{"a", "b"}},
		{name: "range and single", in: "pre[1-3,5]", want: []string{"pre1", "pre2", "pre3", "pre5"}},
		{name: "zero padded", in: "pre[01-03]", want: []string{"pre01", "pre02", "pre03"}},
		{name: "padding across a decade", in: "n[08-10]", want: []string{"n08", "n09", "n10"}},
		{name: "unpadded across a decade", in: "n[9-11]", want: []string{"n9", "n10", "n11"}},
		{name: "mixed items", in: "gpu7,node[01-02],login", want: []string{"gpu7", "node01", "node02", "login"}},
		{name: "suffix", in: "r[1-2]-ib", want: []string{"r1-ib", "r2-ib"}},
		{name: "single in brackets", in: "n[7]", want: []string{"n7"}},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "empty item", in: "a,,b", wantErr: "empty item"},
		{name: "trailing comma", in: "a,", wantErr: "empty item"},
		{name: "unbalanced open", in: "n[1-2", wantErr: "unbalanced '['"},
		{name: "unbalanced close", in: "n1-2]", wantErr: "unbalanced ']'"},
		{name: "nested", in: "n[1[2]]", wantErr: "nested"},
		{name: "two dimensions", in: "r[1-2]n[1-2]", wantErr: "more than one bracket group"},
		{name: "backwards", in: "n[3-1]", wantErr: "runs backwards"},
		{name: "not a number", in: "n[a-b]", wantErr: "not a number"},
		{name: "empty brackets", in: "n[]", wantErr: "empty brackets"},
		{name: "no prefix", in: "[1-2]", wantErr: "no name before"},
		{name: "too many", in: "n[1-999999]", wantErr: "more than 65536 hosts"},
		{name: "bad character", in: "n;rm", wantErr: "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandHostlist(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseShowJobFixtures(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		jobID   uint32 // 0: use ParseShowJob
		node    string
		want    JobAllocation
		wantErr error
		errText string
	}{
		{
			name: "running job", file: "22.05.8-running.txt", node: "vm",
			want: JobAllocation{JobID: 8, Node: "vm", CPUIDs: mustParse(t, "4-5"), MemoryMB: 1024},
		},
		{
			name: "running job by ID", file: "22.05.8-running.txt", jobID: 8, node: "vm",
			want: JobAllocation{JobID: 8, Node: "vm", CPUIDs: mustParse(t, "4-5"), MemoryMB: 1024},
		},
		{
			name: "exclusive job", file: "22.05.8-exclusive.txt", jobID: 14, node: "vm",
			want: JobAllocation{JobID: 14, Node: "vm", CPUIDs: mustParse(t, "4-15"), MemoryMB: 6144},
		},
		{
			name: "array task 1 has its own job ID", file: "22.05.8-array.txt", jobID: 16, node: "vm",
			want: JobAllocation{JobID: 16, Node: "vm", CPUIDs: mustParse(t, "4-5"), MemoryMB: 100},
		},
		{
			name: "array task 2 keeps the array job ID", file: "22.05.8-array.txt", jobID: 15, node: "vm",
			want: JobAllocation{JobID: 15, Node: "vm", CPUIDs: mustParse(t, "6-7"), MemoryMB: 100},
		},
		{
			name: "array output without a job ID is ambiguous", file: "22.05.8-array.txt", node: "vm",
			wantErr: ErrAmbiguous, errText: "2 job records",
		},
		{
			name: "multi-node: first range", file: "constructed-multinode.txt", node: "node01",
			want: JobAllocation{JobID: 4242, Node: "node01", CPUIDs: mustParse(t, "0-15"), MemoryMB: 16000},
		},
		{
			name: "multi-node: second group", file: "constructed-multinode.txt", jobID: 4242, node: "node04",
			want: JobAllocation{JobID: 4242, Node: "node04", CPUIDs: mustParse(t, "2-7,10-15"), MemoryMB: 12000},
		},
		{
			name: "multi-node: GRES node", file: "constructed-multinode.txt", node: "gpu7",
			want: JobAllocation{JobID: 4242, Node: "gpu7", CPUIDs: mustParse(t, "0-3"), MemoryMB: 4000, GRES: "gpu:2(IDX:0-1)"},
		},
		{
			name: "multi-node: node not in the job", file: "constructed-multinode.txt", node: "node05",
			wantErr: ErrNotAllocated, errText: "node node05",
		},
		{
			name: "unpadded name does not match a padded node", file: "constructed-multinode.txt", node: "node1",
			wantErr: ErrNotAllocated,
		},
		{
			name: "pending job", file: "22.05.8-pending.txt", node: "vm",
			wantErr: ErrNotAllocated, errText: "JobState=PENDING",
		},
		{
			name: "pending heterogeneous job component", file: "22.05.8-het-pending.txt", jobID: 12, node: "vm",
			wantErr: ErrNotAllocated, errText: "job 12",
		},
		{
			name: "job not in output", file: "22.05.8-het-pending.txt", jobID: 13, node: "vm",
			errText: "no record for job 13",
		},
		{
			name: "forged lines in job name and comment are refused", file: "22.05.8-injected.txt", jobID: 10, node: "vm",
			wantErr: ErrAmbiguous, errText: "JOB_GRES appears twice",
		},
		{
			name: "bad node argument", file: "22.05.8-running.txt", node: "vm,other",
			errText: "node name",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := fixture(t, tc.file)
			var got JobAllocation
			var err error
			if tc.jobID == 0 {
				got, err = ParseShowJob(out, tc.node)
			} else {
				got, err = ParseShowJobFor(out, tc.jobID, tc.node)
			}
			if tc.wantErr != nil || tc.errText != "" {
				require.Error(t, err)
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
				}
				require.ErrorContains(t, err, tc.errText)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.JobID, got.JobID)
			require.Equal(t, tc.want.Node, got.Node)
			require.True(t, tc.want.CPUIDs.Equals(got.CPUIDs), "CPU IDs: want %s, got %s", tc.want.CPUIDs, got.CPUIDs)
			require.Equal(t, tc.want.MemoryMB, got.MemoryMB)
			require.Equal(t, tc.want.GRES, got.GRES)
		})
	}
}

// TestInjectionOnlyInJobName: a forged detail line without a forged anchor
// (the fixture's job name part alone) is not read; the real line is.
func TestInjectionOnlyInJobName(t *testing.T) {
	out := string(fixture(t, "22.05.8-injected.txt"))
	// Drop the forged JOB_GRES/Nodes lines that came from the comment,
	// keeping the forged Nodes= line that came from the job name.
	out = strings.Replace(out, "   Comment=x\n   JOB_GRES=(null)\n     Nodes=vm CPU_IDs=0-15 Mem=12000 GRES= \n", "   Comment=x \n", 1)
	require.Equal(t, 1, strings.Count(out, "JOB_GRES="), "fixture edit must have removed the forged anchor")
	require.Equal(t, 2, strings.Count(out, "CPU_IDs="), "the job-name forgery stays")
	got, err := ParseShowJobFor([]byte(out), 10, "vm")
	require.NoError(t, err)
	require.Equal(t, "6-9", got.CPUIDs.String())
	require.EqualValues(t, 2048, got.MemoryMB)
}

func TestParseShowJobMalformed(t *testing.T) {
	running := string(fixture(t, "22.05.8-running.txt"))
	replace := func(old, new string) []byte {
		require.Contains(t, running, old)
		return []byte(strings.Replace(running, old, new, 1))
	}
	const detail = "     Nodes=vm CPU_IDs=4-5 Mem=1024 GRES="
	tests := []struct {
		name    string
		out     []byte
		errText string
		errIs   error
	}{
		{name: "empty output", out: nil, errText: "no job record"},
		{name: "error text instead of a record", out: []byte("slurm_load_jobs error: Invalid job id specified\n"), errText: "unexpected text before the first JobId="},
		{name: "bad job ID", out: replace("JobId=8 ", "JobId=08 "), errText: `bad "JobId=08"`},
		{name: "fields out of order", out: replace(detail, "     Nodes=vm Mem=1024 CPU_IDs=4-5 GRES="), errText: "in that order"},
		{name: "empty CPU_IDs", out: replace(detail, "     Nodes=vm CPU_IDs= Mem=1024 GRES="), errText: "empty CPU_IDs"},
		{name: "bad CPU_IDs", out: replace(detail, "     Nodes=vm CPU_IDs=5-4 Mem=1024 GRES="), errText: "CPU_IDs"},
		{name: "memory with unit", out: replace(detail, "     Nodes=vm CPU_IDs=4-5 Mem=1G GRES="), errText: "not a number of MiB"},
		{name: "negative memory", out: replace(detail, "     Nodes=vm CPU_IDs=4-5 Mem=-1 GRES="), errText: "not a number of MiB"},
		{name: "unknown trailing field", out: replace(detail, detail+" Extra=1"), errText: `unexpected field "Extra=1"`},
		{name: "too few fields", out: replace(detail, "     Nodes=vm CPU_IDs=4-5"), errText: "want Nodes= CPU_IDs= Mem="},
		{name: "bad hostlist", out: replace(detail, "     Nodes=vm[ CPU_IDs=4-5 Mem=1024 GRES="), errText: "unbalanced"},
		{name: "node twice", out: replace(detail, detail+"\n     Nodes=vm CPU_IDs=6-7 Mem=1024 GRES="), errIs: ErrAmbiguous},
		{name: "record twice", out: []byte(running + running), errIs: ErrAmbiguous},
		{name: "no anchor at all", out: replace("   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*\n   JOB_GRES=(null)\n", ""), errText: "neither JOB_GRES= nor Socks/Node="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseShowJob(tc.out, "vm")
			require.Error(t, err)
			if tc.errText != "" {
				require.ErrorContains(t, err, tc.errText)
			}
			if tc.errIs != nil {
				require.ErrorIs(t, err, tc.errIs)
			}
		})
	}

	t.Run("older layout without JOB_GRES reads after Socks/Node", func(t *testing.T) {
		out := replace("   JOB_GRES=(null)\n", "")
		got, err := ParseShowJob(out, "vm")
		require.NoError(t, err)
		require.Equal(t, "4-5", got.CPUIDs.String())
	})
	t.Run("GRES_IDX of old releases", func(t *testing.T) {
		out := replace(detail, "     Nodes=vm CPU_IDs=4-5 Mem=1024 GRES_IDX=gpu(IDX:0)")
		got, err := ParseShowJob(out, "vm")
		require.NoError(t, err)
		require.Equal(t, "gpu(IDX:0)", got.GRES)
	})
	t.Run("memory not tracked", func(t *testing.T) {
		out := replace(detail, "     Nodes=vm CPU_IDs=4-5 Mem=0 GRES=")
		got, err := ParseShowJob(out, "vm")
		require.NoError(t, err)
		require.Zero(t, got.MemoryMB)
	})
}
