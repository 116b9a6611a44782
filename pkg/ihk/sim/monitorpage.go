package sim

import (
	"context"
	"maps"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// opCPUActivity is CPUActivity's operation name. It is not an ihk.Client
// method (so not in operations): the real driver's reader issues two
// ioctls, both counted.
const opCPUActivity = "cpu_activity"

// callNames are the ioctls the real driver's client issues for operations
// that are not one ioctl each (ihk linux/core/host_driver.c,
// mckernel executer/kernel/mcctrl/control.c); PerfControl counts
// its request itself (perfCallNames).
var callNames = map[string][]string{
	opCPUActivity:  {"IHK_OS_GET_USAGE", "IHK_OS_GET_CPU_USAGE"},
	"perf_set":     {"IHK_OS_AUX_PERF_NUM", "IHK_OS_AUX_PERF_SET"},
	"perf_control": nil,
}

// perfCallNames are PerfControl's requests by operation.
var perfCallNames = map[ihk.PerfOp]string{
	ihk.PerfEnable:  "IHK_OS_AUX_PERF_ENABLE",
	ihk.PerfDisable: "IHK_OS_AUX_PERF_DISABLE",
	ihk.PerfDestroy: "IHK_OS_AUX_PERF_DESTROY",
}

// count records one call of op under the ioctl name(s) it stands for.
func (b *Backend) count(op string) {
	names, ok := callNames[op]
	if !ok {
		names = []string{ioctlName(op)}
	}
	b.countAs(names...)
}

func (b *Backend) countAs(names ...string) {
	b.callsMu.Lock()
	defer b.callsMu.Unlock()
	if b.calls == nil {
		b.calls = map[string]uint64{}
	}
	for _, n := range names {
		b.calls[n]++
	}
}

// Calls returns how many times this Backend was asked for each ioctl
// (ihk.Error.Op names, e.g. "IHK_OS_STATUS"), failed calls included.
// Tests use it to check which driver requests a component makes.
func (b *Backend) Calls() map[string]uint64 {
	b.callsMu.Lock()
	defer b.callsMu.Unlock()
	return maps.Clone(b.calls)
}

// CPUActivity reads the simulated monitor page, as the real driver's
// quiet reader does (IHK_OS_GET_USAGE, then IHK_OS_GET_CPU_USAGE): one
// entry per LWK CPU in LWK order. ENOSYS unless booted. The states follow
// the instance: a FAILED instance's first CPU is in MonitorPanic, a HUNGUP
// one's in MonitorKernel with its counter stopped at the hang, FREEZING and
// FROZEN instances' CPUs in MonitorFreezing and MonitorFrozen; otherwise as
// many CPUs as mcexec stand-ins hold the device are in MonitorUser, the
// rest in MonitorIdle. Counters advance by one per millisecond since
// RUNNING (a stand-in for kernel entries).
func (b *Backend) CPUActivity(ctx context.Context, i int) ([]ihk.CPUActivity, error) {
	const op = opCPUActivity
	var out []ihk.CPUActivity
	err := b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		st := o.status(now)
		if o.Boot == nil || st < ihk.StatusReady || st == ihk.StatusShutdown {
			return b.err(op, i, syscall.ENOSYS, "os is %s", st)
		}
		tl := o.Boot.Timeline
		end := now.UnixNano()
		if tl.HungNS != 0 {
			end = tl.HungNS
		} else if tl.FailedNS != 0 {
			end = tl.FailedNS
		}
		counter := uint64(0)
		if tl.RunningNS != 0 && end > tl.RunningNS {
			counter = uint64(time.Duration(end-tl.RunningNS) / time.Millisecond)
		}
		busy := 0
		if st == ihk.StatusRunning {
			if h, err := b.flockHolders(b.DevicePath(i)); err == nil {
				busy = len(h)
			}
		}
		out = make([]ihk.CPUActivity, len(o.CPUs))
		for k := range out {
			state := int32(ihk.MonitorIdle)
			switch {
			case st == ihk.StatusFreezing:
				state = ihk.MonitorFreezing
			case st == ihk.StatusFrozen:
				state = ihk.MonitorFrozen
			case k < busy:
				state = ihk.MonitorUser
			}
			out[k] = ihk.CPUActivity{State: state, Counter: counter}
		}
		if len(out) > 0 {
			switch st {
			case ihk.StatusFailed:
				out[0].State = ihk.MonitorPanic
			case ihk.StatusHungup:
				out[0].State = ihk.MonitorKernel
			}
		}
		return nil
	})
	return out, err
}
