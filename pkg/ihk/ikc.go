package ihk

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/utils/cpuset"
)

// IKCRoute sends one LWK CPU's IKC interrupts (its system-call offloads and
// messages to mcctrl) to one Linux CPU. Without a route the driver uses
// Linux CPU 0 for every LWK CPU.
type IKCRoute struct {
	// CPU is the Linux id of a CPU assigned to the instance.
	CPU int `json:"cpu"`
	// Target is the Linux id of an online CPU that is not reserved.
	Target int `json:"target"`
}

// FormatIKCMap writes routes in ihkosctl's and mcreboot.sh's -r syntax:
// "<lwk-cpu-list>:<linux-cpu>" groups joined by "+", ordered by target,
// e.g. "2-7:0+8-15:1".
func FormatIKCMap(routes []IKCRoute) string {
	byTarget := map[int][]int{}
	for _, r := range routes {
		byTarget[r.Target] = append(byTarget[r.Target], r.CPU)
	}
	targets := make([]int, 0, len(byTarget))
	for t := range byTarget {
		targets = append(targets, t)
	}
	sort.Ints(targets)
	parts := make([]string, len(targets))
	for i, t := range targets {
		parts[i] = fmt.Sprintf("%s:%d", cpuset.New(byTarget[t]...), t)
	}
	return strings.Join(parts, "+")
}
