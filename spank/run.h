/*
 * run.h - the shim's process runner and PATH resolver.
 *
 * lwk_run starts a program with fork + execve (argv and envp arrays, never
 * a shell), optionally captures its standard output through a pipe, and
 * waits for it with an optional time limit. lwk_resolve finds a program on
 * a PATH as a task's exec would. lwk_ask has the node service (lwk-monitor)
 * run a job prolog or epilog instead, over its unix socket. None calls into
 * Slurm: errors are described in a caller-supplied buffer, which the shim
 * logs. Tested by test_run.c without a Slurm host.
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

/* lwk_ask's results besides an exit status (0-255) and -1. */
#define LWK_ASK_FALLBACK (-2) /* nothing was started: fork/exec the hook */
#define LWK_ASK_REFUSED (-3)  /* the same, but the socket or its server is
			       * not root's: worth an error in the log */

/* How long lwk_ask waits at each step before the service accepts: to
 * connect, to send its request, and for the first frame of the answer. Once the service accepted, it waits without limit:
 * slurmd's PrologEpilogTimeout bounds the hook. */
#define LWK_ASK_ACCEPT_MS 10000
/* The longest request payload (hook, lwk.conf path, environment). */
#define LWK_ASK_MAX_REQUEST (1 << 20)
/* The longest payload of a frame: a decline's reason, output. */
#define LWK_ASK_MAX_DECLINE 4096
#define LWK_ASK_MAX_OUTPUT 65536

/*
 * lwk_ask asks the node service listening on the unix socket sock to run
 * hook ("prolog" or "epilog") with the lwk.conf conf and the environment
 * envp (NAME=VALUE, NULL-terminated), and waits for it. The socket must be
 * root's and so must the process listening on it, or the environment is
 * not sent.
 *
 * The protocol (the server is pkg/hookserver, wire.go): the request is
 * "LWKHOOK1", the payload's length (4 bytes, big-endian) and the payload:
 * hook, conf and each envp entry, each NUL-terminated. Each frame of the
 * answer is a type byte, its payload's length (4 bytes, big-endian) and
 * the payload: 'a' (accepted, empty), to which the client answers with
 * the byte 'g' (commit: the service starts nothing before it, so a client
 * that gave up waiting for 'a' can run the program without the hook
 * running twice), then any number of 'o' (what the hook wrote to stderr,
 * copied to our fd 2), then 'x' (1 byte: the exit status); or 'n' (not
 * served: why) as the only frame.
 *
 * Returns the hook's exit status (0-255) when the service ran it;
 * LWK_ASK_FALLBACK when nothing was started (no socket, nobody listening,
 * a request too large, declined, no answer within LWK_ASK_ACCEPT_MS, a
 * broken answer before 'a', or the commit could not be sent);
 * LWK_ASK_REFUSED when the socket or the process behind it is not root's
 * (nothing was sent); -1 when the client committed but the outcome is
 * unknown (connection lost, protocol error after 'a'). Unless it returns a status, errbuf (errcap bytes, may be
 * NULL) says why in one line. A closed peer never raises SIGPIPE.
 */
__attribute__((visibility("hidden")))
int lwk_ask(const char *sock, const char *hook, const char *conf, char *const envp[],
	    char *errbuf, size_t errcap);

#endif /* LWK_RUN_H */
