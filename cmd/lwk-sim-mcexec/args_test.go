package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"
)

func TestParseArgs(t *testing.T) {
	base := options{StartCPU: -1, OSIndex: -1}
	with := func(f func(*options)) options {
		o := base
		f(&o)
		return o
	}
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr string
	}{
		{name: "program only", args: []string{"./a.out"}, want: with(func(o *options) { o.Program = "./a.out"; o.Args = []string{} })},
		{name: "-n with space", args: []string{"-n", "4", "a.out", "-n", "x"},
			want: with(func(o *options) { o.Partitions = 4; o.Program = "a.out"; o.Args = []string{"-n", "x"} })},
		{name: "-n clustered", args: []string{"-n4", "a.out"}, want: with(func(o *options) { o.Partitions = 4; o.Program = "a.out"; o.Args = []string{} })},
		{name: "os index", args: []string{"2", "a.out", "1"}, want: with(func(o *options) { o.OSIndex = 2; o.Program = "a.out"; o.Args = []string{"1"} })},
		{name: "double dash", args: []string{"--", "-weird"}, want: with(func(o *options) { o.Program = "-weird"; o.Args = []string{} })},
		{name: "config both forms", args: []string{"--config", "/a", "--config=/b", "p"}, want: with(func(o *options) { o.ConfigPath = "/b"; o.Program = "p"; o.Args = []string{} })},
		{name: "ignored options", args: []string{"-t", "8", "-m", "0-1", "--stack-premap=2M,1G", "--enable-uti", "-c1", "p"},
			want: with(func(o *options) { o.StartCPU = 1; o.Program = "p"; o.Args = []string{} })},
		{name: "help", args: []string{"--help"}, want: with(func(o *options) { o.Help = true })},
		{name: "no program", args: []string{"-n", "2"}, wantErr: "no program given"},
		{name: "missing value", args: []string{"-n"}, wantErr: "option -n needs a value"},
		{name: "bad -n", args: []string{"-n", "0", "p"}, wantErr: "positive number"},
		{name: "unknown long", args: []string{"--frobnicate", "p"}, wantErr: "unknown option --frobnicate"},
		{name: "flag with value", args: []string{"--profile=yes", "p"}, wantErr: "takes no value"},
		{name: "bad os index", args: []string{"64", "p"}, wantErr: `bad OS index "64"`},
		{name: "program starting with a digit needs the index", args: []string{"0", "3dprog"},
			want: with(func(o *options) { o.OSIndex = 0; o.Program = "3dprog"; o.Args = []string{} })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(tc.args)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, errUsage)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestTargetCPUs(t *testing.T) {
	lwk := []int{8, 9, 10, 11, 4, 5}
	tests := []struct {
		name    string
		opts    options
		localID string
		want    []int
		wantErr string
	}{
		{name: "all, in LWK order", opts: options{StartCPU: -1}, want: lwk},
		{name: "-c", opts: options{StartCPU: 4}, want: []int{4}},
		{name: "-c out of range", opts: options{StartCPU: 6}, wantErr: "has 6 LWK CPUs"},
		{name: "-n slice of rank 1", opts: options{StartCPU: -1, Partitions: 3}, localID: "1", want: []int{10, 11}},
		{name: "-n without a rank", opts: options{StartCPU: -1, Partitions: 3}, want: lwk},
		{name: "-n rank out of range", opts: options{StartCPU: -1, Partitions: 3}, localID: "3", want: lwk},
		{name: "-n too large", opts: options{StartCPU: -1, Partitions: 7}, wantErr: "-n 7 is larger than the 6 LWK CPUs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := targetCPUs(tc.opts, lwk, tc.localID)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestPlacement(t *testing.T) {
	mustParse := func(s string) cpuset.CPUSet {
		c, err := cpuset.Parse(s)
		require.NoError(t, err)
		return c
	}
	tests := []struct {
		name                     string
		target, allowed, present string
		wantPin, wantNote        string
	}{
		{name: "all available", target: "1", allowed: "0-1", present: "0-1", wantPin: "1"},
		{name: "none present", target: "2-15", allowed: "0-1", present: "0-1", wantPin: "0-1",
			wantNote: "lwk-sim-mcexec: simulated LWK CPUs 2-15 are not present on this host; running on 0-1"},
		{name: "some present", target: "1-3", allowed: "0-1", present: "0-1", wantPin: "1",
			wantNote: "lwk-sim-mcexec: simulated LWK CPUs 2-3 are not present on this host; running on 1"},
		{name: "outside the cpuset", target: "2-3", allowed: "0-1", present: "0-7", wantPin: "0-1",
			wantNote: "lwk-sim-mcexec: simulated LWK CPUs 2-3 are not in this process's allowed CPUs 0-1; running on 0-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pin, note := placement(mustParse(tc.target), mustParse(tc.allowed), mustParse(tc.present))
			require.Equal(t, tc.wantPin, pin.String())
			require.Equal(t, tc.wantNote, note)
		})
	}
}
