// Package defrag defragments the job NUMA nodes right before LWK memory is
// reserved (the paper's future work, §6.2; mcreboot.sh's drop-caches and
// compaction), through pkg/memblock:
//
//   - drop clean page cache (/proc/sys/vm/drop_caches, machine-wide, so
//     only where the site allows it);
//   - compact each job node (/sys/devices/system/node/nodeN/compact);
//   - offline and online again the job-node blocks that are in ZONE_MOVABLE
//     and partly used (/sys/devices/system/memory/memoryN/state): offlining
//     migrates the stragglers away, other nodes first.
//
// Every step is bounded by a time budget, skipped cleanly when the kernel
// lacks the interface, and reported with its duration; the contiguous
// share of the job nodes is measured before and after. A block is
// journaled before it goes offline and after it is back online, so a
// crash in between is repaired by Recover.
package defrag
