// Package apply is lwk-prolog's core: it carries out a plan against IHK step
// by step, journaling each side effect before it is attempted and after it
// succeeded, and rolls everything back (through package teardown) when a step
// fails.
//
// The steps, in order (package steps names them): RESERVE_MEM, RESERVE_CPU,
// CREATE_OS, ASSIGN_CPU (in plan order: it defines LWK CPU numbering),
// ASSIGN_MEM, LOAD, SET_KARGS, BOOT, STATUS polled until RUNNING, chown of
// /dev/mcosN to the job's user (mode 0600), and the run marker that tells
// the SPANK plugin to wrap tasks in mcexec. Memory is reserved before CPUs,
// as mcreboot.sh does: offlining CPUs first would leave Linux fewer CPUs to
// compact memory with.
//
// IHK does not say who reserved what. reserve_memory therefore records the
// chunks the reservation added to the pool (the pool before and after,
// under the node lock), which is what teardown's claims are made of.
package apply
