// Package nodelock serialises the processes that change IHK state on a node
// (lwk-prolog, lwk-epilog, lwkctl cleanup). IHK itself does not serialise its
// callers: resource queries, reservations and OS creation race with each
// other. The lock is a flock(2) on a root-only file in the state directory,
// so it is released by the kernel when its holder dies, even by SIGKILL.
package nodelock
