// Package memfrag reads how fragmented a node's physical memory is, below a
// root directory (normally "/"), so fixtures can stand in for the kernel:
//
//   - /proc/buddyinfo: free blocks per order, per node and zone
//     ("Node 0, zone   Normal   3 1 0 ..."), order 0 first;
//   - /proc/zoneinfo: each zone's node, start_pfn, spanned, present and
//     managed pages, and its free pages;
//   - /proc/kpageflags: one little-endian uint64 of KPF_* bits per page
//     frame (Documentation/admin-guide/mm/pagemap.rst), read at offset
//     8*PFN; needs CAP_SYS_ADMIN and CONFIG_PROC_PAGE_MONITOR.
//
// FreeRuns turns page flags into runs of physically contiguous free page
// frames. The buddy allocator's largest block is 4 MiB (order 10 with 4 KiB
// pages), far below the 256 MiB an LWK wants, so contiguity is measured on
// the frames themselves, not on buddy orders. The kernel marks only the
// first page of a free buddy block (KPF_BUDDY); the block's other pages
// carry no flags. A free block of order k is aligned to 2^k frames, so the
// block at a KPF_BUDDY frame is taken as the largest aligned block (at most
// order 10) whose other frames all carry no flags. A flagless frame outside
// such a block (a page on a per-CPU free list, or a kernel page allocated
// without any page flag) is counted as not free: the figure errs low.
//
// The package only reads.
package memfrag
