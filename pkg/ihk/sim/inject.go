package sim

import (
	"context"
	"log/slog"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// Inject wraps an IHK client with f's faults: an operation a fault names
// fails with its errno before it reaches c (as an *ihk.Error with Detail
// "injected fault"), and one a crash names SIGKILLs the process right after
// c returned success, its effects persisted. With nothing to inject it
// returns c itself.
func Inject(c ihk.Client, f *Faults, log *slog.Logger) ihk.Client {
	if f.Empty() {
		return c
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Warn("ihk simulator fault injection active", "faults", f.String())
	return &injected{c: c, f: f, log: log}
}

type injected struct {
	c   ihk.Client
	f   *Faults
	log *slog.Logger
}

// call runs one operation with its fault and crash.
func call[T any](w *injected, op string, os int, fn func() (T, error)) (T, error) {
	if errno, ok := w.f.Fail(op); ok {
		var zero T
		return zero, &ihk.Error{Op: ioctlName(op), OS: os, Errno: errno, Detail: "injected fault"}
	}
	v, err := fn()
	if err == nil && w.f.Crash(op) {
		w.log.Warn("ihk simulator: injected crash", "op", op)
		crash()
	}
	return v, err
}

// do is call for operations without a result.
func do(w *injected, op string, os int, fn func() error) error {
	_, err := call(w, op, os, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

func (w *injected) ReserveCPUs(ctx context.Context, cpus []int) error {
	return do(w, "reserve_cpus", -1, func() error { return w.c.ReserveCPUs(ctx, cpus) })
}

func (w *injected) ReleaseCPUs(ctx context.Context, cpus []int) error {
	return do(w, "release_cpus", -1, func() error { return w.c.ReleaseCPUs(ctx, cpus) })
}

func (w *injected) ReservedCPUs(ctx context.Context) ([]int, error) {
	return call(w, "reserved_cpus", -1, func() ([]int, error) { return w.c.ReservedCPUs(ctx) })
}

func (w *injected) ReserveMemory(ctx context.Context, chunks []ihk.MemChunk) error {
	return do(w, "reserve_memory", -1, func() error { return w.c.ReserveMemory(ctx, chunks) })
}

func (w *injected) ReleaseMemory(ctx context.Context, chunks []ihk.MemChunk) error {
	return do(w, "release_memory", -1, func() error { return w.c.ReleaseMemory(ctx, chunks) })
}

func (w *injected) ReservedMemory(ctx context.Context) ([]ihk.MemChunk, error) {
	return call(w, "reserved_memory", -1, func() ([]ihk.MemChunk, error) { return w.c.ReservedMemory(ctx) })
}

func (w *injected) CreateOS(ctx context.Context) (int, error) {
	return call(w, "create_os", -1, func() (int, error) { return w.c.CreateOS(ctx) })
}

func (w *injected) DestroyOS(ctx context.Context, os int) error {
	return do(w, "destroy_os", os, func() error { return w.c.DestroyOS(ctx, os) })
}

func (w *injected) ListOS(ctx context.Context) ([]int, error) {
	return call(w, "list_os", -1, func() ([]int, error) { return w.c.ListOS(ctx) })
}

func (w *injected) DetectHangup(ctx context.Context, os int) (ihk.Status, error) {
	return call(w, "detect_hangup", os, func() (ihk.Status, error) { return w.c.DetectHangup(ctx, os) })
}

func (w *injected) AssignCPUs(ctx context.Context, os int, cpus []int) error {
	return do(w, "assign_cpus", os, func() error { return w.c.AssignCPUs(ctx, os, cpus) })
}

func (w *injected) AssignedCPUs(ctx context.Context, os int) ([]int, error) {
	return call(w, "assigned_cpus", os, func() ([]int, error) { return w.c.AssignedCPUs(ctx, os) })
}

func (w *injected) AssignMemory(ctx context.Context, os int, chunks []ihk.MemChunk) error {
	return do(w, "assign_memory", os, func() error { return w.c.AssignMemory(ctx, os, chunks) })
}

func (w *injected) AssignedMemory(ctx context.Context, os int) ([]ihk.MemChunk, error) {
	return call(w, "assigned_memory", os, func() ([]ihk.MemChunk, error) { return w.c.AssignedMemory(ctx, os) })
}

func (w *injected) SetIKCMap(ctx context.Context, os int, routes []ihk.IKCRoute) error {
	return do(w, "set_ikcmap", os, func() error { return w.c.SetIKCMap(ctx, os, routes) })
}

func (w *injected) IKCMap(ctx context.Context, os int) ([]ihk.IKCRoute, error) {
	return call(w, "ikcmap", os, func() ([]ihk.IKCRoute, error) { return w.c.IKCMap(ctx, os) })
}

func (w *injected) BuildID(ctx context.Context, os int) (string, error) {
	return call(w, "build_id", os, func() (string, error) { return w.c.BuildID(ctx, os) })
}

func (w *injected) LoadImage(ctx context.Context, os int, path string) error {
	return do(w, "load_image", os, func() error { return w.c.LoadImage(ctx, os, path) })
}

func (w *injected) SetKernelArgs(ctx context.Context, os int, kargs string) error {
	return do(w, "set_kernel_args", os, func() error { return w.c.SetKernelArgs(ctx, os, kargs) })
}

func (w *injected) Boot(ctx context.Context, os int) error {
	return do(w, "boot", os, func() error { return w.c.Boot(ctx, os) })
}

func (w *injected) Shutdown(ctx context.Context, os int) error {
	return do(w, "shutdown", os, func() error { return w.c.Shutdown(ctx, os) })
}

func (w *injected) Status(ctx context.Context, os int) (ihk.Status, error) {
	return call(w, "status", os, func() (ihk.Status, error) { return w.c.Status(ctx, os) })
}

func (w *injected) RegisterEvent(ctx context.Context, os int, t ihk.EventType) (ihk.EventFD, error) {
	return call(w, "register_event", os, func() (ihk.EventFD, error) { return w.c.RegisterEvent(ctx, os, t) })
}

func (w *injected) Rusage(ctx context.Context, os int) (*ihk.Rusage, error) {
	return call(w, "rusage", os, func() (*ihk.Rusage, error) { return w.c.Rusage(ctx, os) })
}

func (w *injected) ReadKmsg(ctx context.Context, os int) ([]byte, error) {
	return call(w, "read_kmsg", os, func() ([]byte, error) { return w.c.ReadKmsg(ctx, os) })
}

func (w *injected) Freeze(ctx context.Context, os int) error {
	return do(w, "freeze", os, func() error { return w.c.Freeze(ctx, os) })
}

func (w *injected) Thaw(ctx context.Context, os int) error {
	return do(w, "thaw", os, func() error { return w.c.Thaw(ctx, os) })
}

func (w *injected) PerfSet(ctx context.Context, os int, attrs []ihk.PerfAttr) (int, error) {
	return call(w, "perf_set", os, func() (int, error) { return w.c.PerfSet(ctx, os, attrs) })
}

func (w *injected) PerfControl(ctx context.Context, os int, op ihk.PerfOp) error {
	return do(w, "perf_control", os, func() error { return w.c.PerfControl(ctx, os, op) })
}

func (w *injected) PerfRead(ctx context.Context, os int, n int) ([]uint64, error) {
	return call(w, "perf_read", os, func() ([]uint64, error) { return w.c.PerfRead(ctx, os, n) })
}

var _ ihk.Client = (*injected)(nil)
