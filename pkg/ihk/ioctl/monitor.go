//go:build linux && (amd64 || arm64)

package ioctl

import (
	"context"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// CPU states of the monitor page (IHK_OS_MONITOR_*, ihk_monitor.h).
const (
	CPUNotBooted     = 0
	CPUIdle          = 1
	CPUUser          = 2
	CPUKernel        = 3
	CPUKernelHeavy   = 4 // futex, nanosleep, sigsuspend, sigtimedwait: never counted as hung
	CPUKernelOffload = 5 // waiting for a Linux proxy
	CPUFreezing      = 8
	CPUFrozen        = 9
	CPUThaw          = 10
	CPUPanic         = 99
)

// monitorAllowThaw is the ALLOW_THAW_REQUEST flag in bit 31 of the state.
const monitorAllowThaw uint32 = 1 << 31

// CPUActivity is one LWK CPU's entry of the monitor page (ihk.CPUActivity).
type CPUActivity = ihk.CPUActivity

// CPUActivity reads the monitor page of a booted instance: IHK_OS_GET_USAGE
// for the header (CPU count), then IHK_OS_GET_CPU_USAGE for that many
// entries, in LWK CPU order. Both are plain memory reads that neither
// interrupt the LWK nor write to the kernel log (unlike IHK_OS_STATUS on
// x86), so they suit frequent sampling. ENOSYS before boot. This is not part
// of ihk.Client; the monitor may use it through a type assertion.
func (c *Client) CPUActivity(ctx context.Context, os int) ([]CPUActivity, error) {
	var out []CPUActivity
	err := c.withOS(ctx, requestNames[reqOSGetUsage], os, func(fd int) error {
		hdr := &osMonitor{}
		r, errno := c.pointer(fd, reqOSGetUsage, unsafe.Pointer(hdr))
		if err := zero(reqOSGetUsage, os, r, errno, ""); err != nil {
			return err
		}
		n := hdr.NumProcessors
		if n == 0 || n > maxCPUs {
			return fail(reqOSGetUsage, os, syscall.EIO, fmt.Sprintf("num_processors %d", n))
		}
		cpus := make([]cpuMonitor, n)
		r, errno = c.pointer(fd, reqOSGetCPUUsage, unsafe.Pointer(&cpus[0]))
		if err := zero(reqOSGetCPUUsage, os, r, errno, fmt.Sprintf("%d cpus", n)); err != nil {
			return err
		}
		out = make([]CPUActivity, n)
		for i, m := range cpus {
			out[i] = CPUActivity{State: int32(uint32(m.Status) &^ monitorAllowThaw), Counter: m.Counter}
		}
		return nil
	})
	return out, err
}
