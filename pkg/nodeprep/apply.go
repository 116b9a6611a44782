package nodeprep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/affinity"
	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysconfine"
)

// BlockZoner moves memory blocks between zones (memblock.Kernel does).
type BlockZoner interface {
	SetZone(index int, zone string) (changed bool, err error)
}

// Runner runs a program given as an argument vector, never through a shell.
type Runner interface {
	Run(ctx context.Context, argv ...string) error
}

// Applier makes and undoes a plan's run-time changes.
type Applier struct {
	// Root is the tree /proc/irq, the cgroups and /etc/systemd are below.
	Root string
	// StateDir holds the record (absolute path).
	StateDir string
	// Blocks changes memory block zones.
	Blocks BlockZoner
	// Runner runs systemctl daemon-reload after drop-ins change.
	Runner Runner
	// Log receives one line per change and per refusal.
	Log *slog.Logger
}

// Refusal is a change the kernel or the system refused. Refusals are
// expected (the memory block the kernel pinned at boot, per-CPU IRQs) and
// do not fail Apply.
type Refusal struct {
	Kind   string `json:"kind"`
	Object string `json:"object"`
	Err    string `json:"error"`
}

// Result says what Apply or Undo did.
type Result struct {
	// Changed are the changes made (Apply) or reversed (Undo) now.
	Changed []Change `json:"changed"`
	// Refused are the changes that could not be made or reversed.
	Refused []Refusal `json:"refused"`
	// Recorded is how many changes the record holds afterwards.
	Recorded int `json:"recorded"`
}

func (a *Applier) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// journal is the record held in memory while applying.
type journal struct {
	st  store
	cs  []Change
	log *slog.Logger
}

func (j *journal) find(kind, object string) int {
	for i, c := range j.cs {
		if c.Kind == kind && c.Object == object {
			return i
		}
	}
	return -1
}

// do records c as intent, runs fn, and records it done; a change already
// recorded keeps its first Before. A failing fn leaves the record as it
// was.
func (j *journal) do(c Change, fn func() error) error {
	i := j.find(c.Kind, c.Object)
	fresh := i < 0
	if fresh {
		c.Status = StatusIntent
		j.cs = append(j.cs, c)
		i = len(j.cs) - 1
		if err := j.st.save(j.cs); err != nil {
			return err
		}
	}
	if err := fn(); err != nil {
		if fresh {
			j.cs = j.cs[:i]
			if serr := j.st.save(j.cs); serr != nil {
				return errors.Join(err, serr)
			}
		}
		return err
	}
	j.cs[i].Status, j.cs[i].After = StatusDone, c.After
	return j.st.save(j.cs)
}

// Apply makes the plan's run-time changes. Changes already in place are
// skipped, so applying twice changes nothing the second time.
func (a *Applier) Apply(ctx context.Context, p *Plan) (*Result, error) {
	st, err := newStore(a.StateDir)
	if err != nil {
		return nil, err
	}
	cs, err := st.load()
	if err != nil {
		return nil, err
	}
	j := &journal{st: st, cs: cs, log: a.log()}
	res := &Result{Changed: []Change{}, Refused: []Refusal{}}
	refuse := func(kind, object string, err error) {
		res.Refused = append(res.Refused, Refusal{Kind: kind, Object: object, Err: err.Error()})
		a.log().Warn("node preparation refused", "step", kind, "object", object, "err", err)
	}
	made := func(c Change) {
		c.Status = StatusDone
		res.Changed = append(res.Changed, c)
		a.log().Info("node preparation", "step", c.Kind, "object", c.Object, "before", c.Before, "after", c.After)
	}

	for _, b := range p.Blocks {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		c := Change{Kind: KindBlockZone, Object: fmt.Sprintf("memory%d", b.Index), Before: b.From, After: b.To}
		var changed bool
		err := j.do(c, func() error {
			var err error
			changed, err = a.Blocks.SetZone(b.Index, b.To)
			return err
		})
		switch {
		case err != nil:
			refuse(c.Kind, c.Object, err)
		case changed:
			made(c)
		}
	}

	osCores, err := cpuset.Parse(p.OSCores)
	if err != nil {
		return res, fmt.Errorf("plan os cores %q: %w", p.OSCores, err)
	}
	for _, irq := range p.IRQs {
		c := Change{Kind: KindIRQ, Object: strconv.Itoa(irq.Number), Before: irq.From, After: irq.To}
		if err := j.do(c, func() error { return affinity.SetIRQAffinity(a.Root, irq.Number, osCores) }); err != nil {
			refuse(c.Kind, c.Object, err)
			continue
		}
		made(c)
	}

	if err := a.confine(ctx, j, p, made, refuse); err != nil {
		return res, err
	}
	res.Recorded = len(j.cs)
	return res, nil
}

func (a *Applier) confine(ctx context.Context, j *journal, p *Plan, made func(Change), refuse func(string, string, error)) error {
	cpus, err := cpuset.Parse(p.Confine.CPUs)
	if err != nil {
		return fmt.Errorf("plan confine cpus %q: %w", p.Confine.CPUs, err)
	}
	mems, err := cpuset.Parse(p.Confine.Mems)
	if err != nil {
		return fmt.Errorf("plan confine mems %q: %w", p.Confine.Mems, err)
	}
	switch p.Confine.Mode {
	case sysconfine.ModeSystemd:
		reload := false
		for _, u := range p.Confine.Units {
			content := sysconfine.DropIn(u, cpus, mems)
			path, err := sysconfine.DropInPath(a.Root, u)
			if err != nil {
				return err
			}
			cur, err := os.ReadFile(path)
			if err == nil && string(cur) == content {
				continue
			}
			before, existed := string(cur), err == nil
			c := Change{Kind: KindDropIn, Object: u, Before: before, After: content, Existed: existed}
			if err := j.do(c, func() error { _, _, err := sysconfine.WriteDropIn(a.Root, u, content); return err }); err != nil {
				refuse(c.Kind, c.Object, err)
				continue
			}
			made(c)
			reload = true
		}
		if reload {
			return a.daemonReload(ctx)
		}
	case sysconfine.ModeCgroup2, sysconfine.ModeCgroup1:
		g, err := sysconfine.NewGroup(a.Root, p.Confine.Mode)
		if err != nil {
			return err
		}
		c := Change{Kind: KindCgroup, Object: g.Dir, After: cpus.String() + " mems " + mems.String()}
		var enabled bool
		if err := j.do(c, func() error {
			var err error
			_, enabled, err = g.Create(cpus, mems)
			return err
		}); err != nil {
			return err
		}
		if enabled {
			ctl := Change{Kind: KindCgroupCtl, Object: g.Parent, After: "+cpuset"}
			if err := j.do(ctl, func() error { return nil }); err != nil {
				return err
			}
		}
		moved, err := g.MoveSystemProcesses(a.Root)
		if err != nil {
			refuse(KindCgroup, g.Dir, err)
		}
		if len(moved) > 0 || enabled {
			c.Before = fmt.Sprintf("%d processes moved", len(moved))
			made(c)
		}
	}
	return nil
}

func (a *Applier) daemonReload(ctx context.Context) error {
	if a.Runner == nil {
		return errors.New("systemd drop-ins changed but no runner for systemctl daemon-reload")
	}
	if err := a.Runner.Run(ctx, "systemctl", "daemon-reload"); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %w", err)
	}
	return nil
}

// Undo reverses the recorded changes, newest first. Changes that cannot be
// reversed stay recorded and are reported; the record is removed once
// empty. Undoing with no record does nothing.
func (a *Applier) Undo(ctx context.Context) (*Result, error) {
	st, err := newStore(a.StateDir)
	if err != nil {
		return nil, err
	}
	cs, err := st.load()
	if err != nil {
		return nil, err
	}
	res := &Result{Changed: []Change{}, Refused: []Refusal{}}
	reload := false
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		err := a.undoOne(c)
		if err != nil {
			res.Refused = append(res.Refused, Refusal{Kind: c.Kind, Object: c.Object, Err: err.Error()})
			a.log().Warn("node preparation undo refused", "step", c.Kind, "object", c.Object, "err", err)
			if c.Kind != KindCgroupCtl {
				continue
			}
		} else {
			res.Changed = append(res.Changed, c)
			a.log().Info("node preparation undone", "step", c.Kind, "object", c.Object, "restored", c.Before)
		}
		if c.Kind == KindDropIn {
			reload = true
		}
		cs = append(cs[:i], cs[i+1:]...)
		if err := st.save(cs); err != nil {
			return res, err
		}
	}
	if reload {
		if err := a.daemonReload(ctx); err != nil {
			return res, err
		}
	}
	res.Recorded = len(cs)
	return res, nil
}

func (a *Applier) undoOne(c Change) error {
	switch c.Kind {
	case KindBlockZone:
		n, err := strconv.Atoi(strings.TrimPrefix(c.Object, "memory"))
		if err != nil || !strings.HasPrefix(c.Object, "memory") {
			return fmt.Errorf("recorded block %q: not memoryN", c.Object)
		}
		zone := memblock.ZoneNormal
		if c.Before == memblock.ZoneMovable {
			zone = memblock.ZoneMovable
		}
		_, err = a.Blocks.SetZone(n, zone)
		return err
	case KindIRQ:
		n, err := strconv.Atoi(c.Object)
		if err != nil {
			return fmt.Errorf("recorded irq %q: %w", c.Object, err)
		}
		set, err := cpuset.Parse(c.Before)
		if err != nil {
			return fmt.Errorf("recorded irq %d affinity %q: %w", n, c.Before, err)
		}
		return affinity.SetIRQAffinity(a.Root, n, set)
	case KindDropIn:
		if c.Existed {
			_, _, err := sysconfine.WriteDropIn(a.Root, c.Object, c.Before)
			return err
		}
		return sysconfine.RemoveDropIn(a.Root, c.Object)
	case KindCgroup, KindCgroupCtl:
		mode := sysconfine.ModeCgroup2
		if strings.HasSuffix(strings.TrimSuffix(c.Object, "/"+sysconfine.GroupName), "/cpuset") {
			mode = sysconfine.ModeCgroup1
		}
		g, err := sysconfine.NewGroup(a.Root, mode)
		if err != nil {
			return err
		}
		if c.Kind == KindCgroupCtl {
			return g.DisableController()
		}
		if g.Dir != c.Object {
			return fmt.Errorf("recorded cgroup %s is not %s", c.Object, g.Dir)
		}
		return g.Remove()
	}
	return fmt.Errorf("recorded change of unknown kind %q", c.Kind)
}
