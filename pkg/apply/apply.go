package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/devperm"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
	"github.com/slurm-lwk/slurm-lwk/pkg/retry"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
)

// Faults is the simulator's fault-injection hook, called around every step
// (it acts on the steps that are not IHK operations; a wrapper around the
// IHK client fails the others). Production passes nil.
type Faults interface {
	// Before returns an error to make the step fail before it acts.
	Before(step string) error
	// After may kill the process once the step has succeeded.
	After(step string)
}

// IHK is what the prolog asks of the IHK driver: the operations of its
// steps, and teardown's for the rollback.
type IHK interface {
	teardown.IHK
	ReserveMemory(ctx context.Context, chunks []ihk.MemChunk) error
	ReserveCPUs(ctx context.Context, cpus []int) error
	CreateOS(ctx context.Context) (int, error)
	BuildID(ctx context.Context, os int) (string, error)
	AssignCPUs(ctx context.Context, os int, cpus []int) error
	SetIKCMap(ctx context.Context, os int, routes []ihk.IKCRoute) error
	AssignMemory(ctx context.Context, os int, chunks []ihk.MemChunk) error
	LoadImage(ctx context.Context, os int, path string) error
	SetKernelArgs(ctx context.Context, os int, kargs string) error
	Boot(ctx context.Context, os int) error
	Status(ctx context.Context, os int) (ihk.Status, error)
}

// Confiner creates the cgroups of a job's Linux side
// (proxycgroup.Manager).
type Confiner interface {
	teardown.Confiner
	Mode() proxycgroup.Mode
	// JobDirs names the job's cgroups before they exist (v1; nil on v2).
	JobDirs(jobID uint32) map[string]string
	Create(jobID uint32, l proxycgroup.Limits) (*proxycgroup.Record, error)
}

// Deps are the prolog's collaborators; teardown's node is embedded for
// rollback.
type Deps struct {
	teardown.Node
	// IHK is the driver the steps act on, and the rollback's (see Teardown).
	IHK IHK
	// BootTimeout bounds BOOT plus the wait for RUNNING.
	BootTimeout time.Duration
	// StatusInterval is the RUNNING poll period (IHK_OS_STATUS logs to dmesg
	// on x86, so keep it sparse). Default 200ms.
	StatusInterval time.Duration
	Faults         Faults
	// Confine makes the job's cgroups; the embedded Deps.Cgroups removes
	// them (normally the same manager).
	Confine Confiner
	// McexecBuildID is the IHK build id mcexec was compiled against
	// (lwk.conf McexecBuildID); empty skips the check.
	McexecBuildID string
	// Defrag runs the profile's pre-boot defragmentation of the job NUMA
	// nodes (nodeprep.Defragmenter); nil when the node has no job nodes,
	// and then a profile asking for it is logged and skipped.
	Defrag Defragmenter
}

// Defragmenter defragments the job NUMA nodes and returns its result as
// JSON (duration, contiguous share before and after).
type Defragmenter interface {
	Defrag(ctx context.Context, policy config.DefragPolicy) (json.RawMessage, error)
	// JobBlocks lists the job blocks in ZONE_MOVABLE (a defragmentation
	// with OnlineKernel may turn them into kernel memory) and those
	// offline (the epilog leaves them so), journaled before it starts.
	JobBlocks() (movable, offline []int, err error)
}

// Teardown returns what the rollback runs with: the embedded node and IHK.
func (d Deps) Teardown() teardown.Deps {
	return teardown.Deps{IHK: d.IHK, Node: d.Node}
}

// ErrBuildID marks a driver whose build id differs from mcexec's: every
// task would fail in mcexec, so the prolog fails before booting.
var ErrBuildID = errors.New("ihk build id mismatch")

// Job identifies the job the LWK is for.
type Job struct {
	ID       uint32
	UID, GID uint32
	User     string
	Spec     string
	// Attempt is the job's restart count (SLURM_JOB_RESTART_COUNT), kept
	// in the marker so the plugin never takes an earlier attempt's LWK
	// for this one's.
	Attempt uint32
}

// StepError is a failed step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

// Run boots the planned LWK for the job and returns its OS index. On failure
// it rolls back and returns a *StepError (joined with any rollback error).
// The caller holds the node lock.
func Run(ctx context.Context, d Deps, job Job, p *plan.Plan) (int, error) {
	planJSON, err := json.Marshal(p)
	if err != nil {
		return -1, fmt.Errorf("encode plan: %w", err)
	}
	r := &runner{d: d, p: p, rec: &journal.Record{
		JobID: job.ID, UID: job.UID, GID: job.GID, User: job.User, Attempt: job.Attempt,
		Created: time.Now().UTC(), Spec: job.Spec, Plan: planJSON,
	}}
	idx, err := r.run(ctx, job)
	if err == nil {
		return idx, nil
	}
	// Roll back even when ctx was cancelled (slurmd timing us out).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.DestroyTimeout+30*time.Second)
	defer cancel()
	if _, uerr := teardown.Undo(rctx, d.Teardown(), r.rec); uerr != nil {
		return -1, errors.Join(err, fmt.Errorf("rollback: %w", uerr))
	}
	return -1, err
}

type runner struct {
	d   Deps
	p   *plan.Plan
	rec *journal.Record
	os  int
}

func (r *runner) run(ctx context.Context, job Job) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := r.d.IHK
	p := r.p
	var bootCtx context.Context
	var bootCancel context.CancelFunc = func() {}
	defer func() { bootCancel() }()

	seq := []struct {
		name   string
		intent any
		do     func() (any, error)
	}{
		{steps.ReserveMemory, steps.Memory{Requested: p.Memory}, func() (any, error) {
			before, err := retry.Value(func() ([]ihk.MemChunk, error) { return c.ReservedMemory(ctx) })
			if err != nil {
				return nil, fmt.Errorf("query reserved memory: %w", err)
			}
			// On failure the driver keeps the chunks it reserved before the
			// failing one; nobody claims them, so the rollback releases them.
			if err := retry.Call(func() error { return c.ReserveMemory(ctx, p.Memory) }); err != nil {
				return nil, err
			}
			after, err := retry.Value(func() ([]ihk.MemChunk, error) { return c.ReservedMemory(ctx) })
			if err != nil {
				return nil, fmt.Errorf("query reserved memory: %w", err)
			}
			return steps.Memory{Requested: p.Memory, Reserved: ihk.SubtractChunks(after, before)}, nil
		}},
		{steps.ReserveCPUs, steps.CPUs{CPUs: p.CPUs}, func() (any, error) {
			return nil, retry.Call(func() error { return c.ReserveCPUs(ctx, p.CPUs) })
		}},
		{steps.CreateOS, nil, func() (any, error) {
			idx, err := retry.Value(func() (int, error) { return c.CreateOS(ctx) })
			r.os = idx
			if err != nil {
				return steps.OS{OS: idx}, err
			}
			return steps.OS{OS: idx}, r.checkBuildID(ctx)
		}},
		{steps.AssignCPUs, nil, func() (any, error) {
			if err := retry.Call(func() error { return c.AssignCPUs(ctx, r.os, p.CPUs) }); err != nil {
				return nil, err
			}
			// Set while the instance is INITIAL, as mcreboot.sh does between
			// assign cpu and assign mem; routes die with the instance.
			if len(p.IKCMap) > 0 {
				if err := retry.Call(func() error { return c.SetIKCMap(ctx, r.os, p.IKCMap) }); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}},
		{steps.AssignMemory, nil, func() (any, error) {
			return nil, retry.Call(func() error { return c.AssignMemory(ctx, r.os, p.Memory) })
		}},
		{steps.LoadImage, nil, func() (any, error) {
			return nil, retry.Call(func() error { return c.LoadImage(ctx, r.os, p.Image) })
		}},
		{steps.SetKernelArgs, nil, func() (any, error) {
			return nil, retry.Call(func() error { return c.SetKernelArgs(ctx, r.os, p.Kargs) })
		}},
		{steps.Boot, nil, func() (any, error) {
			bootCtx, bootCancel = context.WithTimeout(ctx, r.d.BootTimeout)
			return nil, retry.Call(func() error { return c.Boot(bootCtx, r.os) })
		}},
		{steps.WaitRunning, nil, func() (any, error) {
			return nil, r.waitRunning(bootCtx)
		}},
		{steps.GrantDevice, nil, func() (any, error) {
			return nil, devperm.Grant(r.device(), int(job.UID))
		}},
		{steps.ConfineProxies, r.confinement(job.ID), func() (any, error) {
			return r.confinement(job.ID), r.confine(job.ID)
		}},
		{steps.WriteMarker, nil, func() (any, error) {
			_, err := jobmarker.WriteMarker(r.d.RunDir, job.ID, jobmarker.Marker{
				OS: r.os, Attempt: job.Attempt, CPUs: len(p.CPUs), Oversubscribe: p.Oversubscribe(),
				LWKNUMA: plan.FormatNUMAMap(p.LWKNUMA),
			})
			return nil, err
		}},
	}
	if p.Defrag.Enabled {
		if err := r.defrag(ctx); err != nil {
			return -1, err
		}
	}
	for _, s := range seq {
		intent := s.intent
		switch {
		case s.name == steps.GrantDevice:
			intent = steps.Device{OS: r.os, Path: r.device()}
		case intent == nil && s.name != steps.CreateOS:
			intent = steps.OS{OS: r.os}
		}
		if err := r.step(s.name, intent, s.do); err != nil {
			return -1, err
		}
	}
	if err := r.d.Journal.Write(r.rec); err != nil {
		return -1, &StepError{Step: steps.All[len(steps.All)-1], Err: err}
	}
	return r.os, nil
}

// step journals the intent, acts, and records it done, giving the fault
// injector its chance on either side.
//
// One journal write per step: the write that records step k's intent also
// records step k-1 as done (and the last step's done is written by run).
// A crash between a side effect and the next write leaves the step as an
// intent, which teardown reconciles from live state like any other intent;
// what each write must never miss is the intent, and it never does.
func (r *runner) step(name string, intent any, do func() (any, error)) error {
	if err := r.rec.Begin(name, intent); err != nil {
		return &StepError{Step: name, Err: err}
	}
	if err := r.d.Journal.Write(r.rec); err != nil {
		return &StepError{Step: name, Err: err}
	}
	if r.d.Faults != nil {
		if err := r.d.Faults.Before(name); err != nil {
			return &StepError{Step: name, Err: err}
		}
	}
	data, err := do()
	if err != nil {
		return &StepError{Step: name, Err: err}
	}
	if data == nil {
		data = intent
	}
	if err := r.rec.Done(name, data); err != nil {
		return &StepError{Step: name, Err: err}
	}
	r.d.Log.Debug("step done", "job", r.rec.JobID, "step", name, "os", r.os)
	if r.d.Faults != nil {
		r.d.Faults.After(name)
	}
	return nil
}

// confinement is the confine_proxies journal data, known before the step
// acts: the job's cgroups follow from its ID.
func (r *runner) confinement(jobID uint32) steps.Confinement {
	c := steps.Confinement{Record: proxycgroup.RecordPath(r.d.RunDir, jobID)}
	if r.d.Confine != nil {
		c.Mode, c.JobDirs = string(r.d.Confine.Mode()), r.d.Confine.JobDirs(jobID)
	}
	return c
}

// confine creates the job's cgroups with the plan's limits and writes the
// root-only record the task wrapper joins by.
func (r *runner) confine(jobID uint32) error {
	if r.d.Confine == nil {
		return errors.New("no cgroup confinement configured for the proxies")
	}
	px := r.p.Proxy
	rec, err := r.d.Confine.Create(jobID, proxycgroup.Limits{
		CPUs: px.CPUs, Mems: px.Mems, MemoryBytes: px.MemoryBytes,
		CPUQuotaUS: px.CPUQuotaUS, CPUPeriodUS: px.CPUPeriodUS, BatchCPUs: px.BatchCPUs,
	})
	if err != nil {
		return err
	}
	_, err = proxycgroup.WriteRecord(r.d.RunDir, rec)
	return err
}

// checkBuildID compares the driver's build id with mcexec's. mcexec makes
// the same comparison at every start and exits 1 on a mismatch, so a node
// where they differ would boot LWKs on which no task can run.
func (r *runner) checkBuildID(ctx context.Context) error {
	want := r.d.McexecBuildID
	id, err := retry.Value(func() (string, error) { return r.d.IHK.BuildID(ctx, r.os) })
	if want == "" {
		// Not asked to check: the id only goes to the log.
		r.d.Log.Debug("ihk build id (not checked: McexecBuildID unset)", "job", r.rec.JobID, "os", r.os, "build_id", id, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the ihk build id to compare with mcexec's %q: %w", want, err)
	}
	if id != want {
		return fmt.Errorf("ihk build id %q (IHK_OS_GET_BUILDID, os %d) differs from mcexec's %q (lwk.conf McexecBuildID): mcexec would refuse every task; install IHK, McKernel and mcexec from one build: %w",
			id, r.os, want, ErrBuildID)
	}
	return nil
}

// defrag runs the pre-boot defragmentation as a journaled step. Its own
// failures never fail the prolog (it is an optimisation; the result or the
// error is journaled and logged); only a journal write does.
func (r *runner) defrag(ctx context.Context) error {
	if r.d.Defrag == nil {
		r.d.Log.Warn("profile asks for pre-boot defragmentation but lwk.conf sets no JobNUMANodes; skipped", "job", r.rec.JobID, "step", steps.DefragMemory)
		return nil
	}
	policy := r.p.Defrag
	intent := steps.Defrag{OnlineKernel: policy.OnlineKernel}
	// Journaled before any block changes: the epilog turns the Movable ones
	// back into ZONE_MOVABLE and leaves the offline ones offline, whatever
	// happens to the prolog.
	movable, offline, listErr := r.d.Defrag.JobBlocks()
	intent.OfflineBlocks = offline
	if policy.OnlineKernel {
		intent.MovableBlocks = movable
	}
	return r.step(steps.DefragMemory, intent, func() (any, error) {
		data := intent
		if listErr != nil {
			data.Err = fmt.Sprintf("list the job blocks: %v", listErr)
			r.d.Log.Warn("pre-boot defragmentation skipped: cannot list the job blocks", "job", r.rec.JobID, "step", steps.DefragMemory, "err", listErr)
			return data, nil
		}
		start := time.Now()
		res, err := r.d.Defrag.Defrag(ctx, policy)
		data.Result = res
		if err != nil {
			data.Err = err.Error()
			r.d.Log.Warn("pre-boot defragmentation failed; booting anyway", "job", r.rec.JobID, "step", steps.DefragMemory, "err", err)
		}
		r.d.Log.Info("pre-boot defragmentation", "job", r.rec.JobID, "step", steps.DefragMemory, "duration", time.Since(start), "result", string(res))
		return data, nil
	})
}

// device is the instance's device node.
func (r *runner) device() string {
	return filepath.Join(r.d.DevDir, "mcos"+strconv.Itoa(r.os))
}

// starting are the statuses of an instance on its way to RUNNING after BOOT
// returned. Every other status is final for the prolog: FAILED and HUNGUP
// (the LWK died), NOT_BOOTED and SHUTDOWN (shut down meanwhile), FREEZING
// and FROZEN (frozen meanwhile: it does not run again by itself), LOADING
// (cannot follow BOOT).
var starting = map[ihk.Status]bool{ihk.StatusBooting: true, ihk.StatusBooted: true, ihk.StatusReady: true}

// waitRunning polls the status until RUNNING. BOOT returns at READY; RUNNING
// follows when McKernel finishes init.
func (r *runner) waitRunning(ctx context.Context) error {
	interval := r.d.StatusInterval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	st := ihk.StatusReady // what BOOT's return means
	for {
		got, err := retry.Value(func() (ihk.Status, error) { return r.d.IHK.Status(ctx, r.os) })
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("status: %w", err)
		case err != nil:
			// ctx ended during the call: report it below.
		case got == ihk.StatusRunning:
			return nil
		case !starting[got]:
			return fmt.Errorf("os %d is %s, not RUNNING", r.os, got)
		default:
			st = got
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("os %d still %s: %w", r.os, st, ctx.Err())
			}
			return fmt.Errorf("os %d still %s: %w", r.os, st, ihk.ErrTimeout)
		case <-time.After(interval):
		}
	}
}
