package monitor

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dirWatch signals changes in the run and journal directories (inotify), so
// the monitor learns of a job's start and end at once instead of polling.
type dirWatch struct {
	f *os.File
	c chan time.Time
}

func newDirWatch(dirs ...string) (*dirWatch, error) {
	w := &dirWatch{c: make(chan time.Time, 1)}
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
	go w.loop()
	return w, nil
}

func (w *dirWatch) loop() {
	buf := make([]byte, 4096)
	for {
		if _, err := w.f.Read(buf); err != nil {
			return
		}
		select {
		case w.c <- time.Now():
		default: // a rescan is already pending
		}
	}
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
