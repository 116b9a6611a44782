// Package accounting turns the per-node LWK usage records that lwk-monitor
// keeps into one per-job record stored in Slurm's accounting database, the
// way Princeton's jobstats does: a controller-side step (EpilogSlurmctld or a
// catch-up timer) gathers every node's final record over HTTP from the
// monitors, merges them, and stores one compact, versioned, quote-free
// string with `sacctmgr -i modify job where jobid=N set SystemComment=...`
// (sacctmgr turns '"' into '`', so JSON cannot be stored as is).
//
// The stored form is Prefix followed by the unpadded, lower-case base32 of
// the gzipped JSON of a JobRecord (Slurm 22.05's sacctmgr lower-cases the
// value, so base64 would not survive). Its size is bounded whatever the node count:
// up to DetailNodes nodes are kept one by one; beyond that, each quantity is
// kept as min/median/max plus the outlier nodes (see Merge).
//
// Kernel interfaces: none. It speaks HTTP to lwk-monitor and runs sacctmgr
// and sacct by argv.
package accounting
