// Package plan decides, for one job on one node, which CPUs and how much
// memory on which NUMA nodes go to the light-weight kernel, which kernel
// image and arguments it boots with, and how the job's mcexec proxies are
// confined. It is a pure function of the node topology, the node
// configuration, the job's allocation on the node, the parsed --lwk-mode
// request and what IHK already holds; it never touches the machine.
//
// The plan's CPU order is the order IHK_OS_ASSIGN_CPU receives, which defines
// the LWK's CPU numbering (LWK CPU 0 boots). Memory sizes are multiples of
// IHK's 4 MiB reservation granule (IHK_RESERVE_MEM_GRANULE).
package plan
