package teardown

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/devholders"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
)

// holderPolicy says whose holders of an instance's device teardown kills.
//
// The rule, from most to least certain:
//
//  1. A process in the job's cgroup (a path component "job_<id>" in
//     /proc/PID/cgroup, as Slurm's cgroup plugins name it on v1 and v2) is
//     the job's, whatever its user: killed.
//  2. A process whose real or effective user is the job's user (not root)
//     is killed: it escaped the job (setsid, a daemonised helper) or is
//     another process of the same user, and nobody is owed a descriptor on
//     a job's LWK after the job.
//  3. With no journal the job's user is unknown; any unprivileged holder is
//     killed, since only the job's user was granted the device.
//  4. Anyone else is not killed: root processes (a monitor that opens the
//     device per sample and closes it again, ihkmond) and other users'
//     processes (a descriptor the job passed over a unix socket to a
//     daemon). Each is logged once with PID, user, command and cgroup;
//     DESTROY_OS is retried until DestroyTimeout, and if it is still busy
//     teardown fails naming them, so the node drains with a reason that
//     tells the admin which process to look at. Killing another user's
//     process on the word of a descriptor the job handed it would let a
//     job kill any daemon on the node.
type holderPolicy struct {
	job uint32
	// uid is the job's user, or -1 when unknown (no journal).
	uid int
	// warned holds the PIDs already logged as foreign.
	warned map[int]bool
}

// jobUID is the job's user from its journal, or -1.
func jobUID(rec *journal.Record) int {
	if rec == nil {
		return -1
	}
	return int(rec.UID)
}

// holderInfo is one holder and the verdict on it.
type holderInfo struct {
	PID    int
	UID    int
	Comm   string
	Cgroup string
	Kill   bool
	Reason string
}

func (h holderInfo) String() string {
	return fmt.Sprintf("pid %d (%s, uid %d)", h.PID, h.Comm, h.UID)
}

// classify finds the target's holders and splits them into those to kill
// and the others.
func (d Deps) classify(t devholders.Target, pol holderPolicy) (kill, foreign []holderInfo, err error) {
	hs, err := devholders.ScanTarget(d.Proc.Root, t)
	if err != nil {
		return nil, nil, fmt.Errorf("find holders of %s: %w", t.Path, err)
	}
	for _, h := range hs {
		info := d.describe(h.PID, pol)
		if info.Kill {
			kill = append(kill, info)
		} else {
			foreign = append(foreign, info)
		}
	}
	return kill, foreign, nil
}

func (d Deps) describe(pid int, pol holderPolicy) holderInfo {
	h := holderInfo{PID: pid, UID: -1}
	real, eff, err := d.Proc.UIDs(pid)
	ok := err == nil // an error: gone
	if ok {
		h.UID = real
	}
	h.Comm, _ = d.Proc.Comm(pid)
	cgroups, _ := d.Proc.Cgroups(pid)
	h.Cgroup, h.Kill = jobCgroup(cgroups, pol.job)
	switch {
	case h.Kill:
		h.Reason = "in the job's cgroup " + h.Cgroup
	case !ok:
		h.Reason = "gone"
	case pol.uid > 0 && (real == pol.uid || eff == pol.uid):
		h.Kill, h.Reason = true, "the job's user"
	case pol.uid < 0 && real != 0 && eff != 0:
		h.Kill, h.Reason = true, "unprivileged, and the job has no journal naming its user"
	case real == 0 || eff == 0:
		h.Reason = "a root process outside the job"
	default:
		h.Reason = "another user's process outside the job (a descriptor passed to it?)"
	}
	return h
}

// jobCgroup returns the process's first cgroup path and whether any of its
// hierarchies places it under the job's cgroup: "job_<id>" as a path
// component, as Slurm's cgroup plugins name it on v1 and v2.
func jobCgroup(cgroups []string, job uint32) (string, bool) {
	want := "job_" + strconv.FormatUint(uint64(job), 10)
	for _, cg := range cgroups {
		for c := range strings.SplitSeq(cg, "/") {
			if c == want {
				return cg, true
			}
		}
	}
	if len(cgroups) > 0 {
		return cgroups[0], false
	}
	return "", false
}

// killHolders stops the job's processes that hold the device (SIGTERM,
// then SIGKILL after KillGrace), each pinned by a pidfd and re-checked
// first, and returns the holders it may not kill.
func (d Deps) killHolders(ctx context.Context, log *slog.Logger, dev string, pol holderPolicy, res *Result) ([]holderInfo, error) {
	t, err := devholders.TargetOf(dev)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // the instance is gone; the next DESTROY_OS says so
	}
	if err != nil {
		return nil, err
	}
	kill, foreign, err := d.classify(t, pol)
	if err != nil {
		return nil, err
	}
	for _, h := range foreign {
		if pol.warned != nil && !pol.warned[h.PID] {
			pol.warned[h.PID] = true
			log.Warn("device held by a process that is not the job's; not killed",
				"device", dev, "pid", h.PID, "uid", h.UID, "comm", h.Comm, "cgroup", h.Cgroup, "reason", h.Reason)
		}
	}
	if len(kill) == 0 {
		return foreign, nil
	}
	log.Info("stopping the job's processes that hold the device", "device", dev, "pids", pidsOf(kill))
	d.signalHolders(t, kill, unix.SIGTERM)
	if d.waitGone(ctx, t, pol, d.KillGrace) {
		res.Killed = append(res.Killed, pidsOf(kill)...)
		return foreign, nil
	}
	kill, foreign, err = d.classify(t, pol)
	if err != nil {
		return nil, err
	}
	d.signalHolders(t, kill, unix.SIGKILL)
	res.Killed = append(res.Killed, pidsOf(kill)...)
	if !d.waitGone(ctx, t, pol, 5*time.Second) {
		return foreign, fmt.Errorf("processes still hold %s after SIGKILL: %w", dev, ErrNodeUnusable)
	}
	return foreign, nil
}

// signalHolders pins each holder with a pidfd, re-checks that it still
// holds the device, and signals it: a PID reused since the scan is never
// hit.
func (d Deps) signalHolders(t devholders.Target, hs []holderInfo, sig unix.Signal) {
	for _, h := range hs {
		p, err := devholders.Pin(d.Proc.Root, t, h.PID)
		if err != nil {
			continue // gone, or no longer holding
		}
		_ = p.Signal(sig) // exited meanwhile: fine
		_ = p.Close()
	}
}

// waitGone waits until none of the holders teardown may kill is left.
func (d Deps) waitGone(ctx context.Context, t devholders.Target, pol holderPolicy, limit time.Duration) bool {
	end := time.Now().Add(limit)
	for {
		kill, _, err := d.classify(t, pol)
		if err == nil && len(kill) == 0 {
			return true
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pidsOf(hs []holderInfo) []int {
	out := make([]int, len(hs))
	for i, h := range hs {
		out[i] = h.PID
	}
	return out
}

// describeForeign names the holders teardown left alone, for the error
// that becomes the node's drain reason.
func describeForeign(dev string, hs []holderInfo) string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.String() + ": " + h.Reason
	}
	return fmt.Sprintf("%s held by %s; not killed", dev, strings.Join(names, ", "))
}
