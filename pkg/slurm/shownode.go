package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// NodeLayout is how slurm.conf (as slurmctld holds it) describes a node's
// CPUs. Slurm's abstract CPU IDs follow it: if it does not match the
// hardware (say ThreadsPerCore=1 on a node with two threads per core), the
// IDs cannot be mapped to Linux CPU numbers.
type NodeLayout struct {
	Sockets, CoresPerSocket, ThreadsPerCore int
}

func (l NodeLayout) String() string {
	return fmt.Sprintf("%d sockets x %d cores x %d threads", l.Sockets, l.CoresPerSocket, l.ThreadsPerCore)
}

// ParseShowNode reads the layout from `scontrol show node -o <node>`
// output (one line per node).
func ParseShowNode(out []byte, node string) (NodeLayout, error) {
	fields := strings.Fields(string(out))
	if len(fields) == 0 || fields[0] != "NodeName="+node {
		return NodeLayout{}, fmt.Errorf("show node %s: output is not about node %s", node, node)
	}
	vals := map[string]int{}
	seen := map[string]int{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || (k != "Sockets" && k != "CoresPerSocket" && k != "ThreadsPerCore") {
			continue
		}
		seen[k]++
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return NodeLayout{}, fmt.Errorf("show node %s: bad %s=%q", node, k, v)
		}
		vals[k] = n
	}
	for _, k := range []string{"Sockets", "CoresPerSocket", "ThreadsPerCore"} {
		if seen[k] != 1 {
			return NodeLayout{}, fmt.Errorf("show node %s: want one %s=, found %d", node, k, seen[k])
		}
	}
	return NodeLayout{Sockets: vals["Sockets"], CoresPerSocket: vals["CoresPerSocket"], ThreadsPerCore: vals["ThreadsPerCore"]}, nil
}

// ShowNode runs `scontrol show node -o <node>` and returns its layout.
func ShowNode(ctx context.Context, r Runner, scontrol, node string) (NodeLayout, error) {
	if err := checkProgram(scontrol); err != nil {
		return NodeLayout{}, err
	}
	if err := CheckNodeName(node); err != nil {
		return NodeLayout{}, fmt.Errorf("show node: %w", err)
	}
	out, err := r.Run(ctx, []string{scontrol, "show", "node", "-o", node})
	if err != nil {
		return NodeLayout{}, fmt.Errorf("show node %s: %w", node, err)
	}
	return ParseShowNode(out, node)
}
