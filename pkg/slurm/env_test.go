package slurm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// prologEnv is the Prolog environment slurmd 22.05.8 gave a job on a test
// machine (captured with env(1) from a Prolog script), plus what the SPANK shim adds.
func prologEnv(extra ...string) []string {
	env := []string{
		"SLURMD_NODENAME=vm", "SLURM_JOB_GID=65534", "SLURM_JOB_STDIN=/dev/null",
		"SLURM_CLUSTER_NAME=lab", "SLURM_JOB_ID=13", "SLURM_JOB_STDOUT=/tmp/%j.out",
		"SLURM_CONF=/etc/slurm/slurm.conf", "SLURM_JOB_NTASKS=2", "SLURM_JOB_UID=65534",
		"SLURM_JOBID=13", "SLURM_JOB_NUM_NODES=1", "SLURM_JOB_USER=nobody",
		"SLURM_JOB_ACCOUNT=lab", "SLURM_JOB_PARTITION=debug", "SLURM_JOB_WORK_DIR=/tmp",
		"SLURM_JOB_COMMENT=c1", "SLURM_JOB_RESTART_COUNT=0", "SLURM_NODELIST=vm",
		"SLURM_JOB_CPUS_PER_NODE=2", "SLURM_SCRIPT_CONTEXT=prolog_slurmd", "SLURM_UID=65534",
	}
	return append(env, extra...)
}

// without returns env minus the variables named.
func without(env []string, names ...string) []string {
	var out []string
outer:
	for _, kv := range env {
		for _, n := range names {
			if len(kv) > len(n) && kv[:len(n)+1] == n+"=" {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}

func TestFromEnviron(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		want    JobEnv
		wantErr string
	}{
		{
			name: "prolog with SPANK shim spec",
			env:  prologEnv("LWK_MODE=mckernel:mem=50%"),
			want: JobEnv{JobID: 13, UID: 65534, GID: 65534, User: "nobody", Node: "vm", Spec: "mckernel:mem=50%", ScriptContext: ContextPrologSlurmd, SlurmConf: "/etc/slurm/slurm.conf", NTasks: 2, NumNodes: 1},
		},
		{
			name: "job-control copy when the shim did not set LWK_MODE",
			env:  prologEnv("SPANK_LWK_MODE=mckernel"),
			want: JobEnv{JobID: 13, UID: 65534, GID: 65534, User: "nobody", Node: "vm", Spec: "mckernel", ScriptContext: ContextPrologSlurmd, SlurmConf: "/etc/slurm/slurm.conf", NTasks: 2, NumNodes: 1},
		},
		{
			name: "LWK_MODE wins over SPANK_LWK_MODE",
			env:  prologEnv("SPANK_LWK_MODE=off", "LWK_MODE=mckernel"),
			want: JobEnv{JobID: 13, UID: 65534, GID: 65534, User: "nobody", Node: "vm", Spec: "mckernel", ScriptContext: ContextPrologSlurmd, SlurmConf: "/etc/slurm/slurm.conf", NTasks: 2, NumNodes: 1},
		},
		{
			name: "Linux job: no spec",
			env:  prologEnv(),
			want: JobEnv{JobID: 13, UID: 65534, GID: 65534, User: "nobody", Node: "vm", ScriptContext: ContextPrologSlurmd, SlurmConf: "/etc/slurm/slurm.conf", NTasks: 2, NumNodes: 1},
		},
		{
			name: "only SLURM_JOBID",
			env:  without(prologEnv(), "SLURM_JOB_ID"),
			want: JobEnv{JobID: 13, UID: 65534, GID: 65534, User: "nobody", Node: "vm", ScriptContext: ContextPrologSlurmd, SlurmConf: "/etc/slurm/slurm.conf", NTasks: 2, NumNodes: 1},
		},
		{
			name: "minimal: root job, optional variables absent",
			env:  []string{"SLURM_JOB_ID=4294967295", "SLURM_JOB_UID=0", "SLURM_JOB_GID=0"},
			want: JobEnv{JobID: 4294967295},
		},
		{
			name: "entries without '=' are ignored",
			env:  []string{"GARBAGE", "SLURM_JOB_ID=1", "SLURM_JOB_UID=1", "SLURM_JOB_GID=2"},
			want: JobEnv{JobID: 1, UID: 1, GID: 2},
		},
		{name: "no job ID", env: without(prologEnv(), "SLURM_JOB_ID", "SLURM_JOBID"), wantErr: "SLURM_JOB_ID is not set"},
		{name: "job IDs disagree", env: append(without(prologEnv(), "SLURM_JOBID"), "SLURM_JOBID=14"), wantErr: `SLURM_JOB_ID="13" and SLURM_JOBID="14" disagree`},
		{name: "job ID 0", env: []string{"SLURM_JOB_ID=0", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "SLURM_JOB_ID=\"0\": job ID 0"},
		{name: "job ID signed", env: []string{"SLURM_JOB_ID=+13", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "SLURM_JOB_ID=\"+13\": not a decimal number"},
		{name: "job ID negative", env: []string{"SLURM_JOB_ID=-1", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "SLURM_JOB_ID"},
		{name: "job ID with space", env: []string{"SLURM_JOB_ID=13 ", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "not a decimal number"},
		{name: "job ID leading zero", env: []string{"SLURM_JOB_ID=013", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "leading zero"},
		{name: "job ID too big", env: []string{"SLURM_JOB_ID=4294967296", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "out of range"},
		{name: "job ID hex", env: []string{"SLURM_JOB_ID=0x10", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "not a decimal number"},
		{name: "empty job ID", env: []string{"SLURM_JOB_ID=", "SLURM_JOB_UID=1", "SLURM_JOB_GID=1"}, wantErr: "SLURM_JOB_ID=\"\": empty"},
		{name: "no UID", env: without(prologEnv(), "SLURM_JOB_UID"), wantErr: "SLURM_JOB_UID is not set"},
		{name: "no GID", env: without(prologEnv(), "SLURM_JOB_GID"), wantErr: "SLURM_JOB_GID is not set"},
		{name: "UID -1", env: append(without(prologEnv(), "SLURM_JOB_UID"), "SLURM_JOB_UID=4294967295"), wantErr: "SLURM_JOB_UID=\"4294967295\": (uid_t)-1"},
		{name: "GID not a number", env: append(without(prologEnv(), "SLURM_JOB_GID"), "SLURM_JOB_GID=nogroup"), wantErr: "SLURM_JOB_GID=\"nogroup\": not a decimal number"},
		{name: "duplicate variable", env: prologEnv("SLURM_JOB_UID=0"), wantErr: "SLURM_JOB_UID is set more than once"},
		{name: "user with slash", env: append(without(prologEnv(), "SLURM_JOB_USER"), "SLURM_JOB_USER=../root"), wantErr: "SLURM_JOB_USER"},
		{name: "user with newline", env: append(without(prologEnv(), "SLURM_JOB_USER"), "SLURM_JOB_USER=a\nb"), wantErr: "SLURM_JOB_USER"},
		{name: "node hostlist", env: append(without(prologEnv(), "SLURMD_NODENAME"), "SLURMD_NODENAME=n[1-2]"), wantErr: "SLURMD_NODENAME: node name \"n[1-2]\""},
		{name: "node empty", env: append(without(prologEnv(), "SLURMD_NODENAME"), "SLURMD_NODENAME="), wantErr: "SLURMD_NODENAME"},
		{name: "restart count not a number", env: append(without(prologEnv(), "SLURM_JOB_RESTART_COUNT"), "SLURM_JOB_RESTART_COUNT=x"), wantErr: "SLURM_JOB_RESTART_COUNT=\"x\""},
		{name: "bad spec and bad UID: the UID is reported", env: append(without(prologEnv("LWK_MODE=mck\t"), "SLURM_JOB_UID"), "SLURM_JOB_UID=x"), wantErr: "SLURM_JOB_UID"},
		{name: "relative SLURM_CONF", env: append(without(prologEnv(), "SLURM_CONF"), "SLURM_CONF=slurm.conf"), wantErr: "SLURM_CONF=\"slurm.conf\": not a clean absolute path"},
		{name: "script context odd", env: append(without(prologEnv(), "SLURM_SCRIPT_CONTEXT"), "SLURM_SCRIPT_CONTEXT=a;b"), wantErr: "SLURM_SCRIPT_CONTEXT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnviron(tc.env)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Equal(t, JobEnv{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// A malformed spec is the user's error: FromEnviron says so with a
// *SpecError and still returns what the prolog needs to cancel the job.
func TestFromEnvironMalformedSpec(t *testing.T) {
	base := JobEnv{JobID: 13, UID: 65534, GID: 65534, User: "nobody", Node: "vm", ScriptContext: ContextPrologSlurmd,
		SlurmConf: "/etc/slurm/slurm.conf", NTasks: 2, NumNodes: 1, RestartCount: 2}
	env := func(extra string) []string {
		return append(without(prologEnv(), "SLURM_JOB_RESTART_COUNT"), "SLURM_JOB_RESTART_COUNT=2", extra)
	}
	tests := []struct {
		name    string
		env     []string
		wantVar string
		wantErr string
	}{
		{name: "tab", env: env("LWK_MODE=mck\tx"), wantVar: "LWK_MODE", wantErr: "spec contains byte 0x09"},
		{name: "escape sequence", env: env("LWK_MODE=mck\x1b[2J"), wantVar: "LWK_MODE", wantErr: "spec contains byte 0x1b"},
		{name: "full-width G", env: env("SPANK_LWK_MODE=mck:mem=8Ｇ"), wantVar: "SPANK_LWK_MODE", wantErr: "spec contains byte 0xef"},
		{name: "over 1024 bytes", env: env("SPANK_LWK_MODE=mck:kargs=" + strings.Repeat("k", 8<<10)), wantVar: "SPANK_LWK_MODE", wantErr: "spec is 8202 bytes, limit 1024"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnviron(tc.env)
			var se *SpecError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.wantVar, se.Var)
			require.ErrorContains(t, err, tc.wantErr)
			require.Equal(t, base, got)
		})
	}
}

func TestSpecFromEnviron(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{name: "none", env: prologEnv(), want: ""},
		{name: "shim", env: prologEnv("LWK_MODE=mckernel"), want: "mckernel"},
		{name: "job control", env: prologEnv("SPANK_LWK_MODE=off"), want: "off"},
		{name: "shim first", env: prologEnv("SPANK_LWK_MODE=off", "LWK_MODE=mckernel"), want: "mckernel"},
		{name: "empty LWK_MODE falls back", env: prologEnv("LWK_MODE=", "SPANK_LWK_MODE=mckernel"), want: "mckernel"},
		{name: "broken rest of environment", env: []string{"SLURM_JOB_ID=x", "LWK_MODE=off"}, want: "off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, SpecFromEnviron(tc.env))
		})
	}
}

func TestCheckNodeName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "short", in: "vm", ok: true},
		{name: "fqdn-ish", in: "node01.cluster-a_1", ok: true},
		{name: "empty", in: ""},
		{name: "leading dash (option-like)", in: "-x"},
		{name: "leading dot", in: ".."},
		{name: "hostlist", in: "n[1-2]"},
		{name: "list", in: "a,b"},
		{name: "space", in: "a b"},
		{name: "equals", in: "a=b"},
		{name: "slash", in: "a/b"},
		{name: "too long", in: string(make([]byte, 256))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNodeName(tc.in)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}
