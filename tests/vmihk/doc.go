// Package vmihk holds the tests that run inside the throw-away test VM
// (scripts/vm-testdrv) against ihk_testdrv, the kernel-side test double of
// IHK's device interface: the prolog and epilog with IHKBackend=ihk take real
// CPUs offline through the kernel's CPU hotplug, take real pages away from
// Linux, and must give both back, also when the prolog is killed after any
// of its steps; the monitor samples and receives the driver's events beside
// them. Outside the VM every test skips.
package vmihk
