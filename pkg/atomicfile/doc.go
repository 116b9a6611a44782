// Package atomicfile replaces a file in one directory so that readers see
// either the old content or the new, never a mix: the data goes to a fresh
// temp file in the same directory (open(2) with O_CREAT|O_EXCL|O_NOFOLLOW,
// mode set with fchmod(2) so the umask cannot change it), then rename(2)
// puts it in place. With Durable it also fsyncs the file before the rename
// and the directory after it, so the new content survives a power loss.
//
// Whatever step fails, the temp file is removed before Write returns; a
// process killed between creating and renaming it leaves the temp file,
// whose name starts with the caller's prefix so the caller can sweep it.
//
// The journal (pkg/journal), the job markers (pkg/jobmarker) and the
// simulated driver's state file (pkg/ihk/sim) all write through it.
package atomicfile
