package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWrite(t *testing.T) {
	for _, durable := range []bool{false, true} {
		name := "fast"
		if durable {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			opt := Options{TempPrefix: ".tmp-", Durable: durable}
			require.NoError(t, Write(dir, "f", []byte("one"), opt))
			require.NoError(t, Write(dir, "f", []byte("two"), opt))
			b, err := os.ReadFile(filepath.Join(dir, "f"))
			require.NoError(t, err)
			require.Equal(t, "two", string(b))
			require.Equal(t, []string{"f"}, entries(t, dir), "only the target is left")
			fi, err := os.Stat(filepath.Join(dir, "f"))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "default mode")
		})
	}
}

func TestWriteSetsModeDespiteUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	require.NoError(t, Write(dir, "f", []byte("x"), Options{TempPrefix: ".tmp-", Perm: 0o644}))
	fi, err := os.Stat(filepath.Join(dir, "f"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
}

func TestWriteFailuresLeaveNoTemp(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory: the rename fails.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "busy", "x"), 0o700))
	err := Write(dir, "busy", []byte("x"), Options{TempPrefix: ".tmp-"})
	require.Error(t, err)
	require.Equal(t, []string{"busy"}, entries(t, dir))

	tests := []struct {
		name, file, prefix, wantErr string
	}{
		{name: "empty name", file: "", prefix: ".tmp-", wantErr: "bad file name"},
		{name: "name with slash", file: "a/b", prefix: ".tmp-", wantErr: "bad file name"},
		{name: "dot-dot", file: "..", prefix: ".tmp-", wantErr: "bad file name"},
		{name: "no temp prefix", file: "f", prefix: "", wantErr: "bad temp prefix"},
		{name: "temp prefix with slash", file: "f", prefix: "../x", wantErr: "bad temp prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, Write(dir, tc.file, []byte("x"), Options{TempPrefix: tc.prefix}), tc.wantErr)
			require.Equal(t, []string{"busy"}, entries(t, dir))
		})
	}
	t.Run("missing dir", func(t *testing.T) {
		err := Write(filepath.Join(dir, "nope"), "f", []byte("x"), Options{TempPrefix: ".tmp-"})
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

// TestWriteOnFullFileSystem fills a small tmpfs: the write of the temp
// file fails with ENOSPC, and the temp file must not stay behind to keep
// the file system full.
func TestWriteOnFullFileSystem(t *testing.T) {
	dir := fullTmpfs(t)
	data := bytes.Repeat([]byte("x"), 64<<10)
	for _, durable := range []bool{false, true} {
		err := Write(dir, "f", data, Options{TempPrefix: ".tmp-", Durable: durable})
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.Empty(t, entries(t, dir), "temp file left behind (durable=%v)", durable)
	}
	// A write that fits still works, so the failure was the size.
	require.NoError(t, Write(dir, "f", []byte("small"), Options{TempPrefix: ".tmp-", Durable: true}))
}

// fullTmpfs mounts a 16 KiB tmpfs on a temp dir for the test (root only;
// the test is skipped with the reason otherwise).
func fullTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs that fills up")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16k,mode=0700"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot mount tmpfs here: %v", err)
		}
		require.NoError(t, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}
