package affinity_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/affinity"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, c := range files {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		if c == "/" {
			require.NoError(t, os.MkdirAll(p, 0o755))
			continue
		}
		require.NoError(t, os.WriteFile(p, []byte(c), 0o644))
	}
	return root
}

func TestIRQs(t *testing.T) {
	root := writeTree(t, map[string]string{
		"proc/irq/0/smp_affinity_list":  "0-3\n",
		"proc/irq/0/timer":              "/",
		"proc/irq/24/smp_affinity_list": "2\n",
		"proc/irq/24/virtio0-requests":  "/",
		"proc/irq/9/smp_affinity_list":  "0-3\n",
		"proc/irq/default_smp_affinity": "f\n",
		"proc/irq/notanirq/whatever":    "x",
	})
	irqs, err := affinity.ReadIRQs(root)
	require.NoError(t, err)
	require.Equal(t, []affinity.IRQ{
		{Number: 0, Affinity: cpuset.New(0, 1, 2, 3), Handlers: []string{"timer"}},
		{Number: 9, Affinity: cpuset.New(0, 1, 2, 3)},
		{Number: 24, Affinity: cpuset.New(2), Handlers: []string{"virtio0-requests"}},
	}, irqs)
	require.NoError(t, affinity.SetIRQAffinity(root, 24, cpuset.New(0, 1)))
	b, err := os.ReadFile(filepath.Join(root, "proc/irq/24/smp_affinity_list"))
	require.NoError(t, err)
	require.Equal(t, "0-1", string(b))
	require.ErrorContains(t, affinity.SetIRQAffinity(root, 25, cpuset.New(0)), "irq 25")
	require.ErrorContains(t, affinity.SetIRQAffinity(root, 24, cpuset.New()), "empty")

	bad := writeTree(t, map[string]string{"proc/irq/3/smp_affinity_list": "zz\n"})
	_, err = affinity.ReadIRQs(bad)
	require.ErrorContains(t, err, "irq/3/smp_affinity_list")
}

func TestProcesses(t *testing.T) {
	root := writeTree(t, map[string]string{
		"proc/1/stat":    "1 (init) S 0 1 1 0 -1 4194560 100 0 0 0\n",
		"proc/1/status":  "Name:\tinit\nCpus_allowed_list:\t0-3\nMems_allowed_list:\t0-1\n",
		"proc/2/stat":    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0\n",
		"proc/2/status":  "Name:\tkthreadd\nCpus_allowed_list:\t0-3\nMems_allowed_list:\t0-1\n",
		"proc/77/stat":   "77 (a (b) c) R 1 77 77 0 -1 4194304 0 0 0 0\n",
		"proc/77/status": "Cpus_allowed_list:\t0-1\n",
		"proc/self/stat": "ignored",
		"proc/meminfo":   "MemTotal: 1 kB\n",
	})
	ps, err := affinity.ReadProcesses(root)
	require.NoError(t, err)
	require.Equal(t, []affinity.Process{
		{PID: 1, Comm: "init", CPUs: cpuset.New(0, 1, 2, 3), Mems: cpuset.New(0, 1)},
		{PID: 2, Comm: "kthreadd", Kernel: true, CPUs: cpuset.New(0, 1, 2, 3), Mems: cpuset.New(0, 1)},
		{PID: 77, Comm: "a (b) c", CPUs: cpuset.New(0, 1), Mems: cpuset.New()},
	}, ps)

	for name, files := range map[string]map[string]string{
		"no comm":      {"proc/5/stat": "5 init S", "proc/5/status": "Cpus_allowed_list:\t0\n"},
		"short stat":   {"proc/5/stat": "5 (x) S 1 2", "proc/5/status": "Cpus_allowed_list:\t0\n"},
		"bad flags":    {"proc/5/stat": "5 (x) S 1 2 3 4 5 z 0", "proc/5/status": "Cpus_allowed_list:\t0\n"},
		"no cpus":      {"proc/5/stat": "5 (x) S 1 2 3 4 5 0 0", "proc/5/status": "Name:\tx\n"},
		"bad cpu list": {"proc/5/stat": "5 (x) S 1 2 3 4 5 0 0", "proc/5/status": "Cpus_allowed_list:\t0-\n"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := affinity.ReadProcesses(writeTree(t, files))
			require.ErrorContains(t, err, "proc/5/st")
		})
	}
}
