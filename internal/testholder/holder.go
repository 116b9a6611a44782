// Package testholder builds a small C program that holds a device open the
// ways a job's process can hide it (a thread with its own file table, a
// non-dumpable process), for the device-holder tests of devholders and
// teardown. Test support only.
package testholder

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed testdata/holder.c
var source []byte

// Build compiles the holder into a fresh directory that every user can
// enter (mode 0755 binary) and returns its path. It skips the test when no
// C compiler is found, unless LWK_REQUIRE_CC is set (as in CI).
func Build(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		if os.Getenv("LWK_REQUIRE_CC") != "" {
			t.Fatalf("no C compiler, and LWK_REQUIRE_CC is set: %v", err)
		}
		t.Skip("needs a C compiler (cc) to build the device holder")
	}
	dir, err := os.MkdirTemp("", "lwk-holder-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "holder.c")
	bin := filepath.Join(dir, "holder")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cc, "-Wall", "-Wextra", "-Werror", "-pthread", "-o", bin, src).CombinedOutput()
	if err != nil {
		t.Fatalf("build the device holder: %v\n%s", err, out)
	}
	return bin
}
