package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/retry"
)

// eventFD is a real eventfd(2) descriptor.
type eventFD struct{ fd int }

// Fd returns the descriptor.
func (e *eventFD) Fd() int { return e.fd }

// Read blocks until the counter is non-zero, then returns and resets it. An
// interrupted read is retried at once, within package retry's bound.
func (e *eventFD) Read() (uint64, error) {
	var buf [8]byte
	n, err := retry.Value(func() (int, error) { return unix.Read(e.fd, buf[:]) })
	if err != nil {
		return 0, fmt.Errorf("read eventfd %d: %w", e.fd, err)
	}
	if n != 8 {
		return 0, fmt.Errorf("read eventfd %d: short read of %d bytes", e.fd, n)
	}
	return binary.NativeEndian.Uint64(buf[:]), nil
}

// Close closes the descriptor; as with the driver, the registration stays
// until DestroyOS (signals to a closed descriptor are dropped).
func (e *eventFD) Close() error { return unix.Close(e.fd) }

// RegisterEvent creates an eventfd and registers it for events of type t
// (EINVAL for an unknown type). The registration records this process's PID
// and the descriptor number; any process that later raises the event (for
// example a test calling InjectPanic) duplicates the descriptor with
// pidfd_getfd(2), which needs the same user or CAP_SYS_PTRACE.
func (b *Backend) RegisterEvent(ctx context.Context, i int, t ihk.EventType) (ihk.EventFD, error) {
	const op = "register_event"
	if t != ihk.EventOOM && t != ihk.EventStatus && t != ihk.EventKmsg {
		return nil, b.err(op, i, syscall.EINVAL, "unknown event type %d", t)
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, b.err(op, i, syscall.EIO, "eventfd: %v", err)
	}
	self := os.Getpid()
	start, err := startTicks(b.proc, self)
	if err != nil {
		unix.Close(fd)
		return nil, b.err(op, i, syscall.EIO, "%v", err)
	}
	reg := eventReg{Type: t, PID: self, FD: fd, StartTicks: start, EventfdID: eventfdID(b.proc.Path("self", "fdinfo", strconv.Itoa(fd)))}
	err = b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		o.Events = append(o.Events, reg)
		return nil
	})
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &eventFD{fd: fd}, nil
}

// signal adds 1 to every eventfd registered on o for type t. Registrations
// whose process or descriptor is gone are skipped.
func (b *Backend) signal(o *osState, t ihk.EventType) {
	for _, r := range o.Events {
		if r.Type != t {
			continue
		}
		if err := b.signalOne(r); err != nil {
			b.log.Debug("ihk sim: eventfd not signalled", "os", o.Index, "pid", r.PID, "fd", r.FD, "err", err)
		}
	}
}

func (b *Backend) signalOne(r eventReg) error {
	start, err := startTicks(b.proc, r.PID)
	if err != nil {
		return err
	}
	if start != r.StartTicks {
		return fmt.Errorf("pid %d was reused", r.PID)
	}
	pidfd, err := unix.PidfdOpen(r.PID, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", r.PID, err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, r.FD, 0)
	if err != nil {
		return fmt.Errorf("pidfd_getfd %d/%d: %w", r.PID, r.FD, err)
	}
	defer unix.Close(fd)
	info := b.proc.Path("self", "fdinfo", strconv.Itoa(fd))
	if !isEventfd(info) || (r.EventfdID != 0 && eventfdID(info) != r.EventfdID) {
		return fmt.Errorf("fd %d of pid %d is no longer the registered eventfd", r.FD, r.PID)
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(fd, one[:]); err != nil {
		return fmt.Errorf("write eventfd %d/%d: %w", r.PID, r.FD, err)
	}
	return nil
}

func isEventfd(fdinfo string) bool {
	data, err := readSmall(fdinfo)
	return err == nil && bytes.Contains(data, []byte("eventfd-count:"))
}

// eventfdID returns the "eventfd-id" of an fdinfo file, 0 if absent.
func eventfdID(fdinfo string) uint64 {
	data, err := readSmall(fdinfo)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "eventfd-id:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
