/*
 * run.c - fork + execve runner with an optional time limit and stdout
 * capture, and the PATH resolver the pre-23.11 task path needs. See run.h.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(char *errbuf, size_t errcap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *errbuf, size_t errcap, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errcap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errcap, fmt, ap);
	va_end(ap);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the pipe holds now into out; closes it at EOF (sets *fd to
 * -1). Bytes past cap - 1 are read and dropped, so the child never blocks
 * on a full pipe. */
static void drain(int *fd, char *out, size_t cap, size_t *got)
{
	char sink[512];
	ssize_t n;

	for (;;) {
		if (*got + 1 < cap)
			n = read(*fd, out + *got, cap - 1 - *got);
		else
			n = read(*fd, sink, sizeof(sink));
		if (n > 0) {
			if (*got + 1 < cap)
				*got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) { /* EOF: every writer is gone */
			close(*fd);
			*fd = -1;
		}
		return; /* EAGAIN, or EOF */
	}
}

/* Waits up to ms for the child, draining the pipe meanwhile. Returns the
 * waitpid result: pid when it ended, 0 when still running, -1 on error. */
static pid_t wait_for(pid_t pid, int *status, long ms, int *fd, char *out, size_t cap,
		      size_t *got)
{
	long deadline = now_ms() + ms;
	int nap = 1;
	pid_t w;

	for (;;) {
		w = waitpid(pid, status, WNOHANG);
		if (w < 0 && errno == EINTR)
			continue;
		if (w != 0)
			return w;
		if (now_ms() >= deadline)
			return 0;
		if (*fd >= 0) {
			struct pollfd p = { .fd = *fd, .events = POLLIN };

			if (poll(&p, 1, nap) > 0)
				drain(fd, out, cap, got);
		} else {
			usleep((useconds_t)nap * 1000);
		}
		if (nap < 10)
			nap *= 2;
	}
}

int lwk_run(char *const argv[], char *const envp[], int timeout_ms,
	    char *out, size_t cap, char *errbuf, size_t errcap)
{
	int status = 0, pipefd[2] = { -1, -1 }, rc = -1;
	struct sigaction dfl, saved;
	size_t got = 0;
	long maxfd;
	pid_t pid, w;

	say(errbuf, errcap, "no error");
	if (out != NULL) {
		if (cap == 0) {
			say(errbuf, errcap, "%s: output buffer of 0 bytes", argv[0]);
			return -1;
		}
		out[0] = '\0';
		/* Only our end is non-blocking: the child writes normally. */
		if (pipe2(pipefd, O_CLOEXEC) < 0) {
			say(errbuf, errcap, "%s: pipe: %s", argv[0], strerror(errno));
			return -1;
		}
		if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0) {
			say(errbuf, errcap, "%s: pipe: %s", argv[0], strerror(errno));
			close(pipefd[0]);
			close(pipefd[1]);
			return -1;
		}
	}
	/*
	 * With SIGCHLD ignored (or SA_NOCLDWAIT), the kernel reaps our child
	 * itself and waitpid fails with ECHILD: the exit status is lost. The
	 * submitting process is the user's (sbatch, srun, a workflow tool
	 * that ignores SIGCHLD), so set the default disposition for the
	 * child's life and restore the caller's afterwards. The child
	 * inherits the default, and keeps it across execve.
	 */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	if (sigaction(SIGCHLD, &dfl, &saved) < 0) {
		say(errbuf, errcap, "%s: reset SIGCHLD: %s", argv[0], strerror(errno));
		if (out != NULL) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		return -1;
	}
	/* Before the fork: sysconf is not async-signal-safe. */
	maxfd = sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > (1L << 20))
		maxfd = 1L << 20;
	pid = fork();
	if (pid < 0) {
		say(errbuf, errcap, "%s: fork: %s", argv[0], strerror(errno));
		if (out != NULL) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		sigaction(SIGCHLD, &saved, NULL);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		static const char msg[] = "lwk: exec failed\n";
		int closed = 0;

		/* Async-signal-safe calls only: the parent may be threaded. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* dup2 clears close-on-exec on the copy; the pipe's own
		 * descriptors go with close_range or at exec. */
		if (out != NULL && dup2(pipefd[1], STDOUT_FILENO) < 0)
			_exit(127);
		/* No slurmd/slurmstepd descriptor leaks into the Go binaries:
		 * close_range where glibc and the kernel have it (glibc 2.34,
		 * Linux 5.9), else one by one (EL8: glibc 2.28, Linux 4.18). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
		closed = close_range(3, ~0U, 0) == 0;
#endif
		for (long fd = 3; !closed && fd < maxfd; fd++)
			close((int)fd);
		execve(argv[0], argv, envp);
		if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
			/* nothing left to report to */
		}
		_exit(127);
	}
	if (out != NULL)
		close(pipefd[1]);

	if (timeout_ms <= 0 && out == NULL) {
		do {
			w = waitpid(pid, &status, 0);
		} while (w < 0 && errno == EINTR);
	} else {
		/* No limit with a pipe to drain: wait in slices of a day. */
		long limit = timeout_ms > 0 ? timeout_ms : 86400000L;

		do {
			w = wait_for(pid, &status, limit, &pipefd[0], out, cap, &got);
		} while (w == 0 && timeout_ms <= 0);
		if (w == 0) {
			say(errbuf, errcap, "%s still running after %d ms; killed", argv[0], timeout_ms);
			kill(pid, SIGKILL);
			w = wait_for(pid, &status, LWK_RUN_REAP_MS, &pipefd[0], out, cap, &got);
			if (w == 0) {
				say(errbuf, errcap, "%s still running after %d ms and did not die within %d ms of SIGKILL; left behind",
				    argv[0], timeout_ms, LWK_RUN_REAP_MS);
			}
			goto out;
		}
	}
	if (w < 0) {
		say(errbuf, errcap, "%s: waitpid %d: %s", argv[0], (int)pid, strerror(errno));
		goto out;
	}
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		say(errbuf, errcap, "%s killed by signal %d", argv[0], WTERMSIG(status));
	else
		say(errbuf, errcap, "%s ended with wait status 0x%x", argv[0], (unsigned)status);
out:
	if (out != NULL) {
		if (pipefd[0] >= 0) {
			drain(&pipefd[0], out, cap, &got);
			if (pipefd[0] >= 0)
				close(pipefd[0]);
		}
		out[got] = '\0';
	}
	sigaction(SIGCHLD, &saved, NULL);
	return rc;
}

int lwk_resolve(const char *prog, char *const env[], char *out, size_t cap)
{
	const char *path = "/usr/local/bin:/usr/bin:/bin", *p, *end;
	char *const *e;

	if (strchr(prog, '/') != NULL) {
		if ((size_t)snprintf(out, cap, "%s", prog) >= cap)
			return -1;
		return 0;
	}
	for (e = env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0) {
			path = *e + 5;
			break;
		}
	for (p = path;; p = end + 1) {
		struct stat st;
		size_t dlen;
		int n;

		end = strchr(p, ':');
		dlen = end ? (size_t)(end - p) : strlen(p);
		if (dlen == 0)
			n = snprintf(out, cap, "./%s", prog); /* empty entry: cwd */
		else
			n = snprintf(out, cap, "%.*s/%s", (int)dlen, p, prog);
		if (n > 0 && (size_t)n < cap && stat(out, &st) == 0 &&
		    S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return 0;
		if (end == NULL)
			return -1;
	}
}
