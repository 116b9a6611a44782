/*
 * test_run.c - checks lwk_run and lwk_resolve (run.c) without a Slurm host:
 * exit statuses, stdout capture (short, huge, with a grandchild holding the
 * pipe), the time limit and the reaping after SIGKILL, a caller that ignores
 * SIGCHLD, and PATH resolution.
 *
 * Usage: test_run   (exit status 0 when every check passes)
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int main(void)
{
	test_status_and_output();
	test_grandchild_holds_pipe();
	test_timeout();
	test_sigchld_ignored();
	test_resolve();
	if (failures) {
		fprintf(stderr, "test_run: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_run: all checks passed\n");
	return 0;
}
