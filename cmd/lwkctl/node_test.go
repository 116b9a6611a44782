package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
)

// paperRoot is the paper's node (numa=fake=12 on 12 GiB) with the /proc
// files lwkctl node reads: 12 nodes of 1 GiB, nodes 0-2 below 4 GiB.
func paperRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(fixture.Root(t, "paper-e5520-fake12"), "sys"), filepath.Join(root, "sys")))
	var zi, bi strings.Builder
	for n := 0; n < 12; n++ {
		zone := "Normal"
		if n < 3 {
			zone = "DMA32"
		}
		fmt.Fprintf(&zi, "Node %d, zone %s\n  pages free     200000\n        spanned  262144\n        present  262144\n        managed  250000\n  start_pfn:           %d\n", n, zone, n*262144)
		fmt.Fprintf(&bi, "Node %d, zone %s 1 1 1 1 1 1 1 1 1 10 100\n", n, zone)
	}
	for name, content := range map[string]string{
		"proc/zoneinfo": zi.String(), "proc/buddyinfo": bi.String(), "proc/cmdline": "numa=fake=12 quiet\n",
		"proc/irq/30/smp_affinity_list": "0-15\n",
		"proc/1/stat":                   "1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0\n", "proc/1/status": "Cpus_allowed_list:\t0-15\n",
	} {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return root
}

func TestNodePlanPaper(t *testing.T) {
	root := paperRoot(t)
	conf := writeConf(t, paperConf)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"node", "plan", "--config", conf, "--root", root, "--json"}, &out))
	var p struct {
		KernelArgs []string              `json:"kernel_args"`
		Missing    []string              `json:"kernel_args_missing"`
		Movable    map[string]uint64     `json:"predicted_movable_bytes"`
		JobMems    string                `json:"job_cpuset_mems"`
		IRQs       []struct{ IRQ int }   `json:"irqs"`
		Confine    struct{ Mode string } `json:"confine"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &p))
	// Node 2 is a job node below 4 GiB (DMA32): it cannot be Movable at
	// boot, and keeps the job cpusets in Normal memory.
	require.Equal(t, []string{"movablecore=9216M", "irqaffinity=0-1"}, p.KernelArgs)
	require.Equal(t, p.KernelArgs, p.Missing)
	require.Equal(t, uint64(0), p.Movable["2"])
	require.Equal(t, uint64(1<<30), p.Movable["11"])
	require.Equal(t, "2-11", p.JobMems)
	require.Len(t, p.IRQs, 1)
	require.Equal(t, "none", p.Confine.Mode)

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"node", "report", "--config", conf, "--root", root}, &out))
	require.Contains(t, out.String(), "IRQs allowed on app cores: 1 30(0-15)")
	require.Contains(t, out.String(), "systemd[1]")
}

func TestNodeErrors(t *testing.T) {
	conf := writeConf(t, paperConf)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "frobnicate", "--config", conf}, "unknown node command"},
		{[]string{"node", "plan", "extra", "--config", conf}, "unexpected arguments"},
		{[]string{"node", "plan", "--config", conf, "--system-mem", "lots"}, "--system-mem"},
		{[]string{"node", "report", "--config", conf, "--root", t.TempDir()}, "sys/devices/system"},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{})
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"node", "--help"}, &out))
	require.Contains(t, out.String(), "apply  [--undo]")
}
