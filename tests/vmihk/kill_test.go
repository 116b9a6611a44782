package vmihk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ioctl"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// setKey rewrites the test's lwk.conf with key=value ("" removes the key).
// The file stays root-owned and 0644, as TestKillAfterStep needs.
func (v *vm) setKey(key, value string) {
	v.t.Helper()
	b, err := os.ReadFile(v.conf)
	require.NoError(v.t, err)
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.HasPrefix(l, key+"=") {
			lines = append(lines, l)
		}
	}
	if value != "" {
		lines = append(lines, key+"="+value)
	}
	require.NoError(v.t, os.WriteFile(v.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
}

// setKillAfter sets lwk.conf's TestKillAfterStep ("" removes it).
func (v *vm) setKillAfter(step string) { v.setKey("TestKillAfterStep", step) }

// requireRestored checks that the driver and the kernel are as they were
// before a job: every CPU online, the job node's MemFree back (within the
// kernel's own movement), no instance, and IHK holding nothing.
func (v *vm) requireRestored(what string, before kernelState) {
	v.t.Helper()
	settle(v.t)
	after := readKernel(v.t)
	require.Equal(v.t, before.online, after.online, "%s: CPUs back online", what)
	require.Empty(v.t, after.instances, "%s: no instance left", what)
	v.t.Logf("%s: node %d MemFree %+d KiB against before", what, jobNode, (int64(after.memFree)-int64(before.memFree))>>10)
	require.InDelta(v.t, float64(before.memFree), float64(after.memFree), float64(memNoise),
		"%s: node %d MemFree back to its level before the job", what, jobNode)
	st := v.status()
	require.Empty(v.t, st.OSInstances, "%s: lwkctl status", what)
	require.Empty(v.t, st.ReservedCPUs, "%s: no CPU reservation", what)
	require.Empty(v.t, st.ReservedMemory, "%s: no memory reservation", what)
	require.Empty(v.t, st.Jobs, "%s: no journal", what)
}

// killedBySIGKILL reports whether err is a process's death by SIGKILL.
func killedBySIGKILL(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestKillAtEveryStep kills the prolog right after each of its steps
// (lwk.conf TestKillAfterStep) against the real driver, runs the epilog,
// and requires the driver and the kernel exactly as before the job.
func TestKillAtEveryStep(t *testing.T) {
	v := newVM(t)
	spec := fmt.Sprintf("mck:mem=%dM", lwkBytes>>20)
	settle(t)
	before := readKernel(t)
	require.Equal(t, "0-3", before.online)
	require.Empty(t, before.instances)
	for i, step := range steps.All {
		job := 100 + i
		v.setKillAfter(step)
		out, err := v.run("lwk-prolog", job, spec)
		require.True(t, killedBySIGKILL(err), "prolog killed after %s: err %v, output:\n%s", step, err, out)
		v.setKillAfter("")
		out, err = v.run("lwk-epilog", job, spec)
		require.NoError(t, err, "epilog after a prolog killed after %s:\n%s", step, out)
		v.requireRestored("killed after "+step, before)
	}
}

// TestKillAfterStepRefusedInWritableConf: a group-writable lwk.conf makes
// the test-only key an error, and the prolog boots nothing.
func TestKillAfterStepRefusedInWritableConf(t *testing.T) {
	v := newVM(t)
	spec := fmt.Sprintf("mck:mem=%dM", lwkBytes>>20)
	settle(t)
	before := readKernel(t)
	v.setKillAfter(steps.Boot)
	require.NoError(t, os.Chmod(v.conf, 0o664))
	out, err := v.run("lwk-prolog", 150, spec)
	require.Error(t, err)
	require.False(t, killedBySIGKILL(err), "the key must not be honoured")
	require.Contains(t, out, "TestKillAfterStep in "+v.conf+" refused: the file is writable by group or others")
	out, err = v.run("lwk-epilog", 150, spec)
	require.NoError(t, err, out)
	v.requireRestored("refused key", before)
}

// TestDestroyRefusedWhileHeld: while a process holds /dev/mcosN open, the
// driver refuses DESTROY_OS with EBUSY (the kernel's open count); once it
// is closed the epilog's teardown succeeds.
func TestDestroyRefusedWhileHeld(t *testing.T) {
	v := newVM(t)
	spec := fmt.Sprintf("mck:mem=%dM", lwkBytes>>20)
	settle(t)
	before := readKernel(t)
	out, err := v.run("lwk-prolog", 160, spec)
	require.NoError(t, err, out)
	during := readKernel(t)
	require.Equal(t, []string{"/dev/mcos0"}, during.instances)

	held, err := os.Open("/dev/mcos0")
	require.NoError(t, err)
	c, err := ioctl.New("/dev")
	require.NoError(t, err)
	err = c.DestroyOS(context.Background(), 0)
	var ie *ihk.Error
	require.ErrorAs(t, err, &ie, "DESTROY_OS while /dev/mcos0 is open")
	require.Equal(t, syscall.EBUSY, ie.Errno, "%v", err)
	require.Equal(t, []string{"/dev/mcos0"}, readKernel(t).instances, "the refused DESTROY left the instance")

	require.NoError(t, held.Close())
	out, err = v.run("lwk-epilog", 160, spec)
	require.NoError(t, err, out)
	v.requireRestored("destroy after close", before)
}
