// Package spool keeps lwk-monitor's files on disk: per-job sample logs
// (JSON lines), per-node final records and saved LWK kernel logs, in one
// root-only directory whose total size is bounded.
//
// Bounds: a job's sample log stops growing at MaxJobBytes (later samples
// are counted as dropped; the final record does not depend on them), and
// when the directory passes MaxTotalBytes the oldest files of jobs that are
// no longer live are removed first. Files are 0600, written with O_NOFOLLOW
// in a directory that is 0700 and owned by the caller.
//
// Kernel interfaces: the file system only.
package spool
