//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// slurmSeries is a Slurm release series, major.minor (22.05, 24.11, 26.05).
type slurmSeries struct{ major, minor int }

func (s slurmSeries) String() string { return fmt.Sprintf("%02d.%02d", s.major, s.minor) }

// atLeast reports whether s is the series major.minor or a later one.
func (s slurmSeries) atLeast(major, minor int) bool {
	return s.major > major || (s.major == major && s.minor >= minor)
}

// gres is how this series writes a GRES request in a job's tres_per_node
// (job_submit.lua's LWK_GRES_FORM; `scontrol show job` TresPerNode):
// "gres:lwk:1" before 23.02, "gres/lwk:1" from it.
func (s slurmSeries) gres(name string, count int) string {
	if s.atLeast(23, 2) {
		return fmt.Sprintf("gres/%s:%d", name, count)
	}
	return fmt.Sprintf("gres:%s:%d", name, count)
}

// exitCode137 is sacct's ExitCode of a step whose task exited with status
// 137 (128+SIGKILL, as a shell reports a killed program): 9:0 on 22.05 and
// 24.11, 137:0 on 26.05. Seen on those three series; 25.05 and 25.11 are not
// tested here and are taken to behave as 26.05.
func (s slurmSeries) exitCode137() string {
	if s.atLeast(25, 5) {
		return "137:0"
	}
	return "9:0"
}

var versionRE = regexp.MustCompile(`^slurm(?:-wlm)? ([0-9]+)\.([0-9]+)\.[0-9]+`)

// parseSlurmVersion reads the series from `scontrol --version` ("slurm 24.11.5").
func parseSlurmVersion(out string) (slurmSeries, error) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		return slurmSeries{}, fmt.Errorf("slurm version %q: want \"slurm MAJOR.MINOR.PATCH\"", strings.TrimSpace(out))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return slurmSeries{major, minor}, nil
}

// series is the series of the Slurm the suite runs against. The client and
// the daemons come from one installation (scripts/slurm-local,
// scripts/slurm-matrix), so scontrol's version is slurmctld's.
func (h *harness) series() slurmSeries {
	h.t.Helper()
	s, err := parseSlurmVersion(h.must("scontrol", "--version"))
	require.NoError(h.t, err)
	return s
}

func TestParseSlurmVersion(t *testing.T) {
	for _, c := range []struct {
		in   string
		want slurmSeries
		err  bool
	}{
		{in: "slurm-wlm 22.05.8\n", want: slurmSeries{22, 5}},
		{in: "slurm 24.11.5\n", want: slurmSeries{24, 11}},
		{in: "slurm 26.05.5", want: slurmSeries{26, 5}},
		{in: "slurm 23.11.0-0rc1\n", want: slurmSeries{23, 11}},
		{in: "slurmctld: error: no config\n", err: true},
		{in: "", err: true},
	} {
		got, err := parseSlurmVersion(c.in)
		if c.err {
			require.Error(t, err, "%q", c.in)
			continue
		}
		require.NoError(t, err, "%q", c.in)
		require.Equal(t, c.want, got, "%q", c.in)
	}
	require.True(t, slurmSeries{23, 11}.atLeast(23, 11))
	require.True(t, slurmSeries{24, 5}.atLeast(23, 11))
	require.False(t, slurmSeries{23, 2}.atLeast(23, 11))
	require.False(t, slurmSeries{22, 5}.atLeast(23, 11))
	require.Equal(t, "gres:lwk:1", slurmSeries{22, 5}.gres("lwk", 1))
	require.Equal(t, "gres/lwk:1", slurmSeries{24, 11}.gres("lwk", 1))
}

// taskPrologScript runs one LWK step with a --task-prolog that exports a
// variable, and prints the task's parent and whether the variable arrived.
const taskPrologScript = `#!/bin/bash
printf '#!/bin/sh\necho export LWK_TASK_PROLOG=ran\n' >tp.sh
chmod 0755 tp.sh
srun -n1 --task-prolog="$PWD/tp.sh" /bin/sh -c 'printf "tw:parent=%s\n" "$(tr "\000" "|" </proc/$PPID/cmdline)"; echo "tw:taskprolog=${LWK_TASK_PROLOG:-none}"'
echo "rc=$?"
`

// The plugin wraps a task in mcexec in one of two ways, chosen when it is
// built: from 23.11 it prepends mcexec to the task's argv
// (spank_prepend_task_argv), and Slurm runs the task as usual, --task-prolog
// included; before, it execs mcexec itself from task_init, so what Slurm
// would do after that callback, --task-prolog among it, is skipped (README,
// "Configure"). Both ways the task runs under mcexec -n 1.
func TestTaskWrappingPathForThisSlurm(t *testing.T) {
	h := newLWKHarness(t)
	h.needBinary("lwk-sim-mcexec")
	s := h.series()
	h.assertPristine(settleTimeout)
	dir := h.workdir()
	id := h.sbatch(dir, "tw", "--lwk-mode=mck", "-n1", "--time=5", h.writeScript(dir, "tw.sh", taskPrologScript))
	f := h.waitJob(id, jobTimeout)
	out := readFile(filepath.Join(dir, "tw.out"))
	require.Equal(t, "COMPLETED", f["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "tw.err")))
	parent := lineValue(t, out, "tw:parent=")
	p := probeLine{Parent: strings.Split(strings.TrimSuffix(parent, "|"), "|")}
	require.True(t, p.wrapped(1), "Slurm %s: task did not run through lwk-sim-mcexec -n 1: parent %q", s, p.Parent)
	want := "none"
	if s.atLeast(23, 11) {
		want = "ran"
	}
	require.Equal(t, want, lineValue(t, out, "tw:taskprolog="),
		"Slurm %s: --task-prolog %s on the %s path", s, map[string]string{"ran": "runs", "none": "is skipped"}[want],
		map[bool]string{true: "spank_prepend_task_argv", false: "execve"}[s.atLeast(23, 11)])
	require.Contains(t, out, "rc=0\n")
	h.assertPristine(settleTimeout)
}

// Slurm bounds the prolog, and so the LWK boot, by PrologEpilogTimeout up to
// 24.11; 25.05 split it into PrologTimeout and EpilogTimeout (slurm.conf.5),
// and scripts/slurm-local writes the keys the running series reads. The
// running slurmctld must have accepted them and apply the bound (180 s,
// above lwk.conf's BootTimeout). 26.05's `scontrol show config` still
// reports it as PrologEpilogTimeout.
func TestPrologEpilogTimeoutForThisSlurm(t *testing.T) {
	h := newHarness(t)
	s := h.series()
	conf := map[string]string{}
	var lines []string
	for _, line := range strings.Split(h.must("scontrol", "show", "config"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			conf[strings.TrimSpace(k)] = strings.TrimSpace(v)
			if strings.Contains(k, "Timeout") {
				lines = append(lines, line)
			}
		}
	}
	t.Logf("Slurm %s:\n%s", s, strings.Join(lines, "\n"))
	require.Regexp(t, `^180( sec)?$`, conf["PrologEpilogTimeout"], "Slurm %s applies the prolog bound", s)

	data, err := os.ReadFile(conf["SLURM_CONF"])
	require.NoError(t, err, "slurm.conf of the running slurmctld")
	keys := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.HasSuffix(k, "Timeout") && (strings.HasPrefix(k, "Prolog") || strings.HasPrefix(k, "Epilog")) {
			keys[k] = v
		}
	}
	want := map[string]string{"PrologEpilogTimeout": "180"}
	if s.atLeast(25, 5) {
		want = map[string]string{"PrologTimeout": "180", "EpilogTimeout": "180"}
	}
	require.Equal(t, want, keys, "Slurm %s: the prolog/epilog bounds in %s", s, conf["SLURM_CONF"])
}
