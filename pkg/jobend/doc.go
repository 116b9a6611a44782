// Package jobend records that a job attempt's epilog has run on this node,
// so that the attempt's prolog, if it takes the node lock only afterwards,
// does not boot an LWK that no epilog will ever tear down (slurmd runs the
// prolog and the epilog of a job independently: a job cancelled while its
// prolog waits for the node lock gets its epilog at once).
//
// A record is an empty file <StateDir>/ended/job-<id>.<attempt>, where the
// attempt is the job's restart count (SLURM_JOB_RESTART_COUNT): a requeued
// job's next attempt is a different key, so it boots normally. The epilog
// writes the record under the node lock before it tears anything down; the
// prolog checks it under the lock before it plans; teardown treats another
// job whose record exists as ended, so its LWK is collected by the next
// epilog or by lwkctl cleanup. Records older than the longest a prolog can
// wait are pruned.
//
// Kernel interface: files in a root-only directory (0700, files 0600).
package jobend
