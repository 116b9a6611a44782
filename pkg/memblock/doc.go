// Package memblock changes the state of memory blocks and asks the kernel
// to compact or drop caches, below a root directory (normally "/"):
//
//   - /sys/devices/system/memory/memoryN/state: write "offline", then
//     "online_movable" or "online_kernel" (Documentation/admin-guide/mm/
//     memory-hotplug.rst). A block can only change zone while offline, and
//     offlining migrates its pages away or fails with EBUSY (unmovable
//     pages: slab, page tables, memblock-reserved memory).
//   - /sys/devices/system/node/nodeN/compact: write "1" to compact all
//     zones of node N (CONFIG_COMPACTION, CONFIG_NUMA).
//   - /proc/sys/vm/drop_caches: write "1" to drop clean page cache
//     (node-wide; dirty pages are not written back by this).
//
// Reading goes through pkg/sysfs. Every write names the file it acted on in
// its error.
package memblock
