package nodeprep

import (
	"k8s.io/utils/cpuset"

	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/affinity"
	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysconfine"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// Machine is what the planner and the report read from a node.
type Machine struct {
	// Root is the directory everything was read below.
	Root string
	// Topo is the CPU, NUMA node and memory block model.
	Topo *topology.Topology
	// Zones is /proc/zoneinfo.
	Zones []memfrag.Zone
	// Cmdline is /proc/cmdline split into words (nil when absent).
	Cmdline []string
	// IRQs is /proc/irq (nil when absent).
	IRQs []affinity.IRQ
	// Processes is /proc/PID.
	Processes []affinity.Process
	// NormalNodes are the nodes with memory in a zone other than Movable
	// (node/has_normal_memory).
	NormalNodes cpuset.CPUSet
	// Confine is how system processes can be confined; Units the systemd
	// units that would be.
	Confine sysconfine.Mode
	Units   []string
}

// ReadMachine reads the node below root.
func ReadMachine(root string) (*Machine, error) {
	if root == "" {
		root = "/"
	}
	m := &Machine{Root: root}
	var err error
	if m.Topo, err = topology.Read(root); err != nil {
		return nil, err
	}
	f, err := sysfs.New(root)
	if err != nil {
		return nil, err
	}
	if m.NormalNodes, err = f.NodesWithNormalMemory(); err != nil {
		return nil, err
	}
	if m.Zones, err = memfrag.ReadZoneInfo(root); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	switch {
	case err == nil:
		m.Cmdline = strings.Fields(string(b))
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	m.IRQs, err = affinity.ReadIRQs(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if m.Processes, err = affinity.ReadProcesses(root); err != nil {
		return nil, fmt.Errorf("read processes: %w", err)
	}
	m.Confine = sysconfine.Detect(root)
	if m.Confine == sysconfine.ModeSystemd {
		m.Units = sysconfine.SystemdUnits(root)
	}
	return m, nil
}
