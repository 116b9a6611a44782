package monitor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Settling of directory changes.
const (
	// watchSettle is how long the watched directories must stay quiet
	// before a burst of changes is signalled.
	watchSettle = 50 * time.Millisecond
	// watchMaxDelay bounds how long a change waits for the directories to
	// settle.
	watchMaxDelay = 500 * time.Millisecond
)

// dirWatch signals changes in the run and journal directories (inotify), so
// the monitor learns of a job's start and end at once instead of polling.
//
// A prolog writes its journal about a dozen times, each write a temporary
// file renamed over the journal, and the marker once. Rescanning at every
// event would list and read the directories tens of times per job and take
// the node lock to register the instance while the hook still runs. So
// names starting with "." (the temporary files of package atomicfile's
// writers) are ignored, and a burst of changes is signalled once, when the
// directories have been quiet for settle, and at the latest maxDelay after
// its first change. A panic or OOM in that window is not missed: register
// reads the instance's status when it registers.
type dirWatch struct {
	f                *os.File
	c                chan time.Time
	settle, maxDelay time.Duration
}

func newDirWatch(dirs ...string) (*dirWatch, error) {
	return newDirWatchSettle(watchSettle, watchMaxDelay, dirs...)
}

func newDirWatchSettle(settle, maxDelay time.Duration, dirs ...string) (*dirWatch, error) {
	w := &dirWatch{c: make(chan time.Time, 1), settle: settle, maxDelay: maxDelay}
	// Non-blocking, so that the runtime's poller waits for it and Close
	// wakes a pending Read.
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return w, fmt.Errorf("inotify: %w", err)
	}
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CLOSE_WRITE
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := unix.InotifyAddWatch(fd, d, mask); err != nil {
			unix.Close(fd)
			return w, fmt.Errorf("inotify watch %s: %w", d, err)
		}
	}
	w.f = os.NewFile(uintptr(fd), "inotify")
	changes := make(chan struct{}, 1)
	go w.read(changes)
	go w.debounce(changes)
	return w, nil
}

// read passes on every read that holds a relevant event; it closes changes
// when the watch is closed.
func (w *dirWatch) read(changes chan<- struct{}) {
	defer close(changes)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		if relevantEvents(buf[:n]) {
			select {
			case changes <- struct{}{}:
			default: // one is already waiting
			}
		}
	}
}

// debounce signals C once a burst of changes has settled.
func (w *dirWatch) debounce(changes <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time
	pending := false
	for {
		var fire <-chan time.Time
		if pending {
			fire = timer.C
		}
		select {
		case _, ok := <-changes:
			if !ok {
				return
			}
			now := time.Now()
			if !pending {
				pending, first = true, now
			}
			timer.Reset(max(0, min(w.settle, w.maxDelay-now.Sub(first))))
		case <-fire:
			pending = false
			select {
			case w.c <- time.Now():
			default: // a rescan is already pending
			}
		}
	}
}

// relevantEvents reports whether a read of inotify events holds one that
// may change what a rescan finds: anything but a change of a name starting
// with "." (a temporary file). An overflowed queue or a removed watch is
// relevant; so is a read that cannot be parsed.
func relevantEvents(b []byte) bool {
	for len(b) > 0 {
		if len(b) < unix.SizeofInotifyEvent {
			return true
		}
		mask := binary.NativeEndian.Uint32(b[4:8])
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		end := unix.SizeofInotifyEvent + nameLen
		if end > len(b) {
			return true
		}
		name := b[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED) != 0 || len(name) == 0 || name[0] != '.' {
			return true
		}
		b = b[end:]
	}
	return false
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
