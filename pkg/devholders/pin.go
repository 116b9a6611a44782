package devholders

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrGone is returned by Pin when the process no longer holds the target
// (it exited, closed the device, or its PID now belongs to someone else).
var ErrGone = errors.New("no longer holds the device")

// Pinned is a holder pinned by a pidfd (pidfd_open(2), Linux 5.3): signals
// sent through it reach the process that was checked, never a process that
// reused its PID after the scan.
type Pinned struct {
	// PID is the process's thread-group ID.
	PID int
	// pidfd is -1 when the kernel has no pidfd_open (ENOSYS, before 5.3;
	// RHEL 8's 4.18 may lack it): Signal then falls back to kill(2) right
	// after a re-check, which narrows the reuse window but cannot close it.
	pidfd    int
	procRoot string
	t        Target
}

// Pin opens a pidfd for pid and then checks that the process still holds
// the target. It returns an error wrapping ErrGone when the process has
// exited or holds the target no longer. The caller closes the result.
func Pin(procRoot string, t Target, pid int) (*Pinned, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
	case errors.Is(err, unix.ESRCH):
		return nil, fmt.Errorf("pid %d: %w", pid, ErrGone)
	case errors.Is(err, unix.ENOSYS):
		fd = -1
	default:
		return nil, fmt.Errorf("pidfd_open pid %d: %w", pid, err)
	}
	p := &Pinned{PID: pid, pidfd: fd, procRoot: procRoot, t: t}
	// Checked after the pidfd exists: if the PID was reused between the
	// scan and pidfd_open, this looks at the newcomer, which (normally)
	// holds nothing and is left alone.
	if !Holds(procRoot, t, pid) {
		_ = p.Close()
		return nil, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	return p, nil
}

// Signal sends sig to the pinned process. A process that has exited since
// counts as signalled.
func (p *Pinned) Signal(sig unix.Signal) error {
	var err error
	if p.pidfd >= 0 {
		err = unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	} else {
		if !Holds(p.procRoot, p.t, p.PID) {
			return nil
		}
		err = unix.Kill(p.PID, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("signal pid %d: %w", p.PID, err)
	}
	return nil
}

// Close releases the pidfd.
func (p *Pinned) Close() error {
	if p.pidfd < 0 {
		return nil
	}
	err := unix.Close(p.pidfd)
	p.pidfd = -1
	return err
}
