package teardown

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/devperm"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobend"
	"github.com/slurm-lwk/slurm-lwk/pkg/jobmarker"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/retry"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// holderGrace is how long DESTROY_OS is retried while busy before teardown
// looks for processes that hold the device: Slurm has normally killed the
// job's processes already, and the last of them may still be closing it.
const holderGrace = 250 * time.Millisecond

// ErrNodeUnusable labels the failures that leave IHK holding resources, so
// the drain reason says so. It is a label for the message and for tests, not
// a branch: lwk-epilog exits 1 on any error, and slurmd drains the node
// whatever the cause (see cmd/lwk-epilog).
var ErrNodeUnusable = errors.New("node left unusable")

// IHK is what teardown asks of the IHK driver.
type IHK interface {
	ListOS(ctx context.Context) ([]int, error)
	ReadKmsg(ctx context.Context, os int) ([]byte, error)
	DestroyOS(ctx context.Context, os int) error
	ReservedCPUs(ctx context.Context) ([]int, error)
	ReleaseCPUs(ctx context.Context, cpus []int) error
	ReservedMemory(ctx context.Context) ([]ihk.MemChunk, error)
	ReleaseMemory(ctx context.Context, chunks []ihk.MemChunk) error
}

// Deps are teardown's collaborators and settings: the driver, and the rest
// of the node (embedded, so its fields read as d.Journal, d.Log).
type Deps struct {
	IHK IHK
	Node
}

// Node is everything teardown works with besides the driver. The prolog
// embeds it too and passes its own, wider, driver for the rollback.
type Node struct {
	Journal *journal.Store
	// DevDir holds the IHK device nodes (mcosN); RunDir the job markers;
	// LogDir receives the LWK kernel logs.
	DevDir, RunDir, LogDir string
	// Proc is where the processes holding a device are looked for.
	Proc procfs.FS
	// DestroyTimeout bounds the retries of DESTROY_OS while it is busy.
	DestroyTimeout time.Duration
	// KillGrace is how long holders get between SIGTERM and SIGKILL.
	KillGrace time.Duration
	// Cgroups confines the jobs' Linux side; nil where no confinement is
	// made (unit tests of other steps).
	Cgroups Confiner
	// Ended says which job attempts' epilogs have run; other jobs found
	// there are collected like orphans. Nil: every journal claims.
	Ended *jobend.Store
	Log   *slog.Logger
	// Memory puts job-node memory blocks back as the pre-boot
	// defragmentation found them: online again after a killed one, and
	// Movable again after one that onlined them as kernel memory; nil when
	// the node has no job nodes.
	Memory BlockRecoverer
}

// BlockRecoverer restores the job nodes' memory blocks after a pre-boot
// defragmentation (nodeprep.Defragmenter.RestoreJobBlocks): it onlines the
// offline ones but those in keepOffline (Movable when listed in movable or
// when kernel is false) and turns the listed ones back into ZONE_MOVABLE.
// It returns the blocks it changed and those it could not make Movable
// (they stay kernel memory); an error means a block may be left offline.
type BlockRecoverer interface {
	RestoreJobBlocks(movable, keepOffline []int, kernel bool) (changed, refused []int, err error)
}

// Result says what teardown did.
type Result struct {
	JobID uint32
	// Recovered is set when the journal was missing or corrupt and the job's
	// resources were found from live state.
	Recovered bool
	// OS lists the instances destroyed.
	OS []int
	// Killed lists the processes that still held a device and were killed.
	Killed []int
	// ReleasedCPUs and ReleasedMemory are what went back to Linux.
	ReleasedCPUs   cpuset.CPUSet
	ReleasedMemory []ihk.MemChunk
	// KmsgPaths are the saved LWK kernel logs.
	KmsgPaths []string
	// Cgroups is set when the job's cgroups were removed (or already gone).
	Cgroups bool
	// Collected lists other jobs whose epilog had already run and whose
	// leftovers (an LWK booted after the epilog) were torn down too.
	Collected []uint32
	// Began is when the teardown removed the job's marker (its start as
	// lwk-monitor sees it).
	Began time.Time
}

// Run tears down a job from its journal, or from live state when the journal
// is missing or corrupt (a corrupt journal is then kept as <file>.corrupt for
// the admin to inspect). The caller holds the node lock.
func Run(ctx context.Context, d Deps, jobID uint32) (*Result, error) {
	rec, err := d.Journal.Read(jobID)
	var corrupt bool
	switch {
	case err == nil:
	case errors.Is(err, journal.ErrNotFound):
		rec = nil
	case errors.Is(err, journal.ErrCorrupt), errors.Is(err, journal.ErrVersion):
		d.Log.Warn("journal unreadable, recovering the job from live state", "job", jobID, "err", err)
		corrupt = true
		rec = nil
	default:
		return nil, fmt.Errorf("teardown job %d: %w", jobID, err)
	}
	return undo(ctx, d, jobID, rec, corrupt)
}

// Undo tears down what the given record says was done; the prolog calls it
// to roll back a failed step. The caller holds the node lock.
func Undo(ctx context.Context, d Deps, rec *journal.Record) (*Result, error) {
	return undo(ctx, d, rec.JobID, rec, false)
}

func undo(ctx context.Context, d Deps, jobID uint32, rec *journal.Record, keepCorrupt bool) (*Result, error) {
	log := d.Log.With("job", jobID)
	res := &Result{JobID: jobID, Recovered: rec == nil}
	others, err := claimsExcept(d, jobID)
	if err != nil {
		return res, fmt.Errorf("teardown job %d: %w", jobID, err)
	}
	instances, err := jobInstances(ctx, d, jobID, rec, others)
	if err != nil {
		return res, fmt.Errorf("teardown job %d: %w", jobID, err)
	}
	if res.Recovered && len(instances) > 0 {
		log.Warn("no journal: destroying OS instances no other job claims", "os", instances)
	}

	var errs []error
	res.Began = time.Now()
	if err := jobmarker.Remove(d.RunDir, jobID); err != nil {
		errs = append(errs, err)
	}
	for _, idx := range instances {
		if err := d.destroy(ctx, log, rec, idx, res); err != nil {
			errs = append(errs, err)
		}
	}
	// After the destroy: the proxies that held the device are gone.
	if err := d.unconfine(ctx, log, jobID, res); err != nil {
		errs = append(errs, err)
	}
	if err := d.releaseCPUs(ctx, log, others, res); err != nil {
		errs = append(errs, err)
	}
	if err := d.releaseMemory(ctx, log, others, res); err != nil {
		errs = append(errs, err)
	}
	if err := d.recoverDefrag(log, rec); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("teardown job %d: %w", jobID, errors.Join(errs...))
	}
	if keepCorrupt {
		path := d.Journal.Path(jobID)
		if err := os.Rename(path, path+".corrupt"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("teardown job %d: keep corrupt journal %s: %w", jobID, path, err)
		}
	} else if err := d.Journal.Remove(jobID); err != nil {
		return res, fmt.Errorf("teardown job %d: %w", jobID, err)
	}
	// What the ended jobs held was collected above; remove their cgroups
	// (their LWK, and so their proxies, are gone), put back the memory
	// blocks their defragmentation changed, and drop their records.
	for i, id := range others.ended {
		if err := d.unconfine(ctx, log.With("collected_job", id), id, res); err != nil {
			return res, fmt.Errorf("teardown job %d: ended job %d: %w", jobID, id, err)
		}
		if err := d.recoverDefrag(log.With("collected_job", id), others.endedRecs[i]); err != nil {
			return res, fmt.Errorf("teardown job %d: ended job %d: %w", jobID, id, err)
		}
		if err := errors.Join(jobmarker.Remove(d.RunDir, id), d.Journal.Remove(id)); err != nil {
			return res, fmt.Errorf("teardown job %d: forget ended job %d: %w", jobID, id, err)
		}
		res.Collected = append(res.Collected, id)
	}
	// Temp files of writers killed mid-write; under the lock none is live.
	if n, err := d.Journal.RemoveStaleTemps(time.Minute); err != nil {
		log.Warn("cannot remove stale journal temp files", "err", err)
	} else if n > 0 {
		log.Info("removed stale journal temp files", "count", n)
	}
	log.Info("teardown complete", "os", res.OS, "cpus", res.ReleasedCPUs.String(),
		"memory_chunks", len(res.ReleasedMemory), "killed", res.Killed, "recovered", res.Recovered)
	return res, nil
}

// jobInstances returns the OS instances to destroy: every existing instance
// that no other job claims. Under the node lock that is this job's instance
// (whatever its journal knows of it) plus orphans of prologs that died
// without a journal entry; an index this job's journal or marker names but
// another job now claims was reused by IHK and is left alone.
func jobInstances(ctx context.Context, d Deps, jobID uint32, rec *journal.Record, others claims) ([]int, error) {
	live, err := retry.Value(func() ([]int, error) { return d.IHK.ListOS(ctx) })
	if err != nil {
		return nil, fmt.Errorf("list os instances: %w", err)
	}
	var out []int
	for _, idx := range live {
		if others.os[idx] {
			if knownIndex(d, jobID, rec, idx) {
				d.Log.Warn("os index named by this job now belongs to another job; leaving it", "job", jobID, "os", idx)
			}
			continue
		}
		out = append(out, idx)
	}
	return out, nil
}

// knownIndex reports whether the job's journal or marker names the index.
func knownIndex(d Deps, jobID uint32, rec *journal.Record, idx int) bool {
	if m, err := jobmarker.Read(d.RunDir, jobID); err == nil && m == idx {
		return true
	}
	if rec == nil {
		return false
	}
	got, ok := steps.OSIndex(rec)
	return ok && got == idx
}

// destroy revokes the device, stops its holders, saves the kernel log and
// destroys one instance.
func (d Deps) destroy(ctx context.Context, log *slog.Logger, rec *journal.Record, idx int, res *Result) error {
	log = log.With("os", idx)
	dev := filepath.Join(d.DevDir, "mcos"+strconv.Itoa(idx))
	// Back to root-only, not to whatever the device was before the job:
	// anyone who can open it can read kernel memory (IHK_OS_READ_KADDR).
	if err := devperm.Restore(dev, devperm.Owner{UID: 0, GID: 0, Mode: 0o600}); err != nil {
		return fmt.Errorf("revoke %s: %w", dev, err)
	}
	d.saveKmsg(ctx, log, idx, res)
	d.saveUsage(ctx, log, idx, res)

	// Slurm has normally killed the job's processes before the epilog, so
	// retry DESTROY_OS while it is busy and look for holders (a /proc scan)
	// only once holderGrace has passed.
	pol := holderPolicy{job: res.JobID, uid: jobUID(rec), warned: map[int]bool{}}
	var stopErr error
	var foreign []holderInfo
	err := retry.WhileBusy(ctx, d.DestroyTimeout, func() error { return d.IHK.DestroyOS(ctx, idx) },
		func(waited time.Duration) error {
			if waited < holderGrace {
				return nil
			}
			// The job's mcexec processes still hold the device, or
			// something opened it again: stop the job's; note who else.
			foreign, stopErr = d.killHolders(ctx, log, dev, pol, res)
			return stopErr
		})
	switch {
	case err == nil, retry.Gone(err):
		res.OS = append(res.OS, idx)
		log.Debug("os destroyed")
		return nil
	case stopErr != nil:
		return stopErr
	case ctx.Err() != nil:
		return fmt.Errorf("destroy os %d: %w", idx, err)
	case len(foreign) > 0 && errors.Is(err, ihk.ErrBusy):
		// Holders that are not the job's were left alone: name them, so
		// the drain reason says which process keeps the LWK.
		return fmt.Errorf("destroy os %d: %s: %w: %w", idx, describeForeign(dev, foreign), err, ErrNodeUnusable)
	}
	return fmt.Errorf("destroy os %d: %w: %w", idx, err, ErrNodeUnusable)
}

// saveKmsg keeps the LWK kernel log; READ_KMSG fails before boot and after
// shutdown, which is not an error here.
func (d Deps) saveKmsg(ctx context.Context, log *slog.Logger, idx int, res *Result) {
	msg, err := retry.Value(func() ([]byte, error) { return d.IHK.ReadKmsg(ctx, idx) })
	if err != nil || len(msg) == 0 {
		log.Debug("no lwk kernel log", "err", err)
		return
	}
	if n := countAllocFallback(msg); n > 0 {
		// See README "LWK kernel log flood": a layout whose LWK CPUs sit on
		// nodes without LWK memory makes McKernel log every allocation.
		log.Warn("lwk kernel log holds allocation fallback messages (cpus on numa nodes without lwk memory)",
			"lines", n, "kmsg_bytes", len(msg))
	}
	msg = boundKmsg(msg, kmsgSaveMax, kmsgSaveHead)
	if err := os.MkdirAll(d.LogDir, 0o700); err != nil {
		log.Warn("cannot save lwk kernel log", "err", err)
		return
	}
	path := filepath.Join(d.LogDir, fmt.Sprintf("job-%d-os%d.kmsg", res.JobID, idx))
	// O_NOFOLLOW: root writes here, and a planted symlink must not redirect it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err == nil {
		_, err = f.Write(msg)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		log.Warn("cannot save lwk kernel log", "path", path, "err", err)
		return
	}
	res.KmsgPaths = append(res.KmsgPaths, path)
}

// releaseCPUs gives back every reserved CPU that no other job claims.
func (d Deps) releaseCPUs(ctx context.Context, log *slog.Logger, others claims, res *Result) error {
	reserved, err := retry.Value(func() ([]int, error) { return d.IHK.ReservedCPUs(ctx) })
	if err != nil {
		return fmt.Errorf("query reserved cpus: %w: %w", err, ErrNodeUnusable)
	}
	mine := cpuset.New(reserved...).Difference(others.cpus)
	if mine.IsEmpty() {
		return nil
	}
	if err := retry.Call(func() error { return d.IHK.ReleaseCPUs(ctx, mine.List()) }); err != nil {
		return fmt.Errorf("release cpus %s: %w: %w", mine, err, ErrNodeUnusable)
	}
	res.ReleasedCPUs = mine
	log.Debug("cpus released", "cpus", mine.String())
	return nil
}

// releaseMemory gives back every reserved chunk that no other job claims.
func (d Deps) releaseMemory(ctx context.Context, log *slog.Logger, others claims, res *Result) error {
	reserved, err := retry.Value(func() ([]ihk.MemChunk, error) { return d.IHK.ReservedMemory(ctx) })
	if err != nil {
		return fmt.Errorf("query reserved memory: %w: %w", err, ErrNodeUnusable)
	}
	mine := ihk.SubtractChunks(reserved, others.memory)
	if len(mine) == 0 {
		return nil
	}
	if err := retry.Call(func() error { return d.IHK.ReleaseMemory(ctx, mine) }); err != nil {
		return fmt.Errorf("release memory %v: %w: %w", mine, err, ErrNodeUnusable)
	}
	res.ReleasedMemory = mine
	log.Debug("memory released", "chunks", len(mine))
	return nil
}

// CollectEnded tears down what jobs whose epilog already ran still hold
// (an LWK their prolog booted after the epilog, by a version without the
// check or by hand) and forgets them. It returns nil when there is none.
// The caller holds the node lock.
func CollectEnded(ctx context.Context, d Deps) (*Result, error) {
	if d.Ended == nil {
		return nil, nil
	}
	ids, err := d.Journal.List()
	if err != nil {
		return nil, fmt.Errorf("list journals: %w", err)
	}
	for _, id := range ids {
		rec, err := d.Journal.Read(id)
		if err != nil {
			continue
		}
		ended, err := d.Ended.Ended(jobend.Key{JobID: id, Attempt: rec.Attempt})
		if err != nil {
			return nil, err
		}
		if ended {
			// Tearing one ended job down collects the others too.
			return Run(ctx, d, id)
		}
	}
	return nil, nil
}

// recoverDefrag puts the job-node blocks back after the pre-boot
// defragmentation, after the LWK memory went back to Linux: when the
// journal shows one that began and never finished (the prolog may have
// died with a block offline), and when one onlined Movable blocks as kernel
// memory for the reservation (DefragOnlineKernel): those go back into
// ZONE_MOVABLE, where unmovable kernel allocations cannot land while
// Linux jobs run.
func (d Deps) recoverDefrag(log *slog.Logger, rec *journal.Record) error {
	if rec == nil {
		return nil
	}
	st, ok := rec.Find(steps.DefragMemory)
	if !ok {
		return nil
	}
	var data steps.Defrag
	if err := st.DecodeData(&data); err != nil {
		log.Warn("cannot read the pre-boot defragmentation's journal data; onlining offline job blocks only", "step", steps.DefragMemory, "err", err)
		data = steps.Defrag{}
	}
	finished := st.State == journal.StateDone
	if finished && (!data.OnlineKernel || len(data.MovableBlocks) == 0) {
		return nil
	}
	if d.Memory == nil {
		log.Warn("pre-boot defragmentation changed job-node blocks and no job nodes are configured to restore", "step", steps.DefragMemory,
			"finished", finished, "movable_blocks", data.MovableBlocks)
		return nil
	}
	changed, refused, err := d.Memory.RestoreJobBlocks(data.MovableBlocks, data.OfflineBlocks, data.OnlineKernel)
	switch {
	case len(changed) > 0 && !finished:
		log.Warn("restored memory blocks an interrupted defragmentation left behind", "step", steps.DefragMemory, "blocks", changed)
	case len(changed) > 0:
		log.Info("job-node blocks back in ZONE_MOVABLE", "step", steps.DefragMemory, "blocks", changed)
	}
	if len(refused) > 0 {
		log.Warn("job-node blocks stay kernel memory: they could not be made Movable; lwkctl node apply makes them Movable once free",
			"step", steps.DefragMemory, "blocks", refused)
	}
	if err != nil {
		return fmt.Errorf("restore memory blocks after the pre-boot defragmentation: %w", err)
	}
	return nil
}
