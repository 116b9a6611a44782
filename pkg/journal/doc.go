// Package journal is the crash-safe per-job write-ahead record of slurm-lwk.
//
// lwk-prolog journals every side effect as an intent before it happens and
// marks it done after. lwk-epilog does not replay it: it reads the journals
// to tell what is whose (this job's OS index; other jobs' instances and
// their reservations not yet assigned), undoes what live IHK state shows
// (package teardown), and removes the job's journal once the node is clean.
// lwkctl status and lwk-monitor read them through a Reader, which creates
// nothing. The journal is generic: a step's payload (an OS index, the CPUs,
// the memory chunks actually reserved) is opaque JSON to it, and so is the
// job's plan. The plan is read back for display and accounting: lwk-monitor
// takes the profile from it, lwkctl status the LWK's NUMA map.
//
// Kernel interface: plain files. One file per job, <Dir>/job-<jobid>.journal,
// mode 0600 in a root-only 0700 directory (StateDir/journal). The file is a
// header line followed by the JSON body:
//
//	slurm-lwk-journal v1 sha256=<hex of body> len=<body bytes>\n
//	{ ...JSON body... }
//
// The checksum covers exactly the body bytes that were written, never a
// re-serialisation of a struct. A write goes to a temp file created with
// O_EXCL in the same directory, is fsynced, renamed over the journal with
// rename(2) (atomic within one file system), and the directory is fsynced so
// the rename itself survives a power loss. A reader therefore sees either the
// old or the new file, never a partial one, and Read takes no lock.
//
// Read distinguishes a missing journal (*NotFoundError, ErrNotFound), an
// unreadable one (*CorruptError, ErrCorrupt: truncation, checksum mismatch,
// bad header, bad JSON, job ID not matching the file name) and one written
// by another format version (*VersionError, ErrVersion). The corrupt and
// version messages name the file and tell the administrator what to do.
//
// The package is pure of policy and does not log.
package journal
