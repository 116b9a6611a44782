/*
 * test_run.c - checks lwk_run and lwk_resolve (run.c) without a Slurm host:
 * exit statuses, stdout capture (short, huge, with a grandchild holding the
 * pipe), the time limit and the reaping after SIGKILL, a caller that ignores
 * SIGCHLD, and PATH resolution; and lwk_ask against a fake node service
 * (a forked server on a unix socket that answers with scripted frames).
 *
 * Usage: test_run   (exit status 0 when every check passes)
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                              \
	do {                                                          \
		if (!(cond)) {                                        \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                 \
			fputc('\n', stderr);                          \
			failures++;                                   \
		}                                                     \
	} while (0)

static char *const env[] = { "PATH=/usr/bin:/bin", NULL };

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs /bin/sh -c script. */
static int sh(const char *script, int timeout_ms, char *out, size_t cap, char *why, size_t wcap)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };

	return lwk_run(argv, env, timeout_ms, out, cap, why, wcap);
}

/* No child of ours is left, running or zombie. */
static int no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static void test_status_and_output(void)
{
	char out[64], why[256];
	int rc;

	rc = sh("exit 7", 0, NULL, 0, why, sizeof(why));
	CHECK(rc == 7, "exit 7: got %d (%s)", rc, why);
	rc = sh("exit 0", 5000, NULL, 0, why, sizeof(why));
	CHECK(rc == 0, "exit 0 with a limit: got %d (%s)", rc, why);

	rc = sh("echo hello", 5000, out, sizeof(out), why, sizeof(why));
	CHECK(rc == 0 && strcmp(out, "hello\n") == 0, "echo: rc %d out \"%s\"", rc, out);
	rc = sh("echo hello; exit 3", 0, out, sizeof(out), why, sizeof(why));
	CHECK(rc == 3 && strcmp(out, "hello\n") == 0, "echo, no limit: rc %d out \"%s\"", rc, out);

	/* Output beyond the buffer (and beyond a pipe's 64 KiB) is dropped,
	 * and the child is not blocked by a full pipe. */
	rc = sh("head -c 300000 /dev/zero | tr '\\0' x", 5000, out, sizeof(out), why, sizeof(why));
	CHECK(rc == 0 && strlen(out) == sizeof(out) - 1, "300 KB of output: rc %d, kept %zu (%s)", rc,
	      strlen(out), why);

	{
		char *argv[] = { "/nonexistent/prog", NULL };

		rc = lwk_run(argv, env, 0, NULL, 0, why, sizeof(why));
		CHECK(rc == 127, "exec failure: got %d", rc);
	}
	rc = sh("kill -TERM $$", 0, NULL, 0, why, sizeof(why));
	CHECK(rc == -1 && strstr(why, "signal 15") != NULL, "killed: rc %d (%s)", rc, why);
	CHECK(no_children(), "a child is left after the status tests");
}

/* A grandchild that keeps the pipe open must not hold up the result. */
static void test_grandchild_holds_pipe(void)
{
	char out[64], why[256];
	long start = now_ms();
	int rc = sh("echo hi; sleep 3 & exit 0", 10000, out, sizeof(out), why, sizeof(why));

	CHECK(rc == 0 && strcmp(out, "hi\n") == 0, "grandchild: rc %d out \"%s\" (%s)", rc, out, why);
	CHECK(now_ms() - start < 2000, "waited %ld ms for a grandchild's pipe", now_ms() - start);
}

static void test_timeout(void)
{
	char out[64], why[256];
	long start = now_ms();
	int rc = sh("echo partial; exec sleep 30", 300, out, sizeof(out), why, sizeof(why));
	long took = now_ms() - start;

	CHECK(rc == -1 && strstr(why, "still running after 300 ms") != NULL, "timeout: rc %d (%s)", rc, why);
	CHECK(took >= 300 && took < 300 + LWK_RUN_REAP_MS, "timeout took %ld ms", took);
	CHECK(strcmp(out, "partial\n") == 0, "output before the timeout: \"%s\"", out);
	CHECK(no_children(), "the killed child was not reaped");
}

/* With SIGCHLD ignored the kernel reaps children itself; the runner must
 * still return the status, and leave the caller's disposition as it was. */
static void test_sigchld_ignored(void)
{
	struct sigaction sa;
	char out[64], why[256];
	int rc;

	signal(SIGCHLD, SIG_IGN);
	rc = sh("exit 3", 5000, NULL, 0, why, sizeof(why));
	CHECK(rc == 3, "SIGCHLD ignored, with a limit: got %d (%s)", rc, why);
	rc = sh("exit 4", 0, NULL, 0, why, sizeof(why));
	CHECK(rc == 4, "SIGCHLD ignored, no limit: got %d (%s)", rc, why);
	rc = sh("echo ok; exit 3", 5000, out, sizeof(out), why, sizeof(why));
	CHECK(rc == 3 && strcmp(out, "ok\n") == 0, "SIGCHLD ignored, capture: rc %d out \"%s\" (%s)", rc, out, why);
	/* The child starts with the default disposition, not the caller's. */
	rc = sh("grep -q '^SigIgn:.*[1-9a-f]' /proc/self/status && grep '^SigIgn' /proc/self/status; "
		"sh -c 'exit 5' & wait $!", 5000, out, sizeof(out), why, sizeof(why));
	CHECK(rc == 5, "child's own wait with SIGCHLD ignored by us: rc %d out \"%s\"", rc, out);
	sigaction(SIGCHLD, NULL, &sa);
	CHECK(sa.sa_handler == SIG_IGN, "the caller's SIGCHLD disposition was not restored");
	signal(SIGCHLD, SIG_DFL);
}

static void test_resolve(void)
{
	char dir[] = "/tmp/lwk-test-run-XXXXXX", path[512], out[512], envpath[600];
	char *renv[] = { envpath, NULL };
	FILE *f;

	if (mkdtemp(dir) == NULL) {
		CHECK(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/tool", dir);
	f = fopen(path, "w");
	CHECK(f != NULL, "create %s", path);
	if (f != NULL)
		fclose(f);
	chmod(path, 0644); /* not executable: skipped */
	snprintf(envpath, sizeof(envpath), "PATH=%s:/bin", dir);
	CHECK(lwk_resolve("tool", renv, out, sizeof(out)) < 0, "resolved a non-executable file: %s", out);
	chmod(path, 0755);
	CHECK(lwk_resolve("tool", renv, out, sizeof(out)) == 0 && strcmp(out, path) == 0, "tool: %s", out);
	CHECK(lwk_resolve("sh", renv, out, sizeof(out)) == 0 && strcmp(out, "/bin/sh") == 0, "sh: %s", out);
	CHECK(lwk_resolve("./x/y", renv, out, sizeof(out)) == 0 && strcmp(out, "./x/y") == 0, "a name with '/': %s", out);
	CHECK(lwk_resolve("no-such-tool-here", renv, out, sizeof(out)) < 0, "resolved a missing tool: %s", out);
	/* An empty entry is the working directory. */
	snprintf(envpath, sizeof(envpath), "PATH=/nonexistent:");
	if (chdir(dir) == 0) {
		CHECK(lwk_resolve("tool", renv, out, sizeof(out)) == 0 && strcmp(out, "./tool") == 0, "cwd entry: %s", out);
		CHECK(chdir("/") == 0, "chdir /");
	}
	/* No PATH in the environment: the default search path. */
	CHECK(lwk_resolve("sh", NULL, out, sizeof(out)) == 0 && strcmp(out, "/usr/bin/sh") == 0, "default PATH: %s", out);
	CHECK(lwk_resolve("tool", renv, out, 4) < 0, "a result that does not fit was returned");
	unlink(path);
	rmdir(dir);
}

/* ---- lwk_ask against a fake node service ------------------------------ */

static char ask_dir[] = "/tmp/lwk-test-ask-XXXXXX";
static char ask_sock[256], ask_req[256], ask_err[256];
static char *const ask_env[] = { "SLURM_JOB_ID=42", "LWK_MODE=mck:mem=8G", "EMPTY=", NULL };

/* The lowest free descriptor: the same before and after a call that
 * leaks none. */
static int lowest_fd(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

static int listen_at(const char *path, int backlog)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) < sizeof(addr.sun_path))
		memcpy(addr.sun_path, path, strlen(path) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    (backlog > 0 && listen(fd, backlog) < 0)) {
		CHECK(0, "listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int read_full(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Forks the fake service: it accepts one connection on lfd, reads the
 * request (header, then the length it gives) into ask_req as it came,
 * writes reply (n bytes; after an empty 'a' frame it first reads the
 * commit byte, and fails without it; a client gone before the rest is
 * through is no failure) and closes. Returns the server's pid. */
static pid_t serve(int lfd, const char *reply, size_t n)
{
	pid_t pid;

	unlink(ask_req);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		static char req[(1 << 20) + 64];
		size_t len = 12;
		int c = accept(lfd, NULL, NULL), out;

		if (c < 0)
			_exit(1);
		if (read_full(c, req, 12) == 0) {
			size_t l = (size_t)(unsigned char)req[8] << 24 | (size_t)(unsigned char)req[9] << 16 |
				   (size_t)(unsigned char)req[10] << 8 | (unsigned char)req[11];

			if (l <= sizeof(req) - 12 && read_full(c, req + 12, l) == 0)
				len += l;
		}
		out = open(ask_req, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (out < 0 || write(out, req, len) != (ssize_t)len)
			_exit(2);
		close(out);
		/* After an acceptance, the client's commit byte before the
		 * rest: the real service starts nothing without it. */
		if (n >= 5 && memcmp(reply, "a\0\0\0\0", 5) == 0) {
			char g;

			if (write(c, reply, 5) != 5)
				_exit(3);
			if (read_full(c, &g, 1) < 0 || g != 'g')
				_exit(4);
			reply += 5;
			n -= 5;
		}
		/* The rest; a client that stops at a protocol error closes
		 * before a large reply is through, which is no failure. */
		signal(SIGPIPE, SIG_IGN);
		while (n > 0) {
			ssize_t w = write(c, reply, n);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
				break;
			if (w <= 0)
				_exit(3);
			reply += w;
			n -= (size_t)w;
		}
		close(c);
		_exit(0);
	}
	CHECK(pid > 0, "fork: %s", strerror(errno));
	return pid;
}

/* Waits for the fake service; it must have done all it was told. */
static void served(pid_t pid)
{
	int status = 0;

	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0, "fake service failed (wait status 0x%x)", (unsigned)status);
}

/* lwk_ask("prolog", "/etc/slurm/lwk.conf", ask_env) against a fake service
 * answering reply; checks that no descriptor leaked. */
static int ask(int lfd, const char *reply, size_t n, char *why, size_t wcap)
{
	int fd0 = lowest_fd(), rc;
	pid_t pid = serve(lfd, reply, n);

	rc = lwk_ask(ask_sock, "prolog", "/etc/slurm/lwk.conf", ask_env, why, wcap);
	served(pid);
	CHECK(lowest_fd() == fd0, "lwk_ask leaked a descriptor");
	return rc;
}

/* Calls ask with our stderr going to fd; restores it. */
static int ask_stderr_to(int fd, int lfd, const char *reply, size_t n, char *why, size_t wcap)
{
	int saved, rc;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	rc = ask(lfd, reply, n, why, wcap);
	dup2(saved, STDERR_FILENO);
	close(saved);
	return rc;
}

/* The request as the client must send it for ask(). */
static void check_request(void)
{
	static const char payload[] = "prolog\0/etc/slurm/lwk.conf\0SLURM_JOB_ID=42\0"
				      "LWK_MODE=mck:mem=8G\0EMPTY=";
	char want[256], got[512];
	size_t plen = sizeof(payload), n = 0; /* with the last NUL */
	FILE *f = fopen(ask_req, "r");

	memcpy(want, "LWKHOOK1\0\0\0", 11);
	want[11] = (char)plen;
	memcpy(want + 12, payload, plen);
	if (f != NULL) {
		n = fread(got, 1, sizeof(got), f);
		fclose(f);
	}
	CHECK(n == 12 + plen && memcmp(got, want, n) == 0, "the service got %zu bytes, not the request", n);
}

static void test_ask(void)
{
	char why[8192];
	int lfd, rc, root = geteuid() == 0;

	if (mkdtemp(ask_dir) == NULL) {
		CHECK(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(ask_sock, sizeof(ask_sock), "%s/hook.sock", ask_dir);
	snprintf(ask_req, sizeof(ask_req), "%s/request", ask_dir);
	snprintf(ask_err, sizeof(ask_err), "%s/stderr", ask_dir);

	/* No service. */
	rc = lwk_ask(ask_sock, "prolog", "/c", ask_env, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "no /tmp/lwk-test-ask-") != NULL, "no socket: rc %d (%s)", rc, why);
	/* A file that is not a socket never gets the environment. */
	{
		FILE *f = fopen(ask_sock, "w");

		if (f != NULL)
			fclose(f);
		rc = lwk_ask(ask_sock, "prolog", "/c", ask_env, why, sizeof(why));
		CHECK(rc == LWK_ASK_REFUSED && strstr(why, "not a socket owned by root") != NULL,
		      "regular file: rc %d (%s)", rc, why);
		unlink(ask_sock);
	}
	if (!root) {
		printf("test_run: not root, skipping the lwk_ask tests with a socket (it must be root's)\n");
		rmdir(ask_dir);
		return;
	}
	/* A socket left behind by a service that is gone. */
	lfd = listen_at(ask_sock, 0);
	if (lfd >= 0)
		close(lfd);
	rc = lwk_ask(ask_sock, "prolog", "/c", ask_env, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "Connection refused") != NULL, "nobody listening: rc %d (%s)", rc, why);
	unlink(ask_sock);

	lfd = listen_at(ask_sock, 8);
	if (lfd < 0)
		return;

	/* Declined: nothing started; the reason (control bytes masked). */
	rc = ask(lfd, "n\0\0\0\x0btest\tfault\n", 16, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strcmp(why, "declined: test?fault?") == 0, "declined: rc %d (%s)", rc, why);
	check_request();

	/* Served: the request as sent, the output on our stderr, the status. */
	{
		static const char reply[] = "a\0\0\0\0" "o\0\0\0\6hello\n" "x\0\0\0\1\3";
		int fd = open(ask_err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		char got[64] = "";
		FILE *f;

		rc = ask_stderr_to(fd, lfd, reply, sizeof(reply) - 1, why, sizeof(why));
		close(fd);
		CHECK(rc == 3, "served: rc %d (%s)", rc, why);
		check_request();
		f = fopen(ask_err, "r");
		if (f != NULL) {
			got[fread(got, 1, sizeof(got) - 1, f)] = '\0';
			fclose(f);
		}
		CHECK(strcmp(got, "hello\n") == 0, "the hook's output on stderr: \"%s\"", got);
	}
	/* Output of more than one buffer, in two frames; stderr a socket
	 * whose reader is gone: dropped, and no SIGPIPE. */
	{
		enum { BIG = 65536 };
		char *reply = malloc(5 + 2 * (5 + BIG) + 6);
		int sv[2];

		if (reply != NULL && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
			size_t n = 0;

			memcpy(reply, "a\0\0\0\0", 5);
			n = 5;
			for (int i = 0; i < 2; i++) {
				memcpy(reply + n, "o\0\1\0\0", 5);
				memset(reply + n + 5, 'y', BIG);
				n += 5 + BIG;
			}
			memcpy(reply + n, "x\0\0\0\1\0", 6);
			n += 6;
			close(sv[1]);
			rc = ask_stderr_to(sv[0], lfd, reply, n, why, sizeof(why));
			close(sv[0]);
			CHECK(rc == 0, "output to a closed socket: rc %d (%s)", rc, why);

			/* The same to a file: every byte arrives. */
			{
				int fd = open(ask_err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
				struct stat st;

				rc = ask_stderr_to(fd, lfd, reply, n, why, sizeof(why));
				close(fd);
				CHECK(rc == 0 && stat(ask_err, &st) == 0 && st.st_size == 2 * BIG,
				      "128 KiB of output: rc %d (%s)", rc, why);
			}
			/* An output frame over the limit after acceptance: the
			 * outcome is unknown. */
			memcpy(reply + 5, "o\0\1\0\1", 5);
			rc = ask(lfd, reply, n, why, sizeof(why));
			CHECK(rc == -1 && strstr(why, "protocol error") != NULL, "oversized output frame: rc %d (%s)", rc, why);
		} else {
			CHECK(0, "socketpair: %s", strerror(errno));
		}
		free(reply);
	}

	/* Stderr a pipe whose reader is gone: the output is dropped, and
	 * no SIGPIPE kills us or is left pending. */
	{
		static const char reply[] = "a\0\0\0\0" "o\0\0\0\6hello\n" "x\0\0\0\1\0";
		int pfd[2];
		sigset_t pending;

		if (pipe(pfd) == 0) {
			close(pfd[0]);
			rc = ask_stderr_to(pfd[1], lfd, reply, sizeof(reply) - 1, why, sizeof(why));
			close(pfd[1]);
			CHECK(rc == 0, "output to a pipe without reader: rc %d (%s)", rc, why);
			CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 0,
			      "a SIGPIPE was left pending");
		} else {
			CHECK(0, "pipe: %s", strerror(errno));
		}
	}

	/* Accepted, then the connection is lost: the hook may have run
	 * halfway, so no fallback. */
	rc = ask(lfd, "a\0\0\0\0", 5, why, sizeof(why));
	CHECK(rc == -1 && strcmp(why, "the node service closed the connection before the hook finished") == 0,
	      "accepted then closed: rc %d (%s)", rc, why);
	rc = ask(lfd, "a\0\0\0\0x\0\0", 8, why, sizeof(why));
	CHECK(rc == -1 && strstr(why, "before the hook finished") != NULL, "closed mid-frame: rc %d (%s)", rc, why);
	rc = ask(lfd, "a\0\0\0\0n\0\0\0\0", 10, why, sizeof(why));
	CHECK(rc == -1 && strstr(why, "protocol error: frame 0x6e of 0 bytes after") != NULL, "'n' after 'a': rc %d (%s)", rc, why);
	rc = ask(lfd, "a\0\0\0\0z\0\0\0\0", 10, why, sizeof(why));
	CHECK(rc == -1 && strstr(why, "protocol error") != NULL, "unknown frame: rc %d (%s)", rc, why);
	rc = ask(lfd, "a\0\0\0\0x\0\0\0\2\0\0", 12, why, sizeof(why));
	CHECK(rc == -1 && strstr(why, "protocol error") != NULL, "2-byte status: rc %d (%s)", rc, why);

	/* Anything but 'a' or 'n' first: nothing was started. */
	rc = ask(lfd, "x\0\0\0\1\0", 6, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "protocol error: frame 0x78 of 1 bytes before") != NULL,
	      "status before 'a': rc %d (%s)", rc, why);
	rc = ask(lfd, "o\0\0\0\1!", 6, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "protocol error") != NULL, "output before 'a': rc %d (%s)", rc, why);
	rc = ask(lfd, "a\0\0\0\1!", 6, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "protocol error") != NULL, "'a' with a payload: rc %d (%s)", rc, why);
	rc = ask(lfd, "n\0\0\x10\1", 5, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "protocol error") != NULL, "reason over 4 KiB: rc %d (%s)", rc, why);
	rc = ask(lfd, NULL, 0, why, sizeof(why));
	CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "closed the connection without an answer") != NULL,
	      "closed without a frame: rc %d (%s)", rc, why);
	check_request();

	/* A service that takes the request and does not answer: after
	 * LWK_ASK_ACCEPT_MS the client falls back without committing, so
	 * the service never gets the byte that would start the hook. */
	{
		pid_t pid;

		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			char req[4096], c;
			int conn = accept(lfd, NULL, NULL);
			struct pollfd p = { .fd = conn, .events = POLLIN };
			size_t len;

			if (conn < 0 || read_full(conn, req, 12) < 0)
				_exit(1);
			len = (size_t)(unsigned char)req[10] << 8 | (unsigned char)req[11];
			if (req[8] != 0 || req[9] != 0 || len > sizeof(req) || read_full(conn, req, len) < 0)
				_exit(1);
			/* Wait for the client to give up, then look for a commit. */
			while (poll(&p, 1, 3 * LWK_ASK_ACCEPT_MS) == 1) {
				ssize_t r = read(conn, &c, 1);

				if (r == 0)
					_exit(0); /* closed, nothing committed */
				if (r == 1 && c == 'g')
					_exit(5);
			}
			_exit(6);
		}
		rc = lwk_ask(ask_sock, "prolog", "/c", ask_env, why, sizeof(why));
		CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "no answer from the node service") != NULL,
		      "silent service: rc %d (%s)", rc, why);
		served(pid);
	}

	/* A request of exactly LWK_ASK_MAX_REQUEST bytes goes; one more byte
	 * and it does not, without connecting. */
	{
		size_t fixed = sizeof("epilog") + sizeof("/c"), vlen = LWK_ASK_MAX_REQUEST - fixed - 1;
		char *big = malloc(vlen + 1);
		char *env[] = { big, NULL };
		struct stat st;
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		pid_t pid;

		if (big != NULL) {
			memset(big, 'k', vlen);
			memcpy(big, "BIG=", 4);
			big[vlen] = '\0';
			pid = serve(lfd, "a\0\0\0\0x\0\0\0\1\0", 11);
			rc = lwk_ask(ask_sock, "epilog", "/c", env, why, sizeof(why));
			served(pid);
			CHECK(rc == 0 && stat(ask_req, &st) == 0 && st.st_size == 12 + LWK_ASK_MAX_REQUEST,
			      "request of the largest size: rc %d (%s)", rc, why);
			big = realloc(big, vlen + 2);
			if (big != NULL) {
				env[0] = big;
				big[vlen] = 'k';
				big[vlen + 1] = '\0';
				rc = lwk_ask(ask_sock, "epilog", "/c", env, why, sizeof(why));
				CHECK(rc == LWK_ASK_FALLBACK && strstr(why, "too large") != NULL,
				      "oversized request: rc %d (%s)", rc, why);
				CHECK(poll(&p, 1, 0) == 0, "an oversized request connected");
			}
			free(big);
		}
	}

	/* A root socket file, but the process listening on it is not root
	 * (SO_PEERCRED is its effective uid when it called listen): the
	 * request is not sent. */
	{
		static char sock2[300];
		int sync[2], fd;
		pid_t pid;
		char c;

		snprintf(sock2, sizeof(sock2), "%s/other.sock", ask_dir);
		if (pipe(sync) == 0) {
			fflush(NULL);
			pid = fork();
			if (pid == 0) {
				struct sockaddr_un addr = { .sun_family = AF_UNIX };

				close(sync[0]);
				memcpy(addr.sun_path, sock2, strlen(sock2) + 1);
				fd = socket(AF_UNIX, SOCK_STREAM, 0);
				if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
				    setresuid((uid_t)-1, 65534, (uid_t)-1) < 0 || listen(fd, 1) < 0 ||
				    write(sync[1], "r", 1) != 1)
					_exit(1);
				alarm(10);
				c = 0;
				{
					int conn = accept(fd, NULL, NULL);
					struct pollfd p = { .fd = conn, .events = POLLIN };

					/* Nothing arrives before the client closes. */
					if (conn < 0 || poll(&p, 1, 5000) != 1 || read(conn, &c, 1) != 0)
						_exit(2);
				}
				_exit(0);
			}
			close(sync[1]);
			if (pid > 0 && read(sync[0], &c, 1) == 1) {
				rc = lwk_ask(sock2, "prolog", "/c", ask_env, why, sizeof(why));
				CHECK(rc == LWK_ASK_REFUSED && strstr(why, "listened on by uid 65534, not root") != NULL,
				      "listener of uid 65534: rc %d (%s)", rc, why);
			} else {
				CHECK(0, "the uid 65534 listener did not start");
			}
			close(sync[0]);
			served(pid);
			unlink(sock2);
		} else {
			CHECK(0, "pipe: %s", strerror(errno));
		}
	}

	/* A socket not root's never gets the environment. */
	CHECK(chown(ask_sock, 1, 1) == 0, "chown: %s", strerror(errno));
	rc = lwk_ask(ask_sock, "prolog", "/c", ask_env, why, sizeof(why));
	CHECK(rc == LWK_ASK_REFUSED && strstr(why, "not a socket owned by root") != NULL, "socket of uid 1: rc %d (%s)", rc, why);
	CHECK(poll(&(struct pollfd){ .fd = lfd, .events = POLLIN }, 1, 0) == 0, "connected to a socket not root's");

	close(lfd);
	unlink(ask_sock);
	unlink(ask_req);
	unlink(ask_err);
	rmdir(ask_dir);
	CHECK(no_children(), "a fake service is left");
}

int main(void)
{
	test_status_and_output();
	test_grandchild_holds_pipe();
	test_timeout();
	test_sigchld_ignored();
	test_resolve();
	test_ask();
	if (failures) {
		fprintf(stderr, "test_run: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_run: all checks passed\n");
	return 0;
}
