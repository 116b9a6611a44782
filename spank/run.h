/*
 * run.h - the shim's process runner and PATH resolver.
 *
 * lwk_run starts a program with fork + execve (argv and envp arrays, never
 * a shell), optionally captures its standard output through a pipe, and
 * waits for it with an optional time limit. lwk_resolve finds a program on
 * a PATH as a task's exec would. Neither calls into Slurm: errors are
 * described in a caller-supplied buffer, which the shim logs. Tested by
 * test_run.c without a Slurm host.
 */
#ifndef LWK_RUN_H
#define LWK_RUN_H

#include <stddef.h>

/* How long lwk_run waits for a child it killed with SIGKILL after the
 * time limit. A child in uninterruptible sleep (D state) cannot die at
 * once; past this bound it is left to init, and the caller goes on. */
#define LWK_RUN_REAP_MS 2000

/*
 * lwk_run runs argv[0] with argv and envp and waits for it: without limit
 * when timeout_ms <= 0, else at most timeout_ms, after which the child is
 * killed with SIGKILL and reaped (for at most LWK_RUN_REAP_MS more).
 * With out != NULL, the child's stdout is captured into out (NUL-terminated,
 * at most cap - 1 bytes; the rest is dropped). SIGCHLD is set to its default
 * disposition around the wait, so that a caller which ignores SIGCHLD (the
 * kernel then reaps children itself and waitpid fails with ECHILD) still
 * learns the exit status. Returns the exit status (0-255), or -1 when the
 * program could not be started, timed out or did not exit normally; then
 * errbuf (errcap bytes, may be NULL) says why in one line.
 */
__attribute__((visibility("hidden")))
int lwk_run(char *const argv[], char *const envp[], int timeout_ms,
	    char *out, size_t cap, char *errbuf, size_t errcap);

/*
 * lwk_resolve resolves prog on the PATH found in env (a NULL-terminated
 * NAME=VALUE array; /usr/local/bin:/usr/bin:/bin when it has no PATH) as
 * exec_task does: a name with a '/' is taken as it is; an empty PATH entry
 * means the working directory. A candidate must be a regular file the
 * caller may execute (access(X_OK), so run it as the task's user). Writes
 * the path to out and returns 0, or -1 when nothing matches or it does not
 * fit.
 */
__attribute__((visibility("hidden")))
int lwk_resolve(const char *prog, char *const env[], char *out, size_t cap);

#endif /* LWK_RUN_H */
