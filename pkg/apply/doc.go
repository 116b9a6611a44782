// Package apply is lwk-prolog's core: it carries out a plan against IHK step
// by step, journaling each side effect before it is attempted and after it
// succeeded, and rolls everything back (through package teardown) when a step
// fails.
//
// The steps, in order (package steps names them and holds the list):
// defrag_memory (when the plan asks for it: job-node memory blocks
// offlined and onlined to defragment them), RESERVE_MEM, RESERVE_CPU,
// CREATE_OS with GET_BUILDID (compared with mcexec's, lwk.conf
// McexecBuildID), ASSIGN_CPU (in plan order: it defines LWK CPU numbering)
// with SET_IKC_MAP when the plan routes IKC, ASSIGN_MEM, LOAD, SET_KARGS,
// BOOT, STATUS polled until RUNNING, read-write access to /dev/mcosN for the
// job's user (a POSIX ACL entry; the node stays root's, mode 0600),
// confine_proxies (the job's proxy cgroups, package proxycgroup) and the
// run marker that tells the SPANK plugin to wrap tasks in mcexec. Memory is
// reserved before CPUs, as mcreboot.sh does: offlining CPUs first would
// leave Linux fewer CPUs to compact memory with.
//
// apply owns the prolog's waits and retries (the backends do neither, see
// package retry): every IHK call is retried at once on EINTR, and the wait
// for RUNNING polls STATUS every StatusInterval within BootTimeout, failing
// at once on any status that is not on the way to RUNNING (see starting).
//
// IHK does not say who reserved what. reserve_memory therefore records the
// chunks the reservation added to the pool (the pool before and after,
// under the node lock), which is what teardown's claims are made of.
package apply
