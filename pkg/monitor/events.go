package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// event is a wake-up of an instance's eventfd.
type event struct {
	job uint32
	os  int
	oom bool
	// err ends the watcher (poll failed).
	err error
}

// watcher waits on an instance's OOM and STATUS eventfds with poll(2),
// without a timeout: it costs nothing until the LWK raises an event. A
// third eventfd of its own wakes it to stop.
type watcher struct {
	oom, status ihk.EventFD
	stopFD      int
	once        sync.Once
	quit, done  chan struct{}
}

func startWatch(job uint32, os int, oom, status ihk.EventFD, out chan<- event) (*watcher, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch os %d: eventfd: %w", os, err)
	}
	w := &watcher{oom: oom, status: status, stopFD: fd, quit: make(chan struct{}), done: make(chan struct{})}
	go w.loop(job, os, out)
	return w, nil
}

func (w *watcher) loop(job uint32, os int, out chan<- event) {
	defer close(w.done)
	fds := []unix.PollFd{
		{Fd: int32(w.oom.Fd()), Events: unix.POLLIN},
		{Fd: int32(w.status.Fd()), Events: unix.POLLIN},
		{Fd: int32(w.stopFD), Events: unix.POLLIN},
	}
	for {
		for i := range fds {
			fds[i].Revents = 0
		}
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			w.send(out, event{job: job, os: os, err: fmt.Errorf("poll eventfds of os %d: %w", os, err)})
			return
		}
		if fds[2].Revents != 0 {
			return
		}
		for i, ev := range []ihk.EventFD{w.oom, w.status} {
			if fds[i].Revents&unix.POLLIN == 0 {
				continue
			}
			if _, err := ev.Read(); err != nil {
				w.send(out, event{job: job, os: os, err: err})
				return
			}
			if !w.send(out, event{job: job, os: os, oom: i == 0}) {
				return
			}
		}
	}
}

// send delivers ev unless the watcher is stopping.
func (w *watcher) send(out chan<- event, ev event) bool {
	select {
	case out <- ev:
		return true
	case <-w.quit:
		return false
	}
}

// stop ends the loop and closes the descriptors (the kernel keeps the
// registrations until DESTROY; signals to closed descriptors are dropped).
func (w *watcher) stop() {
	w.once.Do(func() {
		close(w.quit)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(w.stopFD, one[:])
		<-w.done
		w.oom.Close()
		w.status.Close()
		unix.Close(w.stopFD)
	})
}
