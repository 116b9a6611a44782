package proxycgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/cgroups"
)

// FS is the cgroup filesystem as the confinement uses it. Kernel is the
// real one; tests pass an emulation rooted in a temp dir.
type FS interface {
	// Mkdir creates a cgroup (the kernel fills it with control files);
	// an existing one is success.
	Mkdir(path string) error
	// Read and Write access one control file of a cgroup.
	Read(dir, file string) (string, error)
	Write(dir, file, data string) error
	// Attach moves a process (all its threads) into the cgroup.
	Attach(dir string, pid int) error
	// Remove removes a cgroup and its child cgroups, retrying while the
	// kernel answers EBUSY (a process leaving is still accounted); a
	// missing cgroup is success.
	Remove(path string) error
}

// Kernel is the real cgroup filesystem, through opencontainers/cgroups: its
// file access refuses anything that is not a cgroupfs file and, under
// /sys/fs/cgroup, resolves paths with openat2 beneath that root; Attach
// retries EINVAL (a task still being created) and Remove backs off on EBUSY.
type Kernel struct{}

// Mkdir implements FS. 0755: root only may create, move or change anything.
func (Kernel) Mkdir(path string) error {
	if err := os.Mkdir(path, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", path, err)
	}
	return nil
}

// Read implements FS.
func (Kernel) Read(dir, file string) (string, error) {
	s, err := cgroups.ReadFile(dir, file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.Join(dir, file), err)
	}
	return s, nil
}

// Write implements FS.
func (Kernel) Write(dir, file, data string) error {
	if err := cgroups.WriteFile(dir, file, data); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

// Attach implements FS.
func (Kernel) Attach(dir string, pid int) error {
	if err := cgroups.WriteCgroupProc(dir, pid); err != nil {
		return fmt.Errorf("move pid %s into %s: %w", strconv.Itoa(pid), dir, err)
	}
	return nil
}

// Remove implements FS.
func (Kernel) Remove(path string) error {
	if err := cgroups.RemovePath(path); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", path, err)
	}
	return nil
}
