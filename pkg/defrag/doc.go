// Package defrag defragments the job NUMA nodes right before LWK memory is
// reserved (the paper's future work, §6.2; mcreboot.sh's drop-caches and
// compaction), through pkg/memblock:
//
//   - drop clean page cache (/proc/sys/vm/drop_caches, machine-wide, so
//     only where the site allows it);
//   - compact each job node (/sys/devices/system/node/nodeN/compact);
//   - offline and online again the job-node blocks that are in ZONE_MOVABLE
//     and partly used (/sys/devices/system/memory/memoryN/state): offlining
//     migrates the stragglers away, other nodes first;
//   - with OnlineKernel (for IHK, whose reservation allocates with
//     GFP_KERNEL and so never from ZONE_MOVABLE on Linux >= 4.14): also
//     evacuate the partly used blocks that are not Movable, and online
//     every evacuated block as kernel memory (online_kernel), Movable ones
//     included. The Movable blocks so converted are listed in the result
//     (kernel_blocks, for the admin); the epilog turns back into
//     ZONE_MOVABLE the Movable blocks the prolog journaled before the step.
//
// Every step but a conversion to kernel memory is bounded by a time
// budget, skipped cleanly when the kernel lacks the interface, and
// reported with its duration; the contiguous share of the job nodes is
// measured before and after. The prolog journals the whole step, with the
// job blocks Movable and offline at its start, before it runs; a crash in
// the middle is repaired by the epilog (nodeprep's RestoreJobBlocks: every
// job block offline since the step comes back online). A caller may also
// pass a Journal that records each block's evacuation.
package defrag
