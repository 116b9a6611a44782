//go:build cluster

package cluster

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
)

// threeNodeScript runs six tasks on the three nodes through mcexec, then
// holds the job (and its LWKs) until the test says "go".
const threeNodeScript = "#!/bin/bash\n" + probeScript + `TAG=mpi: srun -N3 -n6 /bin/sh -c "$probe"
echo "rc=$?"
touch ran
while [ ! -e go ]; do sleep 0.2; done
`

// TestThreeNodeJobBootsOneLWKPerNode: `sbatch -N3 --lwk-mode=mck` boots one
// LWK on each node, `srun -N3 -n6` runs every task through mcexec on its own
// node (two per node), and the job's accounting record, gathered from the
// three nodes' monitors, lists three nodes.
func TestThreeNodeJobBootsOneLWKPerNode(t *testing.T) {
	c := newCluster(t)
	c.assertPristine(settleTimeout)
	dir := c.workdir()
	id := c.sbatch(dir, "mpi", "--lwk-mode=mck", "-N3", "--time=5", c.writeScript(dir, "mpi.sh", threeNodeScript))
	c.waitFile(filepath.Join(dir, "ran"), "", 1, jobTimeout)
	f := c.jobFields(id)
	require.Equal(t, "lwk", f["Partition"], "job_submit.lua routes LWK jobs")
	require.Equal(t, "lwkn[1-3]", f["NodeList"])
	for _, h := range hosts {
		c.requireBooted(h, id)
	}

	c.touch(filepath.Join(dir, "go"))
	comps := c.waitJob(id, jobTimeout)
	out := readFile(filepath.Join(dir, "mpi.out"))
	require.Equal(t, "COMPLETED", comps[0]["JobState"], "out: %s\nerr: %s", out, readFile(filepath.Join(dir, "mpi.err")))
	require.Contains(t, out, "rc=0\n")
	p := parseProbe(t, out, "mpi:")
	require.Len(t, p, 6, "out:\n%s", out)
	perHost := map[string]int{}
	for rank, line := range p {
		require.True(t, line.wrapped(2), "rank %d on %s: parent %q", rank, line.Host, line.Parent)
		require.Equal(t, line.Node, line.Host, "rank %d: Slurm's node and the host's name", rank)
		perHost[line.Host]++
	}
	require.Equal(t, map[string]int{"lwkn1": 2, "lwkn2": 2, "lwkn3": 2}, perHost)

	rec := c.accountingRecord(id)
	require.Equal(t, uint32(id), rec.JobID)
	require.Equal(t, 3, rec.Nodes)
	require.Equal(t, 3, rec.Reported, "every node's monitor answered")
	require.Zero(t, rec.Partial, "the epilogs' final readings were used")
	var nodes []string
	for _, n := range rec.PerNode {
		nodes = append(nodes, n.Node)
	}
	sort.Strings(nodes)
	require.Equal(t, hosts, nodes)
	c.assertPristine(settleTimeout)
}

// accountingRecord waits for the job's SystemComment record and decodes it
// with `lwkctl stats ID --json`, run where slurmctld runs (its sacct reads
// the cluster's slurm.conf).
func (c *cluster) accountingRecord(id int) accounting.JobRecord {
	c.t.Helper()
	var field string
	deadline := time.Now().Add(45 * time.Second)
	for {
		field = strings.TrimSpace(c.must("sacct", "-n", "-X", "-j", strconv.Itoa(id), "-o", "SystemComment%4000"))
		if strings.HasPrefix(field, accounting.Prefix) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.True(c.t, strings.HasPrefix(field, accounting.Prefix), "sacct SystemComment of job %d: %q", id, field)
	out := c.inHost("lwkctld", filepath.Join(c.binDir, "lwkctl"), "stats", strconv.Itoa(id), "--json")
	var rec accounting.JobRecord
	require.NoError(c.t, json.Unmarshal([]byte(out), &rec), out)
	return rec
}

// TestPrologFailureOnOneNodeLeavesOthersClean: an injected boot failure on
// lwkn2 only. Slurm handles it as a prolog failure: lwkn2 is drained with
// an "lwk:" reason naming the step, the job is requeued and held, and the
// batch script never runs. lwkn1 and lwkn3 booted their LWK, and the job's
// epilog on them tore it down: they stay in service and pristine.
func TestPrologFailureOnOneNodeLeavesOthersClean(t *testing.T) {
	c := newCluster(t)
	c.assertPristine(settleTimeout)
	const bad = "lwkn2"
	c.setFaults(bad, "fault boot")
	t.Cleanup(func() {
		if st := c.nodeFields(bad)["State"]; strings.Contains(st, "DRAIN") {
			c.run(false, "", "scontrol", "update", "nodename="+bad, "state=resume")
		}
	})
	dir := c.workdir()
	id := c.sbatch(dir, "fail", "--lwk-mode=mck", "-N3", "--time=5", c.writeScript(dir, "fail.sh", "#!/bin/bash\necho ran\n"))
	comps := c.waitJobFor(id, jobTimeout, "requeued and held", func(comps []map[string]string) bool {
		return comps[0]["JobState"] == "PENDING" && strings.Contains(comps[0]["Reason"], "held")
	})
	f := comps[0]
	require.Equal(t, "launch_failed_requeued_held", f["Reason"])
	require.NotEqual(t, "0", f["Restarts"])
	require.NotContains(t, readFile(filepath.Join(dir, "fail.out")), "ran", "the batch script ran despite the failed prolog")

	n := c.nodeFields(bad)
	require.Contains(t, n["State"], "DRAIN", "%s: %v", bad, n)
	require.Regexp(t, `^lwk: `, n["Reason"])
	require.Contains(t, n["Reason"], "boot", "the reason must name the failed step")
	require.Contains(t, n["Reason"], "job "+strconv.Itoa(id))
	require.False(t, c.bootedLog(bad, id), "%s booted an LWK for job %d despite the fault", bad, id)

	// The failed node rolled back; the others booted and were cleaned.
	require.True(t, c.status(bad).pristine(), "%s after its failed prolog", bad)
	require.Empty(t, c.leftovers(bad))
	for _, h := range hosts {
		if h == bad {
			continue
		}
		require.True(t, c.bootedLog(h, id), "%s: no LWK was booted for job %d", h, id)
		deadline := time.Now().Add(settleTimeout)
		for {
			st := c.nodeFields(h)["State"]
			s := c.status(h)
			left := c.leftovers(h)
			if st == "IDLE" && s.pristine() && len(left) == 0 {
				break
			}
			require.False(t, time.Now().After(deadline), "%s: State=%s status %+v left %v", h, st, s, left)
			time.Sleep(pollInterval)
		}
	}

	c.must("scancel", strconv.Itoa(id))
	c.waitJob(id, jobTimeout)
	c.must("scontrol", "update", "nodename="+bad, "state=resume")
	c.assertPristine(settleTimeout)
}

// holdScript starts one long task per node through mcexec.
const holdScript = `#!/bin/bash
srun -N3 -n3 /bin/sh -c 'echo started; exec sleep 600'
`

// TestScancelThreeNodeJobLeavesAllPristine: scancel of a running three-node
// LWK job ends every task, and every node's epilog destroys its LWK: all
// three nodes end idle, undrained and pristine.
func TestScancelThreeNodeJobLeavesAllPristine(t *testing.T) {
	c := newCluster(t)
	c.assertPristine(settleTimeout)
	dir := c.workdir()
	id := c.sbatch(dir, "hold", "--lwk-mode=mck", "-N3", "--time=5", c.writeScript(dir, "hold.sh", holdScript))
	c.waitFile(filepath.Join(dir, "hold.out"), "started", 3, jobTimeout)
	for _, h := range hosts {
		c.requireBooted(h, id)
	}
	require.Equal(t, 3, c.mcexecCount(), "one mcexec stand-in per node")

	r := c.run(true, dir, "scancel", strconv.Itoa(id))
	require.NoError(t, r.err, "%s", r)
	comps := c.waitJob(id, jobTimeout)
	require.Equal(t, "CANCELLED", comps[0]["JobState"])
	c.assertPristine(settleTimeout)
	for _, h := range hosts {
		require.True(t, c.bootedLog(h, id), "%s: the LWK of job %d was torn down by the epilog", h, id)
	}
}

// hetScript runs a step on each component, one on the Linux component that
// does not say --lwk-mode=off, and one across both components.
const hetScript = "#!/bin/bash\n" + probeScript + `TAG=lwk: srun --het-group=0 /bin/sh -c "$probe"
TAG=linux: srun --het-group=1 --lwk-mode=off /bin/sh -c "$probe"
TAG=inherited: srun --het-group=1 /bin/sh -c "$probe"
echo "inherited-rc=$?"
TAG=both: srun --het-group=0,1 /bin/sh -c "$probe"
echo "both-rc=$?"
`

// TestHeterogeneousJobs: the components of a heterogeneous job are LWK or
// Linux jobs each by its own --lwk-mode (sbatch carries the option over to
// the following components, so a Linux component says --lwk-mode=off), and
// job_submit.lua routes each component on its own: an LWK component that
// names a Linux partition is refused at submit. In a mixed job the LWK
// component's nodes boot an LWK and its steps run through mcexec; the Linux
// component's nodes boot none. The batch script runs on the first
// component, so its steps inherit that component's --lwk-mode: a step on
// the Linux component must say --lwk-mode=off, and one that does not, or
// that spans both components, is refused on the Linux nodes (no LWK there)
// with a message saying why, and fails; nothing is left behind.
func TestHeterogeneousJobs(t *testing.T) {
	c := newCluster(t)
	c.assertPristine(settleTimeout)
	dir := c.workdir()

	t.Run("LWK component in a Linux partition refused", func(t *testing.T) {
		r := c.run(true, dir, "sbatch", "--parsable", "-N1", "--lwk-mode=mck", ":", "-N1", "-p", "debug", "--wrap=true")
		require.Error(t, r.err, "%s", r)
		require.Contains(t, r.stderr, "lwk: --lwk-mode jobs run in partition lwk, not debug")
	})

	t.Run("LWK and Linux components", func(t *testing.T) {
		id := c.sbatch(dir, "het", "--time=5", "-N1", "--lwk-mode=mck", ":", "-N1", "--lwk-mode=off",
			c.writeScript(dir, "het.sh", hetScript))
		comps := c.waitJob(id, jobTimeout)
		out := readFile(filepath.Join(dir, "het.out"))
		errText := readFile(filepath.Join(dir, "het.err"))
		require.Len(t, comps, 2)
		require.Equal(t, "lwk", comps[0]["Partition"], "component 0 (--lwk-mode=mck)")
		require.Equal(t, "debug", comps[1]["Partition"], "component 1 (--lwk-mode=off)")
		require.NotEqual(t, comps[0]["NodeList"], comps[1]["NodeList"])
		for i, f := range comps {
			require.Equal(t, "COMPLETED", f["JobState"], "component %d\nout: %s\nerr: %s", i, out, errText)
		}

		lwk := parseProbe(t, out, "lwk:")
		require.Len(t, lwk, 1, "out:\n%s", out)
		require.True(t, lwk[0].wrapped(1), "LWK component: parent %q", lwk[0].Parent)
		require.Equal(t, comps[0]["NodeList"], lwk[0].Host)
		linux := parseProbe(t, out, "linux:")
		require.Len(t, linux, 1, "out:\n%s", out)
		require.False(t, linux[0].wrapped(1), "Linux component: parent %q", linux[0].Parent)
		require.Equal(t, comps[1]["NodeList"], linux[0].Host)

		linuxID, err := strconv.Atoi(comps[1]["JobId"])
		require.NoError(t, err, "component 1: JobId %q", comps[1]["JobId"])
		require.True(t, c.bootedLog(comps[0]["NodeList"], id), "LWK component: no LWK booted on %s", comps[0]["NodeList"])
		require.False(t, c.bootedLog(comps[1]["NodeList"], linuxID), "Linux component: an LWK booted on %s", comps[1]["NodeList"])

		require.Empty(t, parseProbe(t, out, "inherited:"), "out:\n%s", out)
		require.NotContains(t, out, "inherited-rc=0\n", "an LWK step ran on the Linux component")
		require.NotContains(t, out, "both-rc=0\n", "a step across an LWK and a Linux component ran")
		require.Contains(t, errText, "none was booted for it on this node")
		c.assertPristine(settleTimeout)
	})
}
