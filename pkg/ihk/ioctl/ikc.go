//go:build linux && (amd64 || arm64)

package ioctl

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// buildIDSize is the buffer GET_BUILDID writes into: the driver copies its
// compiled-in string (a short git hash, or the IHK version) with its NUL
// and no length, so the buffer is generous and zeroed. Units: bytes.
const buildIDSize = 256

// SetIKCMap implements ihk.Client (IHK_OS_SET_IKC_MAP). Each source must be
// assigned to the instance and each target online and not reserved, both
// below 512; the driver refuses the map (EBUSY) once the instance has left
// INITIAL.
func (c *Client) SetIKCMap(ctx context.Context, os int, routes []ihk.IKCRoute) error {
	const req = reqOSSetIKCMap
	if len(routes) == 0 {
		return ctx.Err()
	}
	src := make([]int, len(routes))
	dst := make([]int32, len(routes))
	for i, r := range routes {
		src[i] = r.CPU
		dst[i] = int32(r.Target)
		if r.Target < 0 || r.Target >= maxCPUs {
			return invalid(requestNames[req], os, fmt.Sprintf("target cpu %d out of range 0-%d", r.Target, maxCPUs-1))
		}
	}
	if err := checkCPUs(requestNames[req], os, src); err != nil {
		return err
	}
	srcIDs := make([]int32, len(src))
	for i, s := range src {
		srcIDs[i] = int32(s)
	}
	return c.withOS(ctx, requestNames[req], os, func(fd int) error {
		r := &ikcReq{SrcCPUs: &srcIDs[0], DstCPUs: &dst[0], NumCPUs: int32(len(routes))}
		ret, errno := c.pointer(fd, req, unsafe.Pointer(r))
		return zero(req, os, ret, errno, "ikc map "+ihk.FormatIKCMap(routes))
	})
}

// IKCMap implements ihk.Client (IHK_OS_GET_NUM_CPUS, then IHK_OS_GET_IKC_MAP
// with exactly that count: a smaller count makes the driver write past its
// own kernel buffer: ihk linux/core/host_driver.c,
// __ihk_os_get_ikc_map).
func (c *Client) IKCMap(ctx context.Context, os int) ([]ihk.IKCRoute, error) {
	const req = reqOSGetIKCMap
	var routes []ihk.IKCRoute
	err := c.withOS(ctx, requestNames[req], os, func(fd int) error {
		ret, errno := c.value(fd, reqOSGetNumCPUs, 0)
		n, err := count(reqOSGetNumCPUs, os, ret, errno, maxCPUs)
		if err != nil {
			return err
		}
		routes = []ihk.IKCRoute{}
		if n == 0 {
			return nil
		}
		src := make([]int32, n)
		dst := make([]int32, n)
		r := &ikcReq{SrcCPUs: &src[0], DstCPUs: &dst[0], NumCPUs: int32(n)}
		ret, errno = c.pointer(fd, req, unsafe.Pointer(r))
		if err := zero(req, os, ret, errno, fmt.Sprintf("%d cpus", n)); err != nil {
			return err
		}
		for i := range n {
			routes = append(routes, ihk.IKCRoute{CPU: int(src[i]), Target: int(dst[i])})
		}
		return nil
	})
	return routes, err
}

// BuildID implements ihk.Client (IHK_OS_GET_BUILDID).
func (c *Client) BuildID(ctx context.Context, os int) (string, error) {
	const req = reqOSGetBuildID
	var id string
	err := c.withOS(ctx, requestNames[req], os, func(fd int) error {
		buf := make([]byte, buildIDSize)
		ret, errno := c.pointer(fd, req, unsafe.Pointer(&buf[0]))
		if err := zero(req, os, ret, errno, ""); err != nil {
			return err
		}
		end := bytes.IndexByte(buf, 0)
		if end < 0 {
			return fail(req, os, syscall.EOVERFLOW, "build id not NUL-terminated within 256 bytes")
		}
		id = string(buf[:end])
		return nil
	})
	return id, err
}
