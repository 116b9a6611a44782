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

// inotifyEvent encodes one event of watch wd as the kernel does, the name
// NUL-padded to a multiple of 16 bytes.
func inotifyEvent(wd int32, mask uint32, name string) []byte {
	n := 0
	if name != "" {
		n = (len(name) + 16) / 16 * 16
	}
	b := make([]byte, unix.SizeofInotifyEvent+n)
	binary.NativeEndian.PutUint32(b[0:4], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:8], mask)
	binary.NativeEndian.PutUint32(b[12:16], uint32(n))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestClassifyEvents(t *testing.T) {
	const run, journal = 1, 2
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
		want change
	}{
		{"journal temp file written", cat(
			inotifyEvent(journal, unix.IN_CREATE, ".tmp-job-7-123"),
			inotifyEvent(journal, unix.IN_CLOSE_WRITE, ".tmp-job-7-123"),
			inotifyEvent(journal, unix.IN_MOVED_FROM, ".tmp-job-7-123")), change{}},
		{"journal renamed into place", cat(
			inotifyEvent(journal, unix.IN_MOVED_FROM, ".tmp-job-7-123"),
			inotifyEvent(journal, unix.IN_MOVED_TO, "job-7.journal")), change{relevant: true}},
		{"marker renamed into place", cat(
			inotifyEvent(run, unix.IN_MOVED_FROM, ".job-123"),
			inotifyEvent(run, unix.IN_MOVED_TO, "job-7")), change{relevant: true, jobStart: true}},
		{"marker created", inotifyEvent(run, unix.IN_CREATE, "job-4294967295"), change{relevant: true, jobStart: true}},
		{"marker removed", inotifyEvent(run, unix.IN_DELETE, "job-7"), change{relevant: true}},
		{"a marker's name in the journal directory", inotifyEvent(journal, unix.IN_MOVED_TO, "job-7"), change{relevant: true}},
		{"another file of the run directory", inotifyEvent(run, unix.IN_MOVED_TO, "job-7.cgroup"), change{relevant: true}},
		{"not a job ID", inotifyEvent(run, unix.IN_MOVED_TO, "job-"), change{relevant: true}},
		{"name of exactly 16 bytes", inotifyEvent(journal, unix.IN_CREATE, "job-123456.jrnl_"), change{relevant: true}},
		{"queue overflow", inotifyEvent(-1, unix.IN_Q_OVERFLOW, ""), change{relevant: true}},
		{"watched directory removed", inotifyEvent(run, unix.IN_IGNORED, ""), change{relevant: true}},
		{"truncated header", inotifyEvent(run, unix.IN_CREATE, ".tmp")[:8], change{relevant: true}},
		{"truncated name", inotifyEvent(run, unix.IN_CREATE, ".tmp-job-7-123")[:unix.SizeofInotifyEvent+4], change{relevant: true}},
		{"empty read", nil, change{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, classifyEvents(tc.read, run))
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

// waitSignal fails the test unless w signals within d.
func waitSignal(t *testing.T, w *dirWatch, d time.Duration, what string) {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(d):
		t.Fatalf("no signal after %s", what)
	}
}

func TestDirWatchIgnoresTemporaryFiles(t *testing.T) {
	run, journal := t.TempDir(), t.TempDir()
	w, err := newDirWatchSettle(100*time.Millisecond, 10*time.Millisecond, time.Second, run, journal)
	require.NoError(t, err)
	defer w.Close()
	for _, dir := range []string{run, journal} {
		for i := range 5 {
			tmp := filepath.Join(dir, ".tmp-job-7-"+strconv.Itoa(i))
			require.NoError(t, os.WriteFile(tmp, []byte("x"), 0o600))
			require.NoError(t, os.Rename(tmp, filepath.Join(dir, ".other")))
			require.NoError(t, os.Remove(filepath.Join(dir, ".other")))
		}
	}
	require.Zero(t, signals(w, 500*time.Millisecond), "temporary files signalled a rescan")
	require.NoError(t, os.WriteFile(filepath.Join(journal, "job-7.journal"), []byte("x"), 0o600))
	waitSignal(t, w, 5*time.Second, "a journal's creation")
}

func TestDirWatchSignalsABurstOnce(t *testing.T) {
	run, journal := t.TempDir(), t.TempDir()
	w, err := newDirWatchSettle(time.Second, time.Second, time.Minute, run, journal)
	require.NoError(t, err)
	defer w.Close()
	for i := range 20 {
		require.NoError(t, os.WriteFile(filepath.Join(journal, "job-"+strconv.Itoa(i)+".journal"), []byte("x"), 0o600))
	}
	start := time.Now()
	waitSignal(t, w, 10*time.Second, "a burst of changes")
	require.GreaterOrEqual(t, time.Since(start), 800*time.Millisecond, "signalled before the directory settled")
	require.Zero(t, signals(w, 1500*time.Millisecond), "one burst signalled more than once")
}

func TestDirWatchDue(t *testing.T) {
	w := &dirWatch{settle: 50 * time.Millisecond, startSettle: 5 * time.Millisecond, maxDelay: 500 * time.Millisecond}
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name                 string
		last, first, startBy time.Time
		want                 time.Time
	}{
		{"one change", t0, t0, time.Time{}, ms(50)},
		{"settle after the last change", ms(30), t0, time.Time{}, ms(80)},
		{"a burst that keeps going", ms(480), t0, time.Time{}, ms(500)},
		{"a job start", ms(2), t0, ms(5), ms(5)},
		{"a job start late in a burst", ms(300), t0, ms(305), ms(305)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, w.due(tc.last, tc.first, tc.startBy))
		})
	}
}

// writeEvery20ms writes n journals into dir, 20 ms apart, and returns how
// many signals w gave meanwhile.
func writeEvery20ms(t *testing.T, w *dirWatch, dir string, n int) int {
	t.Helper()
	got := 0
	for i := range n {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "job-"+strconv.Itoa(i)+".journal"), []byte("x"), 0o600))
		select {
		case <-w.C():
			got++
		case <-time.After(20 * time.Millisecond):
		}
	}
	return got
}

// TestDirWatchWaitsForQuiet: changes closer together than settle are one
// burst, signalled once, after the last of them.
func TestDirWatchWaitsForQuiet(t *testing.T) {
	run, journal := t.TempDir(), t.TempDir()
	w, err := newDirWatchSettle(300*time.Millisecond, time.Hour, time.Hour, run, journal)
	require.NoError(t, err)
	defer w.Close()
	require.Zero(t, writeEvery20ms(t, w, journal, 20), "signalled while the changes kept coming")
	waitSignal(t, w, 10*time.Second, "the burst ended")
	require.Zero(t, signals(w, time.Second), "one burst signalled more than once")
}

// TestDirWatchMaxDelayBoundsTheWait: a burst that never settles is still
// signalled every maxDelay.
func TestDirWatchMaxDelayBoundsTheWait(t *testing.T) {
	run, journal := t.TempDir(), t.TempDir()
	w, err := newDirWatchSettle(time.Hour, time.Hour, 100*time.Millisecond, run, journal)
	require.NoError(t, err)
	defer w.Close()
	require.GreaterOrEqual(t, writeEvery20ms(t, w, journal, 50), 2, "a burst of a second was not signalled while it lasted")
}

// TestDirWatchJobStartIsQuick: a marker appearing in the run directory is
// signalled after the short wait, though other changes keep coming; the
// same name in the journal directory is not.
func TestDirWatchJobStartIsQuick(t *testing.T) {
	run, journal := t.TempDir(), t.TempDir()
	w, err := newDirWatchSettle(time.Hour, 20*time.Millisecond, time.Hour, run, journal)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, os.WriteFile(filepath.Join(journal, "job-7"), []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(run, "job-7.cgroup"), []byte("x"), 0o600))
	require.Zero(t, signals(w, 300*time.Millisecond), "a change that is no job start was signalled early")

	tmp := filepath.Join(run, ".job-123")
	require.NoError(t, os.WriteFile(tmp, []byte("os=0"), 0o600))
	require.NoError(t, os.Rename(tmp, filepath.Join(run, "job-7")))
	require.NoError(t, os.WriteFile(filepath.Join(journal, "job-7.journal"), []byte("x"), 0o600))
	waitSignal(t, w, 10*time.Second, "a marker appeared")
}
