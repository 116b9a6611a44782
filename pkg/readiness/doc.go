// Package readiness tells how much memory IHK could reserve for an LWK on
// each job NUMA node right now: the node's free memory
// (/sys/devices/system/node/nodeN/meminfo, MemFree) and the part of it in
// free runs of at least 4 MiB (IHK_RESERVE_MEM_GRANULE), from the buddy
// allocator's free lists in /proc/buddyinfo (per node and zone, the count of
// free blocks of each order). IHK reserves memory in physically contiguous
// blocks, so free memory in smaller runs cannot be reserved.
package readiness
