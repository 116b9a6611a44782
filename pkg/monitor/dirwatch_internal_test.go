package monitor

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// inotifyEvent encodes one event as the kernel does, the name NUL-padded
// to a multiple of 16 bytes.
func inotifyEvent(mask uint32, name string) []byte {
	n := 0
	if name != "" {
		n = (len(name) + 16) / 16 * 16
	}
	b := make([]byte, unix.SizeofInotifyEvent+n)
	binary.NativeEndian.PutUint32(b[0:4], 1)
	binary.NativeEndian.PutUint32(b[4:8], mask)
	binary.NativeEndian.PutUint32(b[12:16], uint32(n))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestRelevantEvents(t *testing.T) {
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		read []byte
		want bool
	}{
		{"journal temp file written", cat(
			inotifyEvent(unix.IN_CREATE, ".tmp-job-7-123"),
			inotifyEvent(unix.IN_CLOSE_WRITE, ".tmp-job-7-123"),
			inotifyEvent(unix.IN_MOVED_FROM, ".tmp-job-7-123")), false},
		{"journal renamed into place", cat(
			inotifyEvent(unix.IN_MOVED_FROM, ".tmp-job-7-123"),
			inotifyEvent(unix.IN_MOVED_TO, "job-7.journal")), true},
		{"marker removed", inotifyEvent(unix.IN_DELETE, "job-7"), true},
		{"name of exactly 16 bytes", inotifyEvent(unix.IN_CREATE, "job-123456.jrnl_"), true},
		{"queue overflow", inotifyEvent(unix.IN_Q_OVERFLOW, ""), true},
		{"watched directory removed", inotifyEvent(unix.IN_IGNORED, ""), true},
		{"truncated header", inotifyEvent(unix.IN_CREATE, ".tmp")[:8], true},
		{"truncated name", inotifyEvent(unix.IN_CREATE, ".tmp-job-7-123")[:unix.SizeofInotifyEvent+4], true},
		{"empty read", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, relevantEvents(tc.read))
		})
	}
}

// signals counts what w delivers in d.
func signals(w *dirWatch, d time.Duration) int {
	n := 0
	deadline := time.After(d)
	for {
		select {
		case <-w.C():
			n++
		case <-deadline:
			return n
		}
	}
}

func TestDirWatchIgnoresTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := newDirWatchSettle(10*time.Millisecond, 10*time.Millisecond, dir)
	require.NoError(t, err)
	defer w.Close()
	for i := range 5 {
		tmp := filepath.Join(dir, ".tmp-job-7-"+strconv.Itoa(i))
		require.NoError(t, os.WriteFile(tmp, []byte("x"), 0o600))
		require.NoError(t, os.Rename(tmp, filepath.Join(dir, ".other")))
		require.NoError(t, os.Remove(filepath.Join(dir, ".other")))
	}
	require.Zero(t, signals(w, 300*time.Millisecond), "temporary files signalled a rescan")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "job-7"), []byte("x"), 0o600))
	require.Equal(t, 1, signals(w, 2*time.Second), "a marker's creation was not signalled once")
}

func TestDirWatchSignalsABurstOnce(t *testing.T) {
	dir := t.TempDir()
	w, err := newDirWatchSettle(400*time.Millisecond, time.Minute, dir)
	require.NoError(t, err)
	defer w.Close()
	for i := range 20 {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "job-"+strconv.Itoa(i)), []byte("x"), 0o600))
	}
	start := time.Now()
	select {
	case <-w.C():
	case <-time.After(10 * time.Second):
		t.Fatal("no signal after a burst of changes")
	}
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "signalled before the directory settled")
	require.Zero(t, signals(w, time.Second), "one burst signalled more than once")
}

func TestDirWatchMaxDelayBoundsTheWait(t *testing.T) {
	dir := t.TempDir()
	w, err := newDirWatchSettle(time.Hour, 50*time.Millisecond, dir)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "job-7"), []byte("x"), 0o600))
	select {
	case <-w.C():
	case <-time.After(10 * time.Second):
		t.Fatal("a change waited past the maximum delay")
	}
}
