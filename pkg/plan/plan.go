package plan

import (
	"errors"
	"fmt"
	"sort"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// Allocation is what Slurm gave the job on this node, in machine numbering.
type Allocation struct {
	// CPUs are the job's CPUs (Linux logical CPU IDs, not Slurm's abstract IDs).
	CPUs cpuset.CPUSet
	// MemoryBytes is the job's memory on the node. Units: bytes.
	MemoryBytes uint64
}

// Held is what IHK already holds on the node for other jobs, as far as the
// topology snapshot does not show it. Memory IHK holds has left MemFree
// (the backend's node view sees to that), so only CPUs are listed.
type Held struct {
	// CPUs are reserved or assigned CPUs; they are never planned.
	CPUs cpuset.CPUSet
}

// Input gathers the planner's arguments.
type Input struct {
	Topology *topology.Topology
	Config   *config.Config
	JobID    uint32
	Alloc    Allocation
	Request  lwkmode.Request
	Held     Held
}

// Proxy is the confinement of the job's mcexec proxies.
type Proxy struct {
	// CPUs is the proxies' cpuset: the node's online OS cores.
	CPUs cpuset.CPUSet
	// MemoryBytes is the proxies' memory limit. Units: bytes.
	MemoryBytes uint64
	// CPUQuotaUS and CPUPeriodUS are the CFS bandwidth limit. Units: µs.
	CPUQuotaUS  int64
	CPUPeriodUS int64
	// Mems are the NUMA nodes the proxies allocate from: the system NUMA
	// nodes on a split node, empty (any) otherwise.
	Mems cpuset.CPUSet
	// BatchCPUs are where the rest of the job's Linux side runs (the batch
	// script, srun, --lwk-mode=off steps): the job's CPUs the LWK does not
	// take (cores=N), or the OS cores when it takes them all, since Linux no
	// longer has those and nothing of the job may land on another job's.
	BatchCPUs cpuset.CPUSet
}

// Plan is the LWK partition for one job on one node.
type Plan struct {
	JobID uint32
	// Profile, Image and Kargs are what is booted.
	Profile string
	Image   string
	Kargs   string
	// CPUs are the LWK CPUs in assignment order: grouped by NUMA node
	// (ascending), ascending CPU ID within a node.
	CPUs []int
	// Memory is the LWK memory per NUMA node, ascending node ID; every size
	// is a multiple of ihk.MemoryGranule.
	Memory []ihk.MemChunk
	// NUMAPolicy is the policy the memory was placed under.
	NUMAPolicy lwkmode.NUMAPolicy
	// Proxy is the mcexec proxy confinement.
	Proxy Proxy
	// IKCMap routes each LWK CPU's IKC interrupts to an OS core of its NUMA
	// node (or the nearest node with one); empty leaves the driver's
	// default, Linux CPU 0.
	IKCMap []ihk.IKCRoute
	// LWKNUMA is how McKernel numbers the NUMA nodes it gets, which the job
	// is told (LWK_NUMA_MAP) because it may differ from Linux's.
	LWKNUMA []NUMAID
	// Defrag is the profile's pre-boot defragmentation of the job nodes.
	Defrag config.DefragPolicy
}

// CPUSet returns the LWK CPUs as a set.
func (p *Plan) CPUSet() cpuset.CPUSet { return cpuset.New(p.CPUs...) }

// MemoryBytes returns the LWK memory summed over nodes. Units: bytes.
func (p *Plan) MemoryBytes() uint64 {
	var sum uint64
	for _, c := range p.Memory {
		sum += c.Bytes
	}
	return sum
}

// ErrRequest is wrapped by errors caused by the job's request or allocation
// (as opposed to the node's configuration); the prolog reports those to the
// user rather than draining the node.
var ErrRequest = errors.New("request cannot be satisfied")

// Make plans the LWK partition for one job.
func Make(in Input) (*Plan, error) {
	if in.Topology == nil || in.Config == nil {
		return nil, errors.New("plan: topology and configuration are required")
	}
	if in.Request.Off {
		return nil, fmt.Errorf("plan job %d: lwk-mode is off: %w", in.JobID, ErrRequest)
	}
	prof, err := in.Config.Profile(in.Request.Profile)
	if err != nil {
		return nil, fmt.Errorf("plan job %d: %w: %w", in.JobID, err, ErrRequest)
	}
	kargs, err := kernelArgs(prof, in.Request.Kargs)
	if err != nil {
		return nil, fmt.Errorf("plan job %d: %w", in.JobID, err)
	}
	cpus, err := pickCPUs(in)
	if err != nil {
		return nil, fmt.Errorf("plan job %d: %w", in.JobID, err)
	}
	policy := in.Request.NUMA
	if policy == "" {
		policy = lwkmode.NUMAStrict
	}
	mem, err := placeMemory(in, cpus, policy)
	if err != nil {
		return nil, fmt.Errorf("plan job %d: %w", in.JobID, err)
	}
	proxy, err := proxyLimits(in.Config, prof, in.Topology)
	if err != nil {
		return nil, fmt.Errorf("plan job %d: %w", in.JobID, err)
	}
	proxy.BatchCPUs = in.Alloc.CPUs.Difference(cpuset.New(cpus...))
	if proxy.BatchCPUs.IsEmpty() {
		proxy.BatchCPUs = proxy.CPUs
	}
	return &Plan{
		JobID:      in.JobID,
		Profile:    prof.Name,
		Image:      prof.Image,
		Kargs:      kargs,
		CPUs:       cpus,
		Memory:     mem,
		NUMAPolicy: policy,
		Proxy:      proxy,
		IKCMap:     ikcMap(in.Topology, cpus, in.Config.OSCores),
		LWKNUMA:    lwkNUMAIDs(in.Topology, cpus, mem),
		Defrag:     prof.Defrag,
	}, nil
}

// kernelArgs joins the profile's fixed arguments and the user's additions,
// each of which the profile must allow (config validated that the fixed ones
// include "hidos").
func kernelArgs(prof config.Profile, extra []string) (string, error) {
	if err := prof.CheckKargs(extra); err != nil {
		return "", fmt.Errorf("%w: %w", err, ErrRequest)
	}
	return prof.KernelArgs(extra), nil
}

// proxyLimits derives the proxy cgroup limits: the online OS cores, the
// memory cap, and a CFS quota that is the configured share of those cores'
// capacity (the profile's overrides first, then the node's). An offline OS
// core runs nothing, so it neither joins the cpuset (cgroup v1 refuses
// offline CPUs there) nor counts in the quota.
func proxyLimits(cfg *config.Config, prof config.Profile, t *topology.Topology) (Proxy, error) {
	if cfg.OSCores.IsEmpty() {
		return Proxy{}, errors.New("no OS cores configured (OSCores=): the mcexec proxies need somewhere to run")
	}
	cores := t.OnlineOf(cfg.OSCores)
	if cores.IsEmpty() {
		return Proxy{}, fmt.Errorf("os cores %s: none is online (online cpus %s): the mcexec proxies need somewhere to run",
			cfg.OSCores, t.OnlineCPUs())
	}
	memory, percent, periodD := cfg.ProxyLimits(prof)
	period := periodD.Microseconds()
	if period <= 0 {
		return Proxy{}, fmt.Errorf("proxy cpu period %s: must be positive", periodD)
	}
	quota := period * int64(cores.Size()) * int64(percent) / 100
	// The kernel rejects CFS quotas under 1 ms (kernel/sched/core.c min_cfs_quota_period).
	if quota < 1000 {
		return Proxy{}, fmt.Errorf("proxy cpu quota %dµs (period %dµs × %d online os cores × %d%%): below the kernel's 1ms minimum",
			quota, period, cores.Size(), percent)
	}
	return Proxy{CPUs: cores, Mems: cfg.SystemNUMANodes, MemoryBytes: memory, CPUQuotaUS: quota, CPUPeriodUS: period}, nil
}

// sortedNodes returns the keys of m, ascending.
func sortedNodes[V any](m map[int]V) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}
