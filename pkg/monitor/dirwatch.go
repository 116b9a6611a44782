package monitor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
)

// Settling of directory changes.
const (
	// watchSettle is how long the watched directories must stay quiet
	// before a burst of changes is signalled.
	watchSettle = 50 * time.Millisecond
	// watchStartSettle replaces watchSettle once a job's marker appears,
	// leaving the prolog the moment it needs to record the marker in its
	// journal (its last write).
	watchStartSettle = 5 * time.Millisecond
	// watchMaxDelay bounds how long a change waits for the directories to
	// settle.
	watchMaxDelay = 500 * time.Millisecond
)

// dirWatch signals changes in the run and journal directories (inotify), so
// the monitor learns of a job's start and end without polling.
//
// A prolog writes its journal about a dozen times, each write a temporary
// file renamed over the journal, and its marker once, at the end; an
// epilog removes the marker first and rewrites the journal a few times
// before removing it. Rescanning at every event would list and read the
// directories tens of times per job, and take the node lock to register an
// instance while its hooks still run. So names starting with "." (the
// temporary files of package atomicfile's writers) are ignored, and a
// burst of changes is signalled once, when the directories have been quiet
// for settle, and at the latest maxDelay after its first change. A marker
// appearing in the run directory (the LWK is up and the job about to
// start) shortens the wait to startSettle: the monitor registers the OOM
// and STATUS eventfds at once, as an OOM raised before registration would
// be missed (a panic would not: register reads the status).
type dirWatch struct {
	f *os.File
	c chan time.Time
	// runWD is the run directory's watch, -1 without one.
	runWD                         int32
	settle, startSettle, maxDelay time.Duration
}

// change is what one read of events holds.
type change struct {
	relevant, jobStart bool
}

func newDirWatch(runDir, journalDir string) (*dirWatch, error) {
	return newDirWatchSettle(watchSettle, watchStartSettle, watchMaxDelay, runDir, journalDir)
}

func newDirWatchSettle(settle, startSettle, maxDelay time.Duration, runDir, journalDir string) (*dirWatch, error) {
	w := &dirWatch{c: make(chan time.Time, 1), runWD: -1, settle: settle, startSettle: startSettle, maxDelay: maxDelay}
	// Non-blocking, so that the runtime's poller waits for it and Close
	// wakes a pending Read.
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return w, fmt.Errorf("inotify: %w", err)
	}
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CLOSE_WRITE
	for _, d := range []string{runDir, journalDir} {
		if d == "" {
			continue
		}
		wd, err := unix.InotifyAddWatch(fd, d, mask)
		if err != nil {
			unix.Close(fd)
			return w, fmt.Errorf("inotify watch %s: %w", d, err)
		}
		if d == runDir {
			w.runWD = int32(wd)
		}
	}
	w.f = os.NewFile(uintptr(fd), "inotify")
	changes := make(chan change, 1)
	go w.read(changes)
	go w.debounce(changes)
	return w, nil
}

// read passes on every read that holds a relevant event; it closes changes
// when the watch is closed.
func (w *dirWatch) read(changes chan change) {
	defer close(changes)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		if c := classifyEvents(buf[:n], w.runWD); c.relevant {
			select {
			case changes <- c:
			default: // one is already waiting: merge
				select {
				case prev := <-changes:
					c.jobStart = c.jobStart || prev.jobStart
				default:
				}
				changes <- c
			}
		}
	}
}

// debounce signals C once a burst of changes has settled: settle after its
// last change, startSettle after its first job start, maxDelay after its
// first change, whichever comes first.
func (w *dirWatch) debounce(changes <-chan change) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// first is the pending burst's first change, zero when none is
	// pending; startBy is when its first job start must be signalled.
	var first, startBy time.Time
	for {
		var fire <-chan time.Time
		if !first.IsZero() {
			fire = timer.C
		}
		select {
		case c, ok := <-changes:
			if !ok {
				return
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			if c.jobStart && startBy.IsZero() {
				startBy = now.Add(w.startSettle)
			}
			timer.Reset(max(0, w.due(now, first, startBy).Sub(now)))
		case <-fire:
			first, startBy = time.Time{}, time.Time{}
			select {
			case w.c <- time.Now():
			default: // a rescan is already pending
			}
		}
	}
}

// due is when a burst that began at first, changed last at last and saw
// its first job start at startBy (zero: none) is signalled.
func (w *dirWatch) due(last, first, startBy time.Time) time.Time {
	d := last.Add(w.settle)
	if limit := first.Add(w.maxDelay); limit.Before(d) {
		d = limit
	}
	if !startBy.IsZero() && startBy.Before(d) {
		d = startBy
	}
	return d
}

// classifyEvents reads a read of inotify events. An event is relevant
// unless it names a file starting with "." (a temporary file); an
// overflowed queue, a removed watch and a read that cannot be parsed are
// relevant. A job starts when a marker's name (job-<id>) appears in the run
// directory (watch runWD).
func classifyEvents(b []byte, runWD int32) change {
	var c change
	for len(b) > 0 {
		if len(b) < unix.SizeofInotifyEvent {
			return change{relevant: true}
		}
		wd := int32(binary.NativeEndian.Uint32(b[0:4]))
		mask := binary.NativeEndian.Uint32(b[4:8])
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		end := unix.SizeofInotifyEvent + nameLen
		if end > len(b) {
			return change{relevant: true}
		}
		name := b[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED) != 0 || len(name) == 0 || name[0] != '.' {
			c.relevant = true
		}
		if wd == runWD && mask&(unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_CLOSE_WRITE) != 0 && isMarker(name) {
			c.jobStart = true
		}
		b = b[end:]
	}
	return c
}

// isMarker reports whether name is a job marker's file name.
func isMarker(name []byte) bool {
	_, ok := jobmarker.IDOf(string(name))
	return ok
}

// C delivers a value after changes; nil when inotify is not available.
func (w *dirWatch) C() <-chan time.Time {
	if w == nil || w.f == nil {
		return nil
	}
	return w.c
}

// Close stops watching.
func (w *dirWatch) Close() {
	if w != nil && w.f != nil {
		w.f.Close()
	}
}
