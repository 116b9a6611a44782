package proxycgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// The test binary doubles as the confined workload: with
// LWK_CGROUP_TEST_HELPER set it waits for a line on stdin (so that it is
// confined before it does anything) and then spins, sleeps or allocates.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LWK_CGROUP_TEST_HELPER"); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
	switch mode {
	case "spin":
		for x := 0; ; x++ {
			_ = x
		}
	case "alloc":
		// 256 MiB, every page touched, far above the test's limit.
		mem := make([]byte, 256<<20)
		for i := 0; i < len(mem); i += 4096 {
			mem[i] = 1
		}
		fmt.Println("allocated", len(mem))
		return 0
	default:
		time.Sleep(time.Minute)
	}
	return 0
}

// realV1 gives a manager on the node's real cgroup v1 hierarchies, under a
// prefix of this test's own, removed afterwards. Skips unless root on a v1
// node; LWK_REQUIRE_CGROUP_V1=1 turns the skip into a failure (CI).
func realV1(t *testing.T) Manager {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("LWK_REQUIRE_CGROUP_V1") == "1" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("needs root to create cgroups")
		return Manager{}
	}
	layout, err := Detect(procfs.Default())
	if err != nil || layout.Mode != V1 {
		fail("needs writable cgroup v1 cpuset, memory and cpu hierarchies (layout %q, %v)", layout.Mode, err)
		return Manager{}
	}
	m := Manager{Layout: layout, FS: Kernel{}, Prefix: fmt.Sprintf("slurm-lwk-test-confine-%d", os.Getpid())}
	t.Cleanup(func() {
		for _, c := range Controllers {
			_ = Kernel{}.Remove(filepath.Join(layout.V1[c], m.Prefix))
		}
	})
	return m
}

// startHelper starts the test binary as a workload, as uid (0: root), not
// yet released.
func startHelper(t *testing.T, mode string, uid uint32) (*exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LWK_CGROUP_TEST_HELPER="+mode)
	if uid != 0 {
		// The test binary sits in a root-only build dir: a shell waits instead.
		cmd = exec.Command("/bin/sh", "-c", "read x; exec sleep 60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, func() { _, _ = in.Write([]byte("\n")) }
}

func procStatus(t *testing.T, pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

func TestRealV1ConfinementAndUserCannotEscape(t *testing.T) {
	m := realV1(t)
	const job = 4100000001
	lim := Limits{CPUs: cpuset.New(0), MemoryBytes: 64 << 20, CPUQuotaUS: 50000, CPUPeriodUS: 100000, BatchCPUs: cpuset.New(0)}
	rec, err := m.Create(job, lim)
	require.NoError(t, err)

	// Every directory and file root-owned, nothing writable by others.
	for _, c := range Controllers {
		for _, dir := range []string{filepath.Dir(rec.Proxies[c]), rec.Proxies[c]} {
			for _, p := range []string{dir, filepath.Join(dir, "cgroup.procs")} {
				fi, err := os.Stat(p)
				require.NoError(t, err)
				st := fi.Sys().(*syscall.Stat_t)
				require.Equal(t, uint32(0), st.Uid, p)
				require.Zero(t, fi.Mode().Perm()&0o022, "%s is %v", p, fi.Mode())
			}
		}
	}
	rd := func(c, f string) string {
		s, err := Kernel{}.Read(rec.Proxies[c], f)
		require.NoError(t, err)
		return strings.TrimSpace(s)
	}
	require.Equal(t, "0", rd("cpuset", "cpuset.cpus"))
	require.Equal(t, strconv.Itoa(64<<20), rd("memory", "memory.limit_in_bytes"))
	require.Equal(t, "100000", rd("cpu", "cpu.cfs_period_us"))
	require.Equal(t, "50000", rd("cpu", "cpu.cfs_quota_us"))

	// A proxy of an unprivileged user (nobody), confined before it runs.
	cmd, release := startHelper(t, "sleep", 65534)
	pid := cmd.Process.Pid
	require.NoError(t, m.Join(rec, pid, Proxy))
	release()
	require.Equal(t, "0", procStatus(t, pid, "Cpus_allowed_list"))
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	require.NoError(t, err)
	for _, c := range Controllers {
		require.Contains(t, string(cg), ":/"+m.Prefix+"/job-4100000001/proxies\n", c)
	}

	// The user can neither move it out nor widen its CPUs.
	asNobody := func(name string, args ...string) (string, error) {
		c := exec.Command(name, args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := c.CombinedOutput()
		return string(out), err
	}
	for _, target := range []string{m.Layout.V1["cpuset"], filepath.Join(m.Layout.V1["cpuset"], m.Prefix, "job-4100000001", "batch"), m.Layout.V1["memory"], m.Layout.V1["cpu"]} {
		out, err := asNobody("/bin/sh", "-c", fmt.Sprintf("echo %d > %s/cgroup.procs", pid, target))
		require.Error(t, err, "nobody moved its proxy into %s: %s", target, out)
		require.Contains(t, out, "Permission denied")
	}
	for _, file := range []string{"cpuset.cpus", "memory.limit_in_bytes", "cpu.cfs_quota_us"} {
		c := map[string]string{"cpuset.cpus": "cpuset", "memory.limit_in_bytes": "memory", "cpu.cfs_quota_us": "cpu"}[file]
		out, err := asNobody("/bin/sh", "-c", fmt.Sprintf("echo -1 > %s/%s", rec.Proxies[c], file))
		require.Error(t, err, "nobody changed %s: %s", file, out)
	}
	if _, err := exec.LookPath("taskset"); err == nil {
		out, err := asNobody("taskset", "-pc", "0-1", strconv.Itoa(pid))
		t.Logf("taskset as the user: %v %s", err, strings.TrimSpace(out))
		require.Equal(t, "0", procStatus(t, pid, "Cpus_allowed_list"), "sched_setaffinity stays inside the cpuset")
	}

	// Teardown: busy while the proxy lives, gone after.
	pids, err := m.Members(job)
	require.NoError(t, err)
	require.Equal(t, []int{pid}, pids)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.NoError(t, m.Remove(job))
	require.NoError(t, m.Remove(job), "gone is success")
	for _, c := range Controllers {
		_, err := os.Stat(filepath.Join(m.Layout.V1[c], m.Prefix, "job-4100000001"))
		require.ErrorIs(t, err, os.ErrNotExist)
	}
}

func TestRealV1QuotaThrottlesBusyLoop(t *testing.T) {
	m := realV1(t)
	const job = 4100000002
	// 5% of one CPU: low enough that the loop reaches it even on a loaded
	// shared machine, so that the kernel must throttle it.
	lim := Limits{CPUs: cpuset.New(0), MemoryBytes: 64 << 20, CPUQuotaUS: 5000, CPUPeriodUS: 100000, BatchCPUs: cpuset.New(0)}
	rec, err := m.Create(job, lim)
	require.NoError(t, err)
	cmd, release := startHelper(t, "spin", 0)
	require.NoError(t, m.Join(rec, cmd.Process.Pid, Proxy))
	release()
	time.Sleep(200 * time.Millisecond)
	s0, err := m.Stats(job)
	require.NoError(t, err)
	t0 := time.Now()
	time.Sleep(2 * time.Second)
	s1, err := m.Stats(job)
	require.NoError(t, err)
	wall := time.Since(t0)
	share := float64(s1.Usage-s0.Usage) / float64(wall)
	t.Logf("busy loop under a 5%% quota: %.3f of a CPU; periods %d, throttled %d (%s)",
		share, s1.Periods-s0.Periods, s1.Throttled-s0.Throttled, s1.ThrottledTime-s0.ThrottledTime)
	require.LessOrEqual(t, share, 0.07, "quota + 2%%")
	require.Greater(t, share, 0.01, "the loop ran at all")
	require.Greater(t, s1.Throttled-s0.Throttled, uint64(5), "the kernel throttled it")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.NoError(t, m.Remove(job))
}

func TestRealV1ProxyOverMemoryLimitIsKilled(t *testing.T) {
	m := realV1(t)
	const job = 4100000003
	lim := Limits{CPUs: cpuset.New(0), MemoryBytes: 32 << 20, CPUQuotaUS: 100000, CPUPeriodUS: 100000, BatchCPUs: cpuset.New(0)}
	rec, err := m.Create(job, lim)
	require.NoError(t, err)
	cmd, release := startHelper(t, "alloc", 0)
	require.NoError(t, m.Join(rec, cmd.Process.Pid, Proxy))
	release()
	err = cmd.Wait()
	// What the user's step sees: the proxy dies of SIGKILL (srun: "task 0:
	// Killed", exit code 0:9; a shell reports 137).
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	ws := ee.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled(), "exit %v", err)
	require.Equal(t, syscall.SIGKILL, ws.Signal())
	st, err := m.Stats(job)
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.OOMKills, uint64(1))
	require.NoError(t, m.Remove(job))
}
