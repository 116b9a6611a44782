// Package metrics exposes lwk-monitor's cache as Prometheus metrics
// (github.com/prometheus/client_golang: the reference client, whose
// registry, exposition format and const-metric helpers this would otherwise
// reimplement). Names carry the lwk_ prefix and base units; labels are
// bounded (os: at most 64 instances per IHK device; numa: the node's NUMA
// nodes; event kinds, statuses and page sizes: fixed sets). A scrape reads
// the monitor's snapshot only: it never causes an IHK call.
//
// Kernel interfaces: none.
package metrics
