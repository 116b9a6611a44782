package vmihk

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMain takes the job's CPUs offline and back once before any test. The
// first offlining of a CPU gives its per-CPU page lists back to the buddy
// allocator: some 20 MiB of node 1's MemFree that would otherwise appear
// during the first test that reserves CPUs and stay. Afterwards, with the
// tests pinned to the OS cores (scripts/vm-testdrv runs them under taskset
// -c 0,1), nothing refills those lists and MemFree compares within a few
// MiB.
func TestMain(m *testing.M) {
	if os.Getenv("LWK_VM_NODE") == "1" {
		if err := cycleCPUs("/sys/devices/system/cpu", 2, 3); err != nil {
			fmt.Fprintf(os.Stderr, "vmihk: %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// cycleCPUs takes each CPU offline, then all back online, through sysfs
// under cpuDir.
func cycleCPUs(cpuDir string, cpus ...int) error {
	for _, state := range []string{"0", "1"} {
		for _, c := range cpus {
			p := filepath.Join(cpuDir, fmt.Sprintf("cpu%d", c), "online")
			if err := os.WriteFile(p, []byte(state+"\n"), 0o644); err != nil {
				return fmt.Errorf("set %s to %s: %w", p, state, err)
			}
		}
	}
	return nil
}
