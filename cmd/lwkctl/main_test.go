package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
)

func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lwk.conf")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

const paperConf = `IHKBackend=ihk
OSCores=0-1
SystemNUMANodes=0-1
JobNUMANodes=2-11
Profile=mck Image=/opt/mckernel/smp-x86/kernel/mckernel.img Kargs="hidos dump_level=24" AllowKargs=time_sharing
`

// The paper's evaluation: a job holding CPUs 2-15 and 10 GiB, nodes 0-1 for
// the system. The LWK gets CPUs 2-15 and memory only on job nodes 2-11.
func TestPlanPaperNode(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"plan", "--config", writeConf(t, paperConf),
		"--sysfs-root", fixture.Root(t, "paper-e5520-fake12"),
		"--job-id", "12", "--lwk-mode", "mck", "--cpus", "2-15", "--mem", "10G", "--json"}, &out)
	require.NoError(t, err)
	var p struct {
		JobID   uint32 `json:"job_id"`
		LWKCPUs string `json:"lwk_cpus"`
		Memory  []struct {
			NUMANode int    `json:"numa_node"`
			Bytes    uint64 `json:"bytes"`
		} `json:"memory"`
		Proxy struct {
			CPUs        string `json:"cpus"`
			MemoryBytes uint64 `json:"memory_bytes"`
			CPUQuotaUS  int64  `json:"cpu_quota_us"`
			CPUPeriodUS int64  `json:"cpu_period_us"`
		} `json:"proxy"`
		Profile string `json:"profile"`
		Image   string `json:"image"`
		Kargs   string `json:"kargs"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &p), out.String())
	require.Equal(t, uint32(12), p.JobID)
	require.Equal(t, "2-15", p.LWKCPUs)
	var total uint64
	nodes := map[int]bool{}
	for _, m := range p.Memory {
		require.GreaterOrEqual(t, m.NUMANode, 2, "memory on a system node")
		require.LessOrEqual(t, m.NUMANode, 11)
		nodes[m.NUMANode] = true
		total += m.Bytes
	}
	require.Len(t, nodes, 10, "all ten job nodes share the memory")
	require.Equal(t, uint64(9<<30), total, "90% of 10 GiB by default")
	require.Equal(t, "0-1", p.Proxy.CPUs)
	require.Equal(t, uint64(128<<20), p.Proxy.MemoryBytes)
	require.Equal(t, p.Proxy.CPUPeriodUS, p.Proxy.CPUQuotaUS, "half of two OS cores: one CPU")
	require.Equal(t, "mck", p.Profile)
	require.Equal(t, "hidos dump_level=24", p.Kargs)
}

func TestPlanHumanAndErrors(t *testing.T) {
	conf := writeConf(t, paperConf)
	root := fixture.Root(t, "paper-e5520-fake12")
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		// Node 0 has three whole cores free (2/10, 4/12, 6/14); the fourth comes
		// from node 1, and the order groups by node.
		{name: "human", args: []string{"--lwk-mode", "mck:cores=4", "--cpus", "2-15", "--mem", "10G"}, want: "lwk cpus:   2-4,6,10-12,14 (assign order 2,4,6,10,12,14,3,11)"},
		{name: "bad spec", args: []string{"--lwk-mode", "mck:mem=8X", "--cpus", "2-15", "--mem", "10G"}, wantErr: `mem: bad size "8X"`},
		{name: "unknown profile", args: []string{"--lwk-mode", "nope", "--cpus", "2-15", "--mem", "10G"}, wantErr: `profile "nope"`},
		{name: "no cpus", args: []string{"--lwk-mode", "mck", "--mem", "10G"}, wantErr: "--cpus"},
		{name: "off", args: []string{"--lwk-mode", "off", "--cpus", "2-15", "--mem", "10G"}, wantErr: "nothing to plan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append([]string{"plan", "--config", conf, "--sysfs-root", root}, tc.args...)
			err := run(context.Background(), args, &out)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Contains(t, out.String(), tc.want)
		})
	}
}

func TestCPUsTranslation(t *testing.T) {
	conf := writeConf(t, paperConf)
	root := fixture.Root(t, "paper-e5520-fake12")
	var out bytes.Buffer
	// On the E5520 node, CPU n's hyper-thread sibling is n+8 and sockets
	// alternate; Slurm numbers core 0's threads 0 and 1.
	require.NoError(t, run(context.Background(), []string{"cpus", "--config", conf, "--sysfs-root", root, "--machine", "0-1"}, &out))
	require.Equal(t, "0,8\n", out.String())
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"cpus", "--config", conf, "--sysfs-root", root, "--abstract", "0,8"}, &out))
	require.Equal(t, "0-1\n", out.String())
	require.ErrorContains(t, run(context.Background(), []string{"cpus", "--config", conf, "--abstract", "1", "--machine", "1"}, &out), "exactly one")
}

func TestCheckSpec(t *testing.T) {
	conf := writeConf(t, paperConf)
	tests := []struct {
		name, spec string
		norm       string
		wantErr    string
	}{
		{name: "valid", spec: "mck:kargs=time_sharing,mem=8192M", norm: "mck:mem=8G,kargs=time_sharing"},
		{name: "default profile", spec: "default", norm: "default"},
		{name: "off", spec: "off", norm: "off"},
		{name: "unknown profile", spec: "nope", wantErr: `profile "nope"`},
		{name: "karg not allowed", spec: "mck:kargs=memdebug", wantErr: `kernel argument "memdebug": not allowed by profile "mck"`},
		{name: "bad grammar", spec: "mck:mem=8X", wantErr: `mem: bad size "8X"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{"check-spec", "--config", conf, "--", tc.spec}, &out)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tc.norm+"\n", out.String(), "the normalised spec")
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			var inv *invalidSpecError
			require.True(t, errors.As(err, &inv), "an invalid spec exits 3: %v", err)
		})
	}
	// Without a readable lwk.conf the submit host cannot judge: exit 2, silent.
	err := run(context.Background(), []string{"check-spec", "--config", "/nonexistent/lwk.conf", "--", "mck"}, &bytes.Buffer{})
	require.True(t, errors.Is(err, errCannotCheck), "%v", err)
	// A grammar error is still an error without lwk.conf.
	err = run(context.Background(), []string{"check-spec", "--config", "/nonexistent/lwk.conf", "--", "mck;id"}, &bytes.Buffer{})
	var inv *invalidSpecError
	require.True(t, errors.As(err, &inv), "%v", err)
	// Usage errors are not verdicts.
	err = run(context.Background(), []string{"check-spec", "--config", conf}, &bytes.Buffer{})
	require.Error(t, err)
	require.False(t, errors.As(err, &inv))
}

// TestCheckSpecKargs checks a parsed request's extra kernel arguments
// against the profile it selects, as the prolog's planner will.
func TestCheckSpecKargs(t *testing.T) {
	conf := writeConf(t, `IHKBackend=sim
OSCores=0-1
Profile=mck Image=/opt/mckernel/mckernel.img Kargs="hidos dump_level=24" AllowKargs=allow_oversubscribe,time_sharing,idle_halt,dump_level=
Profile=plain Image=/opt/mckernel/mckernel.img Kargs=hidos
`)
	tests := []struct {
		name    string
		spec    string
		wantErr string
	}{
		{name: "off", spec: "off"},
		{name: "default profile without kargs", spec: "default"},
		{name: "allowed flags", spec: "mck:kargs=idle_halt+time_sharing"},
		{name: "allowed key with any value", spec: "mck:mem=8G,kargs=dump_level=0"},
		{name: "not on the list", spec: "mck:kargs=panic=1", wantErr: `lwk-mode "mck:kargs=panic=1": kernel argument "panic=1": not allowed by profile "mck"`},
		{name: "profile without allow list", spec: "plain:kargs=idle_halt", wantErr: `profile "plain" allows no extra kernel arguments`},
		{name: "too long together", spec: "mck:kargs=dump_level=" + strings.Repeat("1", 230), wantErr: "at most 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{"check-spec", "--config", conf, "--", tt.spec}, &out)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			var inv *invalidSpecError
			require.True(t, errors.As(err, &inv), "an invalid spec exits 3: %v", err)
		})
	}
}
