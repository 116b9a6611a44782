// Package sample takes one sample of every LWK instance on the node: its
// status and, while it is booted, its rusage. lwk-monitor prints them; the
// package needs no root and is tested with a fake driver.
//
// Kernel interface: the IHK client's ListOS (the /dev/mcosN nodes),
// IHK_OS_STATUS and IHK_OS_GETRUSAGE, reads of memory McKernel shares with
// Linux that do not interrupt the LWK.
package sample

import (
	"context"
	"fmt"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// IHK is what sampling asks of the IHK driver.
type IHK interface {
	ListOS(ctx context.Context) ([]int, error)
	Status(ctx context.Context, os int) (ihk.Status, error)
	Rusage(ctx context.Context, os int) (*ihk.Rusage, error)
}

// Sample is one instance at one time.
type Sample struct {
	Time   time.Time   `json:"time"`
	OS     int         `json:"os"`
	Status string      `json:"status"`
	Rusage *ihk.Rusage `json:"rusage,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// booted are the statuses in which mcctrl's GETRUSAGE handler answers.
var booted = map[ihk.Status]bool{ihk.StatusRunning: true, ihk.StatusFreezing: true, ihk.StatusFrozen: true}

// Take samples every instance. Only listing the instances can fail; an
// instance whose status or rusage cannot be read gets a Sample with Error.
func Take(ctx context.Context, c IHK, now func() time.Time) ([]Sample, error) {
	ids, err := c.ListOS(ctx)
	if err != nil {
		return nil, fmt.Errorf("list os instances: %w", err)
	}
	out := make([]Sample, 0, len(ids))
	for _, idx := range ids {
		s := Sample{Time: now().UTC(), OS: idx}
		st, err := c.Status(ctx, idx)
		if err != nil {
			s.Error = err.Error()
		} else {
			s.Status = st.String()
		}
		if err == nil && booted[st] {
			if ru, err := c.Rusage(ctx, idx); err == nil {
				s.Rusage = ru
			} else {
				s.Error = err.Error()
			}
		}
		out = append(out, s)
	}
	return out, nil
}
