package plan

import (
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// ikcMap routes each LWK CPU's IKC interrupts (its system-call offloads to
// the mcexec proxies) to an OS core, as mcreboot.sh's -r map does: an OS
// core of the CPU's own NUMA node when it has one, else of the nearest node
// that has one (distance, lowest node ID breaking ties). A node's LWK CPUs
// are dealt round-robin over its candidate OS cores, ascending, so that no
// one core takes every interrupt. Offline OS cores are never targets, nor
// are OS cores from driverMaxCPUs up: SET_IKC_MAP refuses a target the
// driver cannot number (EINVAL), as it refuses such an LWK CPU. Without any
// such OS core the map is empty and the driver's default, Linux CPU 0, stays.
func ikcMap(t *topology.Topology, lwk []int, osCores cpuset.CPUSet) []ihk.IKCRoute {
	online := t.OnlineOf(osCores).Difference(beyondDriver(osCores))
	if online.IsEmpty() {
		return nil
	}
	byNode := map[int][]int{} // NUMA node → its online OS cores, ascending
	for _, c := range online.List() {
		if cpu, ok := t.CPU(c); ok {
			byNode[cpu.NUMANode] = append(byNode[cpu.NUMANode], c)
		}
	}
	withCores := cpuset.New(sortedNodes(byNode)...)
	next := map[int]int{}    // target node → round-robin position
	nearest := map[int]int{} // LWK CPU's node without OS cores → target node
	routes := make([]ihk.IKCRoute, 0, len(lwk))
	for _, c := range lwk {
		cpu, _ := t.CPU(c)
		target := cpu.NUMANode
		if _, ok := byNode[target]; !ok {
			n, ok := nearest[target]
			if !ok {
				n = rankByDistance(t, cpu.NUMANode, withCores)[0]
				nearest[target] = n
			}
			target = n
		}
		cores := byNode[target]
		routes = append(routes, ihk.IKCRoute{CPU: c, Target: cores[next[target]%len(cores)]})
		next[target]++
	}
	return routes
}
