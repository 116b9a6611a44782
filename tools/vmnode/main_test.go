package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeLog(t *testing.T, dir, name string, sections map[string]string, exit string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("[    0.000000] Linux version 6.1.0\r\n")
	for _, k := range []string{"plan", "apply", "boot", "defrag", "after", "ihkreserve", "ihkreserve-movable", "restore", "simcheck", "cgcheck", "undo"} {
		if v, ok := sections[k]; ok {
			b.WriteString("@@VMNODE-BEGIN " + k + "\r\n" + v + "\r\n@@VMNODE-END " + k + "\r\n")
		}
	}
	b.WriteString("@@VMNODE-EXIT " + exit + "\r\n")
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

const bootJSON = `{"job_contiguous_share": 0.98, "job_free_2mb_blocks": 1500, "nodes": [{"node": 1, "job": true, "blocks": {"Movable": 8}}]}`
const afterJSON = `{"job_contiguous_share": 0.5, "job_free_2mb_blocks": 1200, "nodes": [{"node": 1, "job": true, "blocks": {"Movable": 6, "Normal": 2}}]}`

func TestReadRun(t *testing.T) {
	dir := t.TempDir()
	p := writeLog(t, dir, "movable-2.log", map[string]string{"boot": bootJSON, "after": afterJSON,
		"defrag": `{"duration_ns": 2500000000, "contiguous_share_before": 0.4, "evacuated_blocks": 5, "refused_blocks": 1}`}, "0")
	r, err := readRun(p)
	require.NoError(t, err)
	require.Equal(t, "movable", r.variant)
	require.Equal(t, "2", r.seed)
	require.Equal(t, 0.5, r.share)
	require.Equal(t, 6, r.movable)
	require.Equal(t, 8, r.movableBoot)
	require.Equal(t, 8, r.blocks)
	require.InDelta(t, 20.0, r.lost(), 1e-9)
	require.Equal(t, 2.5, r.defragSec)
	require.Equal(t, 5, r.evacuated)

	bad := writeLog(t, dir, "none-1.log", map[string]string{"boot": bootJSON}, "1")
	_, err = readRun(bad)
	require.ErrorContains(t, err, `guest exited "1"`)
	missing := writeLog(t, dir, "none-3.log", map[string]string{"boot": bootJSON}, "0")
	_, err = readRun(missing)
	require.ErrorContains(t, err, `no "after" section`)
	_, err = readRun(writeLog(t, dir, "noseed.log", nil, "0"))
	require.ErrorContains(t, err, "VARIANT-SEED")
}

func TestReadRunIHKReservation(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, section, cell, err string
		share                    float64
	}{
		{name: "absent", cell: "-"},
		{
			name:    "all nodes reserved",
			section: `{"requested_bytes": 2684354560, "obtained_bytes": 2684354560, "contiguous_bytes": 2013265920, "share": 0.75, "failed_nodes": []}`,
			cell:    "75.0% (got 100.0%)", share: 0.75,
		},
		{
			name:    "one node failed",
			section: `{"requested_bytes": 2684354560, "obtained_bytes": 1790967808, "contiguous_bytes": 805306368, "share": 0.3, "failed_nodes": [3]}`,
			cell:    "30.0% (got 66.7%), failed on nodes [3]", share: 0.3,
		},
		{name: "nothing requested", section: `{"requested_bytes": 0, "share": 0}`, err: "requested nothing"},
		{name: "not json", section: `ihkreserve: open /dev/mcd0`, err: `section "ihkreserve"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secs := map[string]string{"boot": bootJSON, "after": afterJSON}
			if tt.section != "" {
				secs["ihkreserve"] = tt.section
			}
			r, err := readRun(writeLog(t, dir, "none-"+string(rune('a'+i))+".log", secs, "0"))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.cell, r.ihk.cell())
			// No movable-fallback section in these logs.
			require.Equal(t, "-", r.ihkMovable.cell())
			if tt.section != "" {
				require.InDelta(t, tt.share, r.ihk.share, 1e-9)
			}
		})
	}
}

func TestReadRunIHKBothPasses(t *testing.T) {
	p := writeLog(t, t.TempDir(), "movable-1.log", map[string]string{"boot": bootJSON, "after": afterJSON,
		"ihkreserve":         `{"requested_bytes": 2843738112, "obtained_bytes": 0, "share": 0, "failed_nodes": [1, 2, 3]}`,
		"ihkreserve-movable": `{"requested_bytes": 2843738112, "obtained_bytes": 2843738112, "share": 0.99, "failed_nodes": []}`,
	}, "0")
	r, err := readRun(p)
	require.NoError(t, err)
	require.Equal(t, "0.0% (got 0.0%), failed on nodes [1 2 3]", r.ihk.cell())
	require.Equal(t, "99.0% (got 100.0%)", r.ihkMovable.cell())
}

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	ok := writeLog(t, dir, "apply-1.log", map[string]string{
		"apply": `{"changed": [{"kind": "block-zone"}], "refused": [], "recorded": 1}`,
		"boot":  bootJSON, "after": strings.Replace(afterJSON, `"job": true`, `"job": true, "kpageflags": true`, 1),
		"undo":     `{"changed": [{"kind": "block-zone"}], "refused": [], "recorded": 0}`,
		"simcheck": "=== RUN   TestRealCPUOfflineInGuest\n--- PASS: TestRealCPUOfflineInGuest (0.05s)\nPASS\nexit 0",
		"cgcheck":  cgcheckPass,
	}, "0")
	require.NoError(t, smoke(ok))
	leftover := writeLog(t, dir, "apply-2.log", map[string]string{
		"apply": `{"changed": [], "recorded": 0}`, "boot": bootJSON, "after": afterJSON,
		"undo": `{"changed": [], "refused": [{"object": "memory33"}], "recorded": 1}`,
	}, "0")
	err := smoke(leftover)
	require.ErrorContains(t, err, "apply changed nothing")
	require.ErrorContains(t, err, "could not read kpageflags")
	require.ErrorContains(t, err, "undo left 1 changes recorded")
	require.ErrorContains(t, err, "no simcheck section")
	require.ErrorContains(t, err, "no cgcheck section")
}

// A smoke run with --online-kernel must show blocks turned into kernel
// memory and back.
func TestSmokeOnlineKernel(t *testing.T) {
	dir := t.TempDir()
	base := map[string]string{
		"apply": `{"changed": [{"kind": "block-zone"}], "refused": [], "recorded": 1}`,
		"boot":  bootJSON, "after": strings.Replace(afterJSON, `"job": true`, `"job": true, "kpageflags": true`, 1),
		"undo":     `{"changed": [{"kind": "block-zone"}], "refused": [], "recorded": 0}`,
		"simcheck": "=== RUN   TestRealCPUOfflineInGuest\n--- PASS: TestRealCPUOfflineInGuest (0.05s)\nPASS\nexit 0",
		"cgcheck":  cgcheckPass,
	}
	for _, tc := range []struct {
		name, defrag, restore, err string
	}{
		{name: "converted and back", defrag: `{"duration_ns": 1000000000, "kernel_blocks": [33, 34]}`, restore: `{"changed": [33], "refused": [34]}`},
		{name: "nothing converted", defrag: `{"duration_ns": 1000000000}`, restore: `{"changed": [], "refused": []}`,
			err: "turned no Movable job block into kernel memory"},
		{name: "nothing back", defrag: `{"duration_ns": 1000000000, "kernel_blocks": [33]}`, restore: `{"changed": [], "refused": [33]}`,
			err: "none of the 1 kernel blocks back"},
		{name: "restore failed", defrag: `{"duration_ns": 1000000000, "kernel_blocks": [33]}`, restore: `{"changed": [], "refused": [], "error": "memory33 left offline"}`,
			err: "memory33 left offline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secs := map[string]string{"defrag": tc.defrag, "restore": tc.restore}
			for k, v := range base {
				secs[k] = v
			}
			err := smoke(writeLog(t, dir, "apply-1.log", secs, "0"))
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}

const cgcheckPass = "=== RUN   TestJobIDTreeAfterProlog\n--- PASS: TestJobIDTreeAfterProlog (9.10s)\n" +
	"=== RUN   TestSLUIDTreeBeforeProlog\n--- PASS: TestSLUIDTreeBeforeProlog (2.00s)\nPASS\nexit 0"

func TestCgcheckErrors(t *testing.T) {
	require.Empty(t, cgcheckErrors(cgcheckPass))
	skipped := strings.Replace(cgcheckPass, "--- PASS: TestSLUIDTreeBeforeProlog", "--- SKIP: TestSLUIDTreeBeforeProlog", 1)
	errs := cgcheckErrors(skipped)
	require.Len(t, errs, 2, "%v", errs)
	require.ErrorContains(t, errs[0], "TestSLUIDTreeBeforeProlog did not pass")
	failed := strings.Replace(cgcheckPass, "PASS\nexit 0", "FAIL\nexit 1", 1)
	require.ErrorContains(t, cgcheckErrors(failed)[0], "exited non-zero")
}
