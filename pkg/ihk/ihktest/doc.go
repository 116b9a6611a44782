// Package ihktest is a conformance suite for ihk.Client implementations.
// Run drives a backend through the lifecycle slurm-lwk's prolog and epilog
// use (the order of McKernel's mcreboot.sh: reserve memory and CPUs,
// create, assign, load, set kernel arguments, boot, wait for RUNNING, shut
// down, destroy, release)
// and through the driver's refusals, checking every error with errors.Is
// against the ihk sentinels. It speaks to the IHK devices only through the
// ihk.Client under test, so the same suite runs against the simulator
// (ihk/sim) and, on a machine with the IHK module, the ioctl backend.
//
// The suite changes node state. Every subtest undoes what it did (destroys
// the instances it created, releases exactly the CPUs and chunks it
// reserved), but it must not run against a node that is in use.
package ihktest
