package devperm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("needs root to chown and to act as other users (CI runs as root; LWK_FORCE_ROOT_TESTS=1 forces)")
	}
}

// openAs opens path read-write as uid, in a child process (no shell).
func openAs(t *testing.T, uid uint32, path string, chmod bool) error {
	t.Helper()
	args := []string{"/usr/bin/test", "-r", path, "-a", "-w", path}
	if chmod {
		args = []string{"/bin/chmod", "0666", path}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return cmd.Run()
}

func TestGrantGivesOnlyTheUserAccess(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	// Other users must reach the file: t.TempDir's directories are 0700.
	require.NoError(t, os.Chmod(dir, 0o711))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	dev := filepath.Join(dir, "mcos0")
	require.NoError(t, os.WriteFile(dev, nil, 0o644))
	before, err := Current(dev)
	require.NoError(t, err)

	require.NoError(t, Grant(dev, 65534))
	got, err := Current(dev)
	require.NoError(t, err)
	require.Equal(t, 0, got.UID, "the device stays root's")
	users, err := Granted(dev)
	require.NoError(t, err)
	require.Equal(t, []int{65534}, users)

	require.NoError(t, openAs(t, 65534, dev, false), "the job's user can open it read-write")
	require.Error(t, openAs(t, 1, dev, false), "another user cannot")
	require.Error(t, openAs(t, 65534, dev, true), "the job's user cannot chmod it open to others")

	require.NoError(t, Restore(dev, before))
	got, err = Current(dev)
	require.NoError(t, err)
	require.Equal(t, before, got)
	users, err = Granted(dev)
	require.NoError(t, err)
	require.Empty(t, users)
	require.Error(t, openAs(t, 65534, dev, false), "access is gone after Restore")
}

func TestRefusesSymlinksAndDirs(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, nil, 0o600))
	link := filepath.Join(dir, "mcos0")
	require.NoError(t, os.Symlink(target, link))

	for _, tc := range []struct{ name, path string }{
		{"symlink", link},
		{"directory", dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Grant(tc.path, 65534)
			require.Error(t, err)
			require.Contains(t, err.Error(), "not a character device")
		})
	}
	require.ErrorContains(t, Grant(target, -1), "bad uid")
}

func TestRestoreMissingIsSuccess(t *testing.T) {
	require.NoError(t, Restore(filepath.Join(t.TempDir(), "mcos7"), Owner{}))
	_, err := Granted(filepath.Join(t.TempDir(), "mcos7"))
	require.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
}

func TestEncodeACL(t *testing.T) {
	b := encodeACL(1000)
	require.Len(t, b, 4+5*aclEntryBytes)
	require.Equal(t, []byte{2, 0, 0, 0}, b[:4], "version 2, little-endian")
	// The user entry: tag 0x02, perm rw, id 1000.
	require.Equal(t, []byte{0x02, 0, 0x06, 0, 0xe8, 0x03, 0, 0}, b[12:20])
}
