package monitor

import (
	"context"
	"errors"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
)

// IHK is what the monitor asks of the IHK backend. Every call but
// DetectHangup opens /dev/mcosN; the monitor makes them only under the node
// lock (see Locker).
type IHK interface {
	Status(ctx context.Context, os int) (ihk.Status, error)
	Rusage(ctx context.Context, os int) (*ihk.Rusage, error)
	DetectHangup(ctx context.Context, os int) (ihk.Status, error)
	RegisterEvent(ctx context.Context, os int, t ihk.EventType) (ihk.EventFD, error)
	ReadKmsg(ctx context.Context, os int) ([]byte, error)
	Freeze(ctx context.Context, os int) error
	Thaw(ctx context.Context, os int) error
}

// Perf is the optional performance-counter part of the backend.
type Perf interface {
	PerfSet(ctx context.Context, os int, attrs []ihk.PerfAttr) (int, error)
	PerfControl(ctx context.Context, os int, op ihk.PerfOp) error
	PerfRead(ctx context.Context, os int, n int) ([]uint64, error)
}

// CPUState is one LWK CPU's monitor-page state (IHK_OS_MONITOR_*).
type CPUState int32

// Monitor-page states the monitor interprets.
const (
	CPUIdle   CPUState = ihk.MonitorIdle
	CPUUser   CPUState = ihk.MonitorUser
	CPUKernel CPUState = ihk.MonitorKernel
	CPUFrozen CPUState = ihk.MonitorFrozen
	CPUPanic  CPUState = ihk.MonitorPanic
)

// Activity is the optional quiet reader of the monitor page (the real
// driver and the simulator have it): per LWK CPU, its state and activity
// counter. It neither interrupts the LWK nor logs to dmesg.
type Activity interface {
	CPUActivity(ctx context.Context, os int) ([]ihk.CPUActivity, error)
}

// Journals is the read-only view of the prolog's journals.
type Journals interface {
	List() ([]uint32, error)
	Read(jobID uint32) (*journal.Record, error)
}

// ErrLocked is TryLock's answer when another process holds the node lock.
var ErrLocked = errors.New("node lock held by another process")

// Locker is the node lock lwk-prolog and lwk-epilog hold around their IHK
// work.
type Locker interface {
	// TryLock takes the lock without waiting; ErrLocked if it is held.
	TryLock() (release func(), err error)
	// Lock waits for the lock until ctx ends.
	Lock(ctx context.Context) (release func(), err error)
}

// Slurm is how the monitor acts on Slurm.
type Slurm interface {
	// FailJob ends the job and leaves reason where its user sees it.
	FailJob(ctx context.Context, jobID uint32, reason string) error
	// DrainNode drains this node with reason (which starts with "lwk:").
	DrainNode(ctx context.Context, reason string) error
}

// Proxies finds a job's mcexec proxies: the processes holding its
// instance's device open.
type Proxies interface {
	// Holders lists the PIDs holding dev open.
	Holders(dev string) ([]int, error)
	// Stopped reports whether the process is stopped (SIGSTOP) or frozen
	// by a cgroup freezer; false for a process that is gone.
	Stopped(pid int) bool
	// Notify writes msg to the standard error of each process, through a
	// duplicate of its own descriptor 2 (never by reopening a path).
	Notify(pids []int, msg string)
}
