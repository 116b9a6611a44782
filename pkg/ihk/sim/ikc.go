package sim

import (
	"context"
	"slices"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// BuildID is the build id the simulated driver reports. It names the
// simulation, so it never equals a real mcexec's.
const BuildID = "slurm-lwk-sim"

// SetIKCMap sets IKC routes as IHK_OS_SET_IKC_MAP does: EBUSY unless the
// instance is INITIAL; EINVAL unless every source is assigned to it and
// every target is an online CPU of the topology that IHK does not hold,
// both below 512. Nothing changes on failure.
func (b *Backend) SetIKCMap(ctx context.Context, i int, routes []ihk.IKCRoute) error {
	const op = "set_ikcmap"
	return b.do(ctx, op, i, func(s *state, now time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		if err := b.initial(op, o, now); err != nil {
			return err
		}
		if len(routes) > maxRequestCPUs {
			return b.err(op, i, syscall.EINVAL, "%d routes", len(routes))
		}
		topo, err := b.topo()
		if err != nil {
			return b.err(op, i, syscall.EIO, "node topology: %v", err)
		}
		reserved := s.ReservedCPUs
		for _, r := range routes {
			if r.CPU < 0 || r.CPU >= maxRequestCPUs || !slices.Contains(o.CPUs, r.CPU) {
				return b.err(op, i, syscall.EINVAL, "cpu %d is not assigned to os %d", r.CPU, i)
			}
			c, ok := topo.CPU(r.Target)
			if r.Target < 0 || r.Target >= maxRequestCPUs || !ok || !c.Online || slices.Contains(reserved, r.Target) {
				return b.err(op, i, syscall.EINVAL, "target cpu %d is not an online linux cpu", r.Target)
			}
		}
		if o.IKC == nil {
			o.IKC = map[int]int{}
		}
		for _, r := range routes {
			o.IKC[r.CPU] = r.Target
		}
		b.log.Info("ihk sim: ikc map set", "os", i, "ikc_map", ihk.FormatIKCMap(routes))
		return nil
	})
}

// IKCMap lists the routes of every assigned CPU in LWK order (target 0 for
// a CPU without one).
func (b *Backend) IKCMap(ctx context.Context, i int) ([]ihk.IKCRoute, error) {
	const op = "ikcmap"
	out := []ihk.IKCRoute{}
	err := b.do(ctx, op, i, func(s *state, _ time.Time) error {
		o, err := b.instance(s, op, i)
		if err != nil {
			return err
		}
		for _, c := range o.CPUs {
			out = append(out, ihk.IKCRoute{CPU: c, Target: o.IKC[c]})
		}
		return nil
	})
	return out, err
}

// BuildID returns the simulated driver's build id, BuildID.
func (b *Backend) BuildID(ctx context.Context, i int) (string, error) {
	const op = "build_id"
	err := b.do(ctx, op, i, func(s *state, _ time.Time) error {
		_, err := b.instance(s, op, i)
		return err
	})
	if err != nil {
		return "", err
	}
	return BuildID, nil
}
