package topology_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
)

func TestSlurmNumberingShape(t *testing.T) {
	// What `slurmd -C` would report for each machine.
	tests := []struct {
		machine                 string
		sockets, cores, threads int
		numbered                int // online CPUs
	}{
		{machine: "paper-e5520-fake12", sockets: 2, cores: 4, threads: 2, numbered: 16},
		// Assistant cores sit in packages of their own: 6 "sockets", and
		// 50 cores / 6 sockets truncates to 8.
		{machine: "a64fx-fugaku", sockets: 6, cores: 8, threads: 1, numbered: 50},
		{machine: "xeon-2s-ht", sockets: 2, cores: 16, threads: 2, numbered: 64},
		{machine: "epyc-nps4", sockets: 1, cores: 64, threads: 2, numbered: 128},
		// Offline CPUs do not exist for hwloc: 7 single-thread cores.
		{machine: "offline-cpus", sockets: 1, cores: 7, threads: 1, numbered: 7},
		{machine: "this-host", sockets: 1, cores: 2, threads: 1, numbered: 2},
	}
	var covered []string
	for _, tc := range tests {
		covered = append(covered, tc.machine)
		t.Run(tc.machine, func(t *testing.T) {
			n := read(t, tc.machine).SlurmNumbering()
			require.Equal(t, tc.sockets, n.Sockets, "Sockets")
			require.Equal(t, tc.cores, n.CoresPerSocket, "CoresPerSocket")
			require.Equal(t, tc.threads, n.ThreadsPerCore, "ThreadsPerCore")
			require.Len(t, n.Machine, tc.numbered)
		})
	}
	require.ElementsMatch(t, fixture.Names(), covered)
}

func TestSlurmAbstractToMachine(t *testing.T) {
	tests := []struct {
		name     string
		machine  string
		abstract string
		want     string
		wantErr  string
	}{
		// Socket 0 = even CPUs; its first core is {0,8}: abstract 0,1.
		{name: "paper first core", machine: "paper-e5520-fake12", abstract: "0-1", want: "0,8"},
		{name: "paper socket 0", machine: "paper-e5520-fake12", abstract: "0-7", want: "0,2,4,6,8,10,12,14"},
		{name: "paper socket 1", machine: "paper-e5520-fake12", abstract: "8-15", want: "1,3,5,7,9,11,13,15"},
		{name: "paper thread 0 of socket 1 core 2", machine: "paper-e5520-fake12", abstract: "12", want: "5"},
		{name: "paper out of range", machine: "paper-e5520-fake12", abstract: "3,16",
			wantErr: "slurm abstract cpu 16: out of range, slurm numbers 16 online cpus (0-15)"},
		{name: "xeon socket 1 first core", machine: "xeon-2s-ht", abstract: "32-33", want: "16,48"},
		{name: "xeon last core", machine: "xeon-2s-ht", abstract: "62-63", want: "31,63"},
		{name: "xeon thread 0 of socket 0", machine: "xeon-2s-ht", abstract: "0,2,4,30", want: "0-2,15"},
		{name: "epyc quadrant 1 cores", machine: "epyc-nps4", abstract: "32-63", want: "16-31,80-95"},
		{name: "empty", machine: "epyc-nps4", abstract: "", want: ""},
		{name: "fugaku assistant cores", machine: "a64fx-fugaku", abstract: "0-1", want: "0-1"},
		{name: "fugaku first CMG", machine: "a64fx-fugaku", abstract: "2-13", want: "12-23"},
		// slurmd skips CPUs 50-59 (IDs not below the 50 online CPUs).
		{name: "fugaku skipped by slurmd", machine: "a64fx-fugaku", abstract: "39-40",
			wantErr: "slurm abstract cpu 40: slurmd has no machine cpu for it on this topology (it would fall back to cpu 40)"},
		{name: "offline gap", machine: "offline-cpus", abstract: "0-5", want: "0-4,6"},
		{name: "offline gap skipped", machine: "offline-cpus", abstract: "6",
			wantErr: "slurm abstract cpu 6: slurmd has no machine cpu for it"},
		{name: "offline out of range", machine: "offline-cpus", abstract: "7",
			wantErr: "slurm abstract cpu 7: out of range, slurm numbers 7 online cpus (0-6)"},
		{name: "this host", machine: "this-host", abstract: "1", want: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(t, tc.machine).SlurmAbstractToMachine(mustParse(t, tc.abstract))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got.String())
		})
	}
}

func TestMachineToSlurmAbstract(t *testing.T) {
	tests := []struct {
		name    string
		machine string
		cpus    string
		want    string
		wantErr string
	}{
		// The paper's OS cores CPU0-1 are abstract 0 and 8: a CpuSpecList
		// for them reads "0,8".
		{name: "paper OS cores", machine: "paper-e5520-fake12", cpus: "0-1", want: "0,8"},
		{name: "paper app cores", machine: "paper-e5520-fake12", cpus: "2-15", want: "1-7,9-15"},
		{name: "xeon siblings", machine: "xeon-2s-ht", cpus: "32,48", want: "1,33"},
		{name: "epyc", machine: "epyc-nps4", cpus: "0,64,127", want: "0-1,127"},
		{name: "fugaku compute", machine: "a64fx-fugaku", cpus: "12,49", want: "2,39"},
		{name: "fugaku skipped", machine: "a64fx-fugaku", cpus: "50",
			wantErr: "cpu 50: slurmd gives it no abstract id"},
		{name: "fugaku absent id", machine: "a64fx-fugaku", cpus: "5",
			wantErr: "cpu 5: not in topology (cpus 0-1,12-59)"},
		{name: "offline cpu", machine: "offline-cpus", cpus: "4-5",
			wantErr: "cpu 5: offline, slurm numbers online cpus only"},
		{name: "offline sibling", machine: "offline-cpus", cpus: "12", wantErr: "cpu 12: offline"},
		{name: "online cpu slurmd skips", machine: "offline-cpus", cpus: "7",
			wantErr: "cpu 7: slurmd gives it no abstract id"},
		{name: "offline machine ok part", machine: "offline-cpus", cpus: "0-4,6", want: "0-5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(t, tc.machine).MachineToSlurmAbstract(mustParse(t, tc.cpus))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got.String())
		})
	}
}

// TestSlurmRoundTrip checks, on every fixture, that the two directions are
// inverse wherever slurmd's map is defined and that the defined part is a
// bijection onto online CPUs.
func TestSlurmRoundTrip(t *testing.T) {
	for _, name := range fixture.Names() {
		t.Run(name, func(t *testing.T) {
			topo := read(t, name)
			n := topo.SlurmNumbering()
			seen := map[int]bool{}
			for a, m := range n.Machine {
				if m < 0 {
					continue
				}
				require.False(t, seen[m], "cpu %d numbered twice", m)
				seen[m] = true
				require.Equal(t, a, n.Abstract[m])
				c, ok := topo.CPU(m)
				require.True(t, ok)
				require.True(t, c.Online, "cpu %d", m)
				got, err := topo.SlurmAbstractToMachine(mustParse(t, strconv.Itoa(a)))
				require.NoError(t, err)
				back, err := topo.MachineToSlurmAbstract(got)
				require.NoError(t, err)
				require.Equal(t, strconv.Itoa(a), back.String())
			}
			require.Len(t, n.Abstract, len(seen))
		})
	}
}
