// Package cpuhotplug takes CPUs offline and brings them back through
// /sys/devices/system/cpu/cpuN/online ("0" or "1"), below a root directory
// (normally "/"), as IHK's RESERVE_CPU and RELEASE_CPU do in the kernel
// (Documentation/core-api/cpu_hotplug.rst). CPU 0 usually has no online
// file (it cannot go offline on x86 without CONFIG_BOOTPARAM_HOTPLUG_CPU0).
//
// The simulated IHK backend uses it, when lwk.conf asks for real Linux-side
// effects, so that the topology re-read, the proxy cgroups and the epilog
// meet the CPUs a real node would show offline.
package cpuhotplug
