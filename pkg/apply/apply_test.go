package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/internal/fixture"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/sim"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/plan"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
	"github.com/slurm-lwk/slurm-lwk/pkg/teardown"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// recorder wraps an IHK client and records the operations that change
// state, in call order.
type recorder struct {
	IHK
	mu    sync.Mutex
	calls []string
}

func (r *recorder) rec(op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, op)
}

func (r *recorder) ReserveCPUs(ctx context.Context, cpus []int) error {
	r.rec("reserve_cpus")
	return r.IHK.ReserveCPUs(ctx, cpus)
}

func (r *recorder) ReleaseCPUs(ctx context.Context, cpus []int) error {
	r.rec("release_cpus")
	return r.IHK.ReleaseCPUs(ctx, cpus)
}

func (r *recorder) ReserveMemory(ctx context.Context, c []ihk.MemChunk) error {
	r.rec("reserve_memory")
	return r.IHK.ReserveMemory(ctx, c)
}

func (r *recorder) ReleaseMemory(ctx context.Context, c []ihk.MemChunk) error {
	r.rec("release_memory")
	return r.IHK.ReleaseMemory(ctx, c)
}

func (r *recorder) CreateOS(ctx context.Context) (int, error) {
	r.rec("create_os")
	return r.IHK.CreateOS(ctx)
}

func (r *recorder) DestroyOS(ctx context.Context, os int) error {
	r.rec("destroy_os")
	return r.IHK.DestroyOS(ctx, os)
}

func (r *recorder) AssignCPUs(ctx context.Context, os int, cpus []int) error {
	r.rec("assign_cpus")
	return r.IHK.AssignCPUs(ctx, os, cpus)
}

func (r *recorder) AssignMemory(ctx context.Context, os int, c []ihk.MemChunk) error {
	r.rec("assign_memory")
	return r.IHK.AssignMemory(ctx, os, c)
}

func (r *recorder) LoadImage(ctx context.Context, os int, path string) error {
	r.rec("load_image")
	return r.IHK.LoadImage(ctx, os, path)
}

func (r *recorder) SetKernelArgs(ctx context.Context, os int, kargs string) error {
	r.rec("set_kernel_args")
	return r.IHK.SetKernelArgs(ctx, os, kargs)
}

func (r *recorder) Boot(ctx context.Context, os int) error {
	r.rec("boot")
	return r.IHK.Boot(ctx, os)
}

// fakeConfiner stands in for proxycgroup.Manager: it records what the
// prolog and epilog asked of it.
type fakeConfiner struct {
	mu      sync.Mutex
	created map[uint32]proxycgroup.Limits
	removed []uint32
}

func (f *fakeConfiner) Mode() proxycgroup.Mode { return proxycgroup.V1 }

func (f *fakeConfiner) JobDirs(jobID uint32) map[string]string {
	return map[string]string{"cpuset": fmt.Sprintf("/fake/cpuset/slurm-lwk/job-%d", jobID)}
}

func (f *fakeConfiner) Create(jobID uint32, l proxycgroup.Limits) (*proxycgroup.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created[jobID] = l
	return &proxycgroup.Record{Version: 1, JobID: jobID, Mode: proxycgroup.V1}, nil
}

func (f *fakeConfiner) Members(uint32) ([]int, error) { return nil, nil }

func (f *fakeConfiner) Remove(jobID uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.created, jobID)
	f.removed = append(f.removed, jobID)
	return nil
}

type env struct {
	deps Deps
	sim  *sim.Backend
	rec  *recorder
	cg   *fakeConfiner
	plan *plan.Plan
	dir  string
}

func newEnv(t *testing.T, faults string) *env {
	t.Helper()
	dir := t.TempDir()
	topo, err := topology.Read(fixture.Root(t, "paper-e5520-fake12"))
	require.NoError(t, err)
	f, err := sim.ParseFaultEnv(faults, "")
	require.NoError(t, err)
	b, err := sim.Open(sim.Options{StateDir: filepath.Join(dir, "sim"), Topology: topo, BootDelay: 20 * time.Millisecond})
	require.NoError(t, err)
	store, err := journal.Open(filepath.Join(dir, "journal"))
	require.NoError(t, err)
	image := filepath.Join(dir, "mckernel.img")
	require.NoError(t, os.WriteFile(image, []byte("image"), 0o644))
	r := &recorder{IHK: sim.Inject(b, f, nil)}
	cg := &fakeConfiner{created: map[uint32]proxycgroup.Limits{}}
	return &env{
		sim: b,
		rec: r,
		cg:  cg,
		dir: dir,
		deps: Deps{
			IHK:     r,
			Confine: cg,
			Node: teardown.Node{
				Journal: store, Cgroups: cg,
				DevDir: filepath.Join(dir, "sim", "dev"), RunDir: filepath.Join(dir, "run"),
				LogDir: filepath.Join(dir, "log"), Proc: procfs.Default(),
				DestroyTimeout: 2 * time.Second, KillGrace: 100 * time.Millisecond,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			},
			BootTimeout:    5 * time.Second,
			StatusInterval: 5 * time.Millisecond,
		},
		plan: &plan.Plan{
			JobID: 9, Profile: "mck", Image: image, Kargs: "hidos",
			CPUs:   []int{2, 4, 3, 5},
			Memory: []ihk.MemChunk{{NUMANode: 2, Bytes: 64 << 20}, {NUMANode: 3, Bytes: 64 << 20}},
			Proxy:  plan.Proxy{CPUs: cpuset.New(0, 1), MemoryBytes: 128 << 20, CPUQuotaUS: 100000, CPUPeriodUS: 100000, BatchCPUs: cpuset.New(0, 1)},
		},
	}
}

// prologOps are the state-changing IHK operations of a successful prolog.
var prologOps = []string{"reserve_memory", "reserve_cpus", "create_os", "assign_cpus", "assign_memory", "load_image", "set_kernel_args", "boot"}

func TestRollbackOrderAfterEachIHKStep(t *testing.T) {
	for i, failing := range prologOps {
		t.Run(failing, func(t *testing.T) {
			e := newEnv(t, failing+":EIO")
			_, err := Run(context.Background(), e.deps, Job{ID: 9, UID: 0, GID: 0, User: "root", Spec: "mck"}, e.plan)
			var se *StepError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Equal(t, failing, se.Step)

			done := prologOps[:i+1] // up to and including the failed call
			require.Equal(t, done, e.rec.calls[:len(done)], "prolog order")
			undo := append([]string{}, e.rec.calls[len(done):]...)
			want := []string{}
			if slices.Contains(prologOps[:i], "create_os") {
				want = append(want, "destroy_os")
			}
			if slices.Contains(prologOps[:i], "reserve_cpus") {
				want = append(want, "release_cpus")
			}
			if slices.Contains(prologOps[:i], "reserve_memory") {
				want = append(want, "release_memory")
			}
			require.Equal(t, want, undo, "rollback undoes what was done, in reverse")

			// Pristine: nothing reserved, no instance, no journal.
			ctx := context.Background()
			cpus, err := e.rec.ReservedCPUs(ctx)
			require.NoError(t, err)
			require.Empty(t, cpus)
			mem, err := e.rec.ReservedMemory(ctx)
			require.NoError(t, err)
			require.Empty(t, mem)
			ids, err := e.rec.ListOS(ctx)
			require.NoError(t, err)
			require.Empty(t, ids)
			_, err = e.deps.Journal.Read(9)
			require.True(t, errors.Is(err, journal.ErrNotFound), "journal left: %v", err)
		})
	}
}

func TestRunJournalsEveryStep(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("LWK_FORCE_ROOT_TESTS") == "" {
		t.Skip("needs root: grant_device chowns the device stand-in (CI runs as root)")
	}
	e := newEnv(t, "")
	idx, err := Run(context.Background(), e.deps, Job{ID: 9, UID: 65534, GID: 65534, User: "nobody", Spec: "mck"}, e.plan)
	require.NoError(t, err)
	require.Equal(t, prologOps, e.rec.calls)

	rec, err := e.deps.Journal.Read(9)
	require.NoError(t, err)
	var names []string
	for _, s := range rec.Steps {
		require.Equal(t, journal.StateDone, s.State, s.Name)
		names = append(names, s.Name)
	}
	require.Equal(t, steps.All, names)
	var mem steps.Memory
	st, _ := rec.Find(steps.ReserveMemory)
	require.NoError(t, st.DecodeData(&mem))
	require.ElementsMatch(t, e.plan.Memory, mem.Reserved, "the chunks the reservation added are journaled")

	// The proxies' cgroups got the plan's limits before the marker, and the
	// record the task wrapper joins by is root-only.
	require.Equal(t, map[uint32]proxycgroup.Limits{9: {CPUs: cpuset.New(0, 1), MemoryBytes: 128 << 20,
		CPUQuotaUS: 100000, CPUPeriodUS: 100000, BatchCPUs: cpuset.New(0, 1)}}, e.cg.created)
	var conf steps.Confinement
	st, _ = rec.Find(steps.ConfineProxies)
	require.NoError(t, st.DecodeData(&conf))
	require.Equal(t, steps.Confinement{Mode: "v1", JobDirs: map[string]string{"cpuset": "/fake/cpuset/slurm-lwk/job-9"},
		Record: filepath.Join(e.deps.RunDir, "job-9.cgroup")}, conf)
	_, err = proxycgroup.ReadRecord(e.deps.RunDir, 9)
	require.NoError(t, err)

	// The assignment order is the plan's: it numbers the LWK CPUs.
	cpus, err := e.sim.AssignedCPUs(context.Background(), idx)
	require.NoError(t, err)
	require.Equal(t, e.plan.CPUs, cpus)

	res, err := teardown.Run(context.Background(), e.deps.Teardown(), 9)
	require.NoError(t, err)
	require.Equal(t, []int{idx}, res.OS)
	require.True(t, cpuset.New(2, 3, 4, 5).Equals(res.ReleasedCPUs), res.ReleasedCPUs.String())
	var released uint64
	for _, c := range res.ReleasedMemory {
		released += c.Bytes
	}
	require.Equal(t, uint64(128<<20), released)
	require.True(t, strings.HasSuffix(res.KmsgPaths[0], "job-9-os0.kmsg"), res.KmsgPaths)
	require.True(t, res.Cgroups)
	require.Equal(t, []uint32{9}, e.cg.removed)
	_, err = os.Stat(proxycgroup.RecordPath(e.deps.RunDir, 9))
	require.ErrorIs(t, err, os.ErrNotExist)
}
