/*
 * run.c - fork + execve runner with an optional time limit and stdout
 * capture, the PATH resolver the pre-23.11 task path needs, and the node
 * service's client. See run.h.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
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

/* ---- the node service's client (lwk_ask) ---------------------------- */

#define ASK_MAGIC "LWKHOOK1"
#define ASK_COMMIT "g"

/* Sends all n bytes; MSG_NOSIGNAL: a peer that went away is an error, not
 * a SIGPIPE in slurmd's process. Returns 0, or -1 with errno. */
static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes. Returns 0, 1 at end of file, or -1 with errno
 * (EAGAIN when the receive timeout passed). */
static int recv_all(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* write(2) with SIGPIPE blocked: a pipe whose reader is gone gives EPIPE
 * instead of killing slurmd's process. The SIGPIPE the write raised is
 * taken back, unless one was already pending. */
static ssize_t write_nosigpipe(int fd, const char *p, size_t n)
{
	static const struct timespec now = { 0, 0 };
	sigset_t pipe_set, old, pending;
	int was_pending, saved;
	ssize_t w;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) != 0)
		return -1;
	was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	w = write(fd, p, n);
	saved = errno;
	if (w < 0 && saved == EPIPE && !was_pending) {
		while (sigtimedwait(&pipe_set, NULL, &now) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return w;
}

/* Copies the hook's output to our stderr, as the program's would have gone
 * there; errors are ignored. Under systemd that is the journal's socket
 * (send with MSG_NOSIGNAL); anything else gets write_nosigpipe. A reader
 * gone away never raises SIGPIPE. */
static void to_stderr(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(STDERR_FILENO, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == ENOTSOCK)
			w = write_nosigpipe(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static uint32_t get_be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Builds the request: magic, payload length, hook, conf, envp. Returns it
 * (malloc'ed, *len bytes), or NULL when it is too large or memory is short
 * (errbuf says which). */
static char *build_request(const char *hook, const char *conf, char *const envp[], size_t *len,
			   char *errbuf, size_t errcap)
{
	size_t payload = strlen(hook) + 1 + strlen(conf) + 1, off, n, i;
	char *req;

	for (i = 0; envp != NULL && envp[i] != NULL && payload <= LWK_ASK_MAX_REQUEST; i++)
		payload += strlen(envp[i]) + 1;
	if (payload > LWK_ASK_MAX_REQUEST) {
		say(errbuf, errcap, "request too large for the node service (more than %d bytes)",
		    LWK_ASK_MAX_REQUEST);
		return NULL;
	}
	*len = sizeof(ASK_MAGIC) - 1 + 4 + payload;
	req = malloc(*len);
	if (req == NULL) {
		say(errbuf, errcap, "request for the node service: %s", strerror(errno));
		return NULL;
	}
	off = sizeof(ASK_MAGIC) - 1;
	memcpy(req, ASK_MAGIC, off);
	req[off++] = (char)(payload >> 24);
	req[off++] = (char)(payload >> 16);
	req[off++] = (char)(payload >> 8);
	req[off++] = (char)payload;
	n = strlen(hook) + 1;
	memcpy(req + off, hook, n);
	off += n;
	n = strlen(conf) + 1;
	memcpy(req + off, conf, n);
	off += n;
	for (i = 0; envp != NULL && envp[i] != NULL; i++) {
		n = strlen(envp[i]) + 1;
		memcpy(req + off, envp[i], n);
		off += n;
	}
	return req;
}

/* Connects to sock, checks that root listens there and sends the request.
 * Returns the connected socket, or LWK_ASK_FALLBACK or LWK_ASK_REFUSED
 * (errbuf says why). */
static int connect_send(const char *sock, const char *req, size_t len, char *errbuf,
			size_t errcap)
{
	struct timeval tv = { .tv_sec = LWK_ASK_ACCEPT_MS / 1000,
			      .tv_usec = (LWK_ASK_ACCEPT_MS % 1000) * 1000 };
	struct sockaddr_un addr;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd, rc;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(addr.sun_path)) {
		say(errbuf, errcap, "%s: path too long for a unix socket", sock);
		return LWK_ASK_FALLBACK;
	}
	strcpy(addr.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		say(errbuf, errcap, "socket: %s", strerror(errno));
		return LWK_ASK_FALLBACK;
	}
	/* The send timeout bounds connect too (a full backlog), and the
	 * receive timeout the wait for the first frame. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		say(errbuf, errcap, "%s: set timeouts: %s", sock, strerror(errno));
		close(fd);
		return LWK_ASK_FALLBACK;
	}
	do {
		rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	} while (rc < 0 && errno == EINTR);
	if (rc < 0) { /* the service is not running */
		say(errbuf, errcap, "connect %s: %s", sock, strerror(errno));
		close(fd);
		return LWK_ASK_FALLBACK;
	}
	/* The socket file was root's; so must be the process now behind it. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || clen != sizeof(cred)) {
		say(errbuf, errcap, "%s: cannot tell who listens: %s; the job's environment is not sent",
		    sock, strerror(errno));
		close(fd);
		return LWK_ASK_REFUSED;
	}
	if (cred.uid != 0) {
		say(errbuf, errcap, "%s: listened on by uid %u, not root; the job's environment is not sent",
		    sock, (unsigned)cred.uid);
		close(fd);
		return LWK_ASK_REFUSED;
	}
	if (send_all(fd, req, len) < 0) { /* nothing was accepted yet */
		say(errbuf, errcap, "send to %s: %s", sock, strerror(errno));
		close(fd);
		return LWK_ASK_FALLBACK;
	}
	return fd;
}

int lwk_ask(const char *sock, const char *hook, const char *conf, char *const envp[],
	    char *errbuf, size_t errcap)
{
	static const struct timeval forever = { 0, 0 };
	char buf[LWK_ASK_MAX_DECLINE], *req;
	unsigned char head[5];
	int fd, accepted = 0, rc;
	struct stat st;
	size_t len;
	uint32_t n;

	say(errbuf, errcap, "no error");
	if (lstat(sock, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			say(errbuf, errcap, "no %s", sock);
		else
			say(errbuf, errcap, "%s: %s", sock, strerror(errno));
		return LWK_ASK_FALLBACK;
	}
	/* Only root's service gets the job's environment. */
	if (!S_ISSOCK(st.st_mode) || st.st_uid != 0) {
		say(errbuf, errcap, "%s is not a socket owned by root; the job's environment is not sent",
		    sock);
		return LWK_ASK_REFUSED;
	}
	req = build_request(hook, conf, envp, &len, errbuf, errcap);
	if (req == NULL)
		return LWK_ASK_FALLBACK;
	fd = connect_send(sock, req, len, errbuf, errcap);
	free(req);
	if (fd < 0)
		return fd;

	for (;;) {
		rc = recv_all(fd, head, sizeof(head));
		if (rc != 0)
			goto lost;
		n = get_be32(head + 1);
		switch (head[0]) {
		case 'a': /* accepted: commit, then the hook runs as long as it takes */
			if (accepted || n != 0)
				goto bad;
			if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof(forever)) < 0) {
				say(errbuf, errcap, "%s: clear the receive timeout: %s", sock, strerror(errno));
				rc = LWK_ASK_FALLBACK;
				goto out;
			}
			/* The service starts nothing before this byte: up to here,
			 * falling back cannot run the hook twice. */
			if (send_all(fd, ASK_COMMIT, 1) < 0) {
				say(errbuf, errcap, "commit to %s: %s", sock, strerror(errno));
				rc = LWK_ASK_FALLBACK;
				goto out;
			}
			accepted = 1;
			continue;
		case 'n': /* not served: why, for the log */
			if (accepted || n > sizeof(buf))
				goto bad;
			rc = recv_all(fd, buf, n);
			if (rc != 0)
				goto lost;
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
					buf[i] = '?';
			say(errbuf, errcap, "declined: %.*s", (int)n, buf);
			rc = LWK_ASK_FALLBACK;
			goto out;
		case 'o': /* the hook's stderr */
			if (!accepted || n > LWK_ASK_MAX_OUTPUT)
				goto bad;
			while (n > 0) {
				size_t part = n < sizeof(buf) ? n : sizeof(buf);

				rc = recv_all(fd, buf, part);
				if (rc != 0)
					goto lost;
				to_stderr(buf, part);
				n -= (uint32_t)part;
			}
			continue;
		case 'x': /* the hook's exit status */
			if (!accepted || n != 1)
				goto bad;
			rc = recv_all(fd, buf, 1);
			if (rc != 0)
				goto lost;
			rc = (unsigned char)buf[0];
			goto out;
		default:
			goto bad;
		}
	}
lost:
	if (rc > 0 && accepted)
		say(errbuf, errcap, "the node service closed the connection before the hook finished");
	else if (rc > 0)
		say(errbuf, errcap, "the node service at %s closed the connection without an answer", sock);
	else if (!accepted && (errno == EAGAIN || errno == EWOULDBLOCK))
		say(errbuf, errcap, "no answer from the node service at %s within %d ms", sock,
		    LWK_ASK_ACCEPT_MS);
	else
		say(errbuf, errcap, "read from the node service at %s: %s", sock, strerror(errno));
	rc = accepted ? -1 : LWK_ASK_FALLBACK;
	goto out;
bad:
	say(errbuf, errcap, "protocol error: frame 0x%02x of %u bytes %s the node service accepted", head[0],
	    (unsigned)n, accepted ? "after" : "before");
	rc = accepted ? -1 : LWK_ASK_FALLBACK;
out:
	close(fd);
	return rc;
}
