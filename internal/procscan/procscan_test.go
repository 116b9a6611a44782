package procscan

import (
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// A child of this test shows up with its executable, its command line and
// its owner, and a process of another user does not count as ours.
func TestSeesAChild(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "30")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	fs := procfs.Default()

	sleep, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	require.NoError(t, err)
	require.Equal(t, sleep, Exes(fs)[pid])
	require.Equal(t, "/bin/sleep 30", Cmdline(fs, pid))

	mine := OfUser(fs, os.Getuid())
	require.Contains(t, mine, pid)
	require.Contains(t, mine, os.Getpid())
	st, err := fs.Stat(pid)
	require.NoError(t, err)
	require.Equal(t, st.StartTicks, mine[pid])
	require.NotContains(t, OfUser(fs, os.Getuid()+12345), pid)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.NotContains(t, Exes(fs), pid)
	require.Empty(t, Cmdline(fs, pid))
}
