package main

import (
	"context"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk/ioctl"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
)

// cpuActivity is the real driver's quiet monitor-page reader.
type cpuActivity interface {
	CPUActivity(ctx context.Context, os int) ([]ioctl.CPUActivity, error)
}

// activityClient adds monitor.Activity to a backend that has CPUActivity.
type activityClient struct {
	ihk.Client
	a cpuActivity
}

// CPUStates implements monitor.Activity.
func (c activityClient) CPUStates(ctx context.Context, os int) ([]monitor.CPUState, error) {
	acts, err := c.a.CPUActivity(ctx, os)
	if err != nil {
		return nil, err
	}
	out := make([]monitor.CPUState, len(acts))
	for i, a := range acts {
		out[i] = monitor.CPUState(a.State)
	}
	return out, nil
}

// withActivity returns c, with monitor.Activity when the backend reads the
// monitor page (the real driver; the simulator has no monitor page).
func withActivity(c ihk.Client) ihk.Client {
	if a, ok := c.(cpuActivity); ok {
		return activityClient{Client: c, a: a}
	}
	return c
}
