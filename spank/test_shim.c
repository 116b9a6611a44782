/*
 * test_shim.c - drives spank_lwk.so through a mock SPANK host.
 *
 * The program provides the spank_* and slurm_* functions Slurm would
 * (linked with -rdynamic so the dlopen'ed plugin binds to them), then calls
 * the plugin's callbacks as sbatch, slurmd's job_script process and
 * slurmstepd would, and checks what the plugin did: its return codes, what
 * it exported, which program it ran with which argv and environment, and
 * whether it wrapped a task. Real Slurm behaviour (which callback failure
 * stops sbatch, what reaches the prolog) is covered by the end-to-end tests;
 * this checks the shim's own logic without a cluster.
 *
 * Usage: test_shim ./spank_lwk.so
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/spank.h>

/* ---- the mock host ---------------------------------------------------- */

static spank_context_t mock_ctx;
static struct spank_option *mock_opt;
static const char *mock_getopt; /* value spank_option_getopt returns */
static int mock_getopt_set;     /* whether the option "was used" */
static char mock_ctl_env[512];  /* last spank_job_control_setenv */
static uint32_t mock_job = 42, mock_step, mock_ntasks = 2;
static int mock_argc;
static char **mock_argv, **mock_env;
static char mock_log[1024];
static char mock_error[1024]; /* the last slurm_error */

static void record(const char *level, const char *fmt, va_list ap)
{
	vsnprintf(mock_log, sizeof(mock_log), fmt, ap);
	if (strcmp(level, "slurm_error") == 0)
		memcpy(mock_error, mock_log, sizeof(mock_error));
	if (getenv("TEST_SHIM_VERBOSE"))
		fprintf(stderr, "  [%s] %s\n", level, mock_log);
}

#define MOCK_LOG(name)                                  \
	void name(const char *fmt, ...)                 \
	{                                               \
		va_list ap;                             \
		va_start(ap, fmt);                      \
		record(#name, fmt, ap);                 \
		va_end(ap);                             \
	}
MOCK_LOG(slurm_error)
MOCK_LOG(slurm_info)
MOCK_LOG(slurm_verbose)
MOCK_LOG(slurm_debug)
MOCK_LOG(slurm_debug2)
MOCK_LOG(slurm_debug3)

spank_context_t spank_context(void)
{
	return mock_ctx;
}

int spank_remote(spank_t sp)
{
	(void)sp;
	return mock_ctx == S_CTX_REMOTE;
}

const char *spank_strerror(spank_err_t err)
{
	(void)err;
	return "mock error";
}

spank_err_t spank_option_register(spank_t sp, struct spank_option *opt)
{
	(void)sp;
	mock_opt = opt;
	return ESPANK_SUCCESS;
}

spank_err_t spank_option_getopt(spank_t sp, struct spank_option *opt, char **arg)
{
	(void)sp;
	if (opt == NULL || strcmp(opt->name, "lwk-mode") != 0)
		return ESPANK_BAD_ARG;
	if (!mock_getopt_set)
		return ESPANK_ERROR;
	*arg = (char *)mock_getopt;
	return ESPANK_SUCCESS;
}

spank_err_t spank_job_control_setenv(spank_t sp, const char *name, const char *value,
				     int overwrite)
{
	(void)sp;
	(void)overwrite;
	snprintf(mock_ctl_env, sizeof(mock_ctl_env), "SPANK_%s=%s", name, value);
	return ESPANK_SUCCESS;
}

/* spank_setenv: adds NAME=value to the task environment S_JOB_ENV returns
 * (mock_env), as slurmstepd adds it to the job's environment. */
spank_err_t spank_setenv(spank_t sp, const char *name, const char *value, int overwrite)
{
	static char *env[64];
	static char entry[8][512];
	static int used;
	int i = 0;

	(void)sp;
	(void)overwrite;
	if (used == 8)
		return ESPANK_ERROR;
	for (; mock_env != NULL && mock_env[i] != NULL && i < 62; i++)
		env[i] = mock_env[i];
	snprintf(entry[used], sizeof(entry[used]), "%s=%s", name, value);
	env[i++] = entry[used++];
	env[i] = NULL;
	mock_env = env;
	return ESPANK_SUCCESS;
}

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 11, 0)
/* From 23.11 the plugin wraps a task with spank_prepend_task_argv and
 * Slurm execs the result. The mock keeps copies of the words (the plugin's
 * may be on its stack) and run_task execs them as slurmstepd would. */
#define PREPEND_PATH 1
static char *mock_prefix[8];
static int mock_prefix_n;

spank_err_t spank_prepend_task_argv(spank_t sp, int argc, const char *argv[])
{
	int i;

	(void)sp;
	if (argc < 1 || argc > 8 || argv == NULL || mock_prefix_n != 0)
		return ESPANK_BAD_ARG;
	for (i = 0; i < argc; i++) {
		mock_prefix[i] = strdup(argv[i]);
		if (mock_prefix[i] == NULL)
			return ESPANK_ERROR;
	}
	mock_prefix_n = argc;
	return ESPANK_SUCCESS;
}

/* exec_prepended: in the task child, after task_init: the prepended words,
 * then the task's argv as given (Slurm resolves only the first word, here
 * mcexec's absolute path), with the task's environment. */
static void exec_prepended(void)
{
	char *argv[64];
	int n = 0, i;

	if (mock_prefix_n == 0)
		return;
	for (i = 0; i < mock_prefix_n; i++)
		argv[n++] = mock_prefix[i];
	for (i = 0; i < mock_argc && n < 63; i++)
		argv[n++] = mock_argv[i];
	argv[n] = NULL;
	execve(argv[0], argv, mock_env);
	_exit(104);
}
#endif

/* prog_seen: the task's program as mcexec gets it: resolved on the job's
 * PATH by the plugin before 23.11; from 23.11 as the user gave it (mcexec
 * resolves it itself). */
static const char *prog_seen(const char *resolved, const char *given)
{
#ifdef PREPEND_PATH
	(void)resolved;
	return given;
#else
	(void)given;
	return resolved;
#endif
}

/* SLURM_RESTART_COUNT in the job's environment; NULL: unset. */
static const char *mock_restart;

spank_err_t spank_getenv(spank_t sp, const char *var, char *buf, int len)
{
	(void)sp;
	if (strcmp(var, "SLURM_RESTART_COUNT") != 0 || mock_restart == NULL)
		return ESPANK_ENV_NOEXIST;
	if ((int)strlen(mock_restart) >= len)
		return ESPANK_NOSPACE;
	strcpy(buf, mock_restart);
	return ESPANK_SUCCESS;
}

spank_err_t spank_get_item(spank_t sp, spank_item_t item, ...)
{
	spank_err_t rc = ESPANK_SUCCESS;
	va_list ap;

	(void)sp;
	va_start(ap, item);
	switch (item) {
	case S_JOB_ID:
		*va_arg(ap, uint32_t *) = mock_job;
		break;
	case S_JOB_STEPID:
		*va_arg(ap, uint32_t *) = mock_step;
		break;
	case S_JOB_LOCAL_TASK_COUNT:
		*va_arg(ap, uint32_t *) = mock_ntasks;
		break;
	case S_JOB_ARGV: {
		int *argc = va_arg(ap, int *);
		char ***argv = va_arg(ap, char ***);

		*argc = mock_argc;
		*argv = mock_argv;
		break;
	}
	case S_JOB_ENV:
		*va_arg(ap, char ***) = mock_env;
		break;
	default:
		rc = ESPANK_BAD_ARG;
	}
	va_end(ap);
	return rc;
}

/* ---- the tests -------------------------------------------------------- */

typedef int (*spank_cb)(spank_t, int, char **);

static spank_cb cb_init, cb_post_opt, cb_prolog, cb_epilog, cb_task_priv, cb_task;
static int failures;
static char dir[] = "/tmp/lwk-test-shim-XXXXXX";

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                          \
	} while (0)

static char *slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || chmod(path, mode) != 0) {
		perror(path);
		exit(2);
	}
}

static char *path_in(const char *name)
{
	static char bufs[8][512];
	static int i;
	char *b = bufs[i++ % 8];

	snprintf(b, 512, "%s/%s", dir, name);
	return b;
}

/* Plugin arguments, as plugstack.conf would give them. */
static char arg_prolog[600], arg_epilog[600], arg_conf[600], arg_mcexec[600], arg_rundir[600], arg_check[600];
static char *args[6];

/* Submit side: sbatch --lwk-mode[=value]; returns the callback's rc and
 * post_opt's rc through *post. */
static spank_context_t submit_ctx = S_CTX_ALLOCATOR; /* sbatch; S_CTX_LOCAL: srun */

static int submit(const char *value, int *post)
{
	int rc;

	mock_ctx = submit_ctx;
	mock_ctl_env[0] = '\0';
	CHECK(cb_init(NULL, 6, args) == 0, "init failed: %s", mock_log);
	CHECK(mock_opt != NULL && mock_opt->has_arg == 2, "option not registered with has_arg 2");
	rc = mock_opt->cb(mock_opt->val, value, 0);
	*post = cb_post_opt(NULL, 6, args);
	return rc;
}

static void test_submit(void)
{
	int post;

	CHECK(submit("mck:mem=8X", &post) == -1, "bad spec accepted by the option callback");
	CHECK(post == -1, "bad spec accepted by init_post_opt");
	CHECK(strstr(mock_log, "mem: bad size \"8X\": unknown suffix \"X\"") != NULL,
	      "message: %s", mock_log);
	CHECK(mock_ctl_env[0] == '\0', "bad spec exported: %s", mock_ctl_env);

	CHECK(submit("mck;reboot", &post) == -1 && post == -1, "metacharacter accepted");
	CHECK(strstr(mock_log, "forbidden character 0x3b") != NULL, "message: %s", mock_log);

	CHECK(submit("mck:mem=8G,kargs=idle_halt", &post) == 0 && post == 0, "good spec refused: %s", mock_log);
	CHECK(strcmp(mock_ctl_env, "SPANK_LWK_MODE=mck:mem=8G,kargs=idle_halt") == 0, "exported %s", mock_ctl_env);

	CHECK(submit(NULL, &post) == 0 && post == 0, "bare option refused");
	CHECK(strcmp(mock_ctl_env, "SPANK_LWK_MODE=default") == 0, "bare exported %s", mock_ctl_env);
	CHECK(submit("(null)", &post) == 0 && post == 0, "(null) refused");
	CHECK(strcmp(mock_ctl_env, "SPANK_LWK_MODE=default") == 0, "(null) exported %s", mock_ctl_env);

	unlink(path_in("check.out"));
	CHECK(submit("off", &post) == 0 && post == 0, "off refused");
	CHECK(strcmp(mock_ctl_env, "SPANK_LWK_MODE=off") == 0, "off exported %s", mock_ctl_env);
	CHECK(access(path_in("check.out"), F_OK) != 0, "check-spec ran for off");

	/* lwkctl check-spec judges what lwk.conf decides: argv, verdicts. */
	CHECK(submit("mck:kargs=idle_halt", &post) == 0 && post == 0, "checked spec refused: %s", mock_log);
	{
		char *out = slurp(path_in("check.out"));
		char want[1024];

		snprintf(want, sizeof(want), "check-spec\n--config\n%s\n--\nmck:kargs=idle_halt\nGOMAXPROCS=2\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n",
			 path_in("lwk.conf"));
		CHECK(out != NULL && strcmp(out, want) == 0, "check-spec saw:\n%s\nwant:\n%s", out ? out : "(nothing)", want);
	}
	CHECK(submit("nosuchprofile", &post) == 0 && post == -1, "unknown profile accepted at submit");
	CHECK(strstr(mock_log, "not valid on this cluster") != NULL, "message: %s", mock_log);
	CHECK(mock_ctl_env[0] == '\0', "refused spec exported: %s", mock_ctl_env);
	CHECK(submit("nocheck", &post) == 0 && post == 0, "exit 2 (cannot judge) must let the job through");
	CHECK(submit("usageerror", &post) == 0 && post == 0, "exit 1 (an lwkctl error, not a verdict) must let the job through");
	/* The normalised form lwkctl prints is what the job gets; output that
	 * fails our grammar is ignored and the spec goes as given. */
	CHECK(submit("mck:numa=near,mem=8192M", &post) == 0 && post == 0, "normalisable spec refused: %s", mock_log);
	CHECK(strcmp(mock_ctl_env, "SPANK_LWK_MODE=mck:mem=8G,numa=near") == 0, "exported %s", mock_ctl_env);
	CHECK(submit("garbage", &post) == 0 && post == 0, "spec with unusable lwkctl output refused: %s", mock_log);
	CHECK(strcmp(mock_ctl_env, "SPANK_LWK_MODE=garbage") == 0, "exported %s", mock_ctl_env);

	/* srun inside a running job: the spec was checked at submit. */
	submit_ctx = S_CTX_LOCAL;
	setenv("SLURM_JOB_ID", "7", 1);
	CHECK(submit("nosuchprofile", &post) == 0 && post == 0, "srun in a job re-checked the job's spec");
	unsetenv("SLURM_JOB_ID");
	CHECK(submit("nosuchprofile", &post) == 0 && post == -1, "srun outside a job must check");
	submit_ctx = S_CTX_ALLOCATOR;
	unlink(path_in("check.out"));
	CHECK(submit(NULL, &post) == 0 && post == 0, "bare option refused");
	{
		char *out = slurp(path_in("check.out"));

		CHECK(out != NULL && strstr(out, "--\ndefault\n") != NULL, "bare option checked as: %s", out ? out : "(nothing)");
	}

	/* On the node a bad value is never an error (it would drain the node). */
	mock_ctx = S_CTX_REMOTE;
	CHECK(mock_opt->cb(mock_opt->val, "mck:mem=8X", 1) == 0, "remote callback failed");

	/* A typo in plugstack.conf is loud. */
	{
		char *bad[1] = { "mcexe=/usr/bin/mcexec" };

		mock_ctx = S_CTX_ALLOCATOR;
		CHECK(cb_init(NULL, 1, bad) == -1, "unknown plugin argument accepted");
		bad[0] = "prolog=relative/lwk-prolog";
		CHECK(cb_init(NULL, 1, bad) == -1, "relative path accepted");
	}
}

/* slurmd's job_script process: SPANK_LWK_MODE and the option as given. */
static void test_job_hooks(void)
{
	char *out;

	mock_ctx = S_CTX_JOB_SCRIPT;
	setenv("SLURM_JOB_ID", "42", 1);
	setenv("SLURM_JOB_UID", "1000", 1);
	setenv("SLURM_JOB_USER", "alice", 1);
	setenv("SLURMD_NODENAME", "node1", 1);
	setenv("SLURM_JOB_RESTART_COUNT", "2", 1);
	setenv("SLURM_JOB_NTASKS", "4", 1);
	setenv("SECRET_FROM_SLURMD", "leak", 1);
	unsetenv("SPANK_LWK_MODE");

	/* Linux job: no option, nothing forked. */
	mock_getopt_set = 0;
	unlink(path_in("hook.out"));
	CHECK(cb_prolog(NULL, 6, args) == 0, "prolog of a Linux job failed");
	CHECK(access(path_in("hook.out"), F_OK) != 0, "prolog forked for a Linux job");
	mock_getopt_set = 1;
	mock_getopt = "off";
	CHECK(cb_epilog(NULL, 6, args) == 0, "epilog of an off job failed");
	CHECK(access(path_in("hook.out"), F_OK) != 0, "epilog forked for an off job");

	/* LWK job. */
	mock_getopt = "mck:mem=8G";
	CHECK(cb_prolog(NULL, 6, args) == 0, "prolog failed: %s", mock_log);
	out = slurp(path_in("hook.out"));
	CHECK(out != NULL, "prolog did not run");
	if (out != NULL) {
		char want[4096];

		snprintf(want, sizeof(want),
			 "prolog\n--config\n%s\n"
			 "GOMAXPROCS=2\nLWK_CONF=%s\nLWK_MODE=mck:mem=8G\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
			 "SLURMD_NODENAME=node1\nSLURM_JOB_ID=42\nSLURM_JOB_NTASKS=4\n"
			 "SLURM_JOB_RESTART_COUNT=2\nSLURM_JOB_UID=1000\nSLURM_JOB_USER=alice\n",
			 path_in("lwk.conf"), path_in("lwk.conf"));
		CHECK(strcmp(out, want) == 0, "prolog saw:\n%s\nwant:\n%s", out, want);
	}

	/* Bare option in the prolog: getopt gives NULL. */
	mock_getopt = NULL;
	CHECK(cb_epilog(NULL, 6, args) == 0, "epilog failed: %s", mock_log);
	out = slurp(path_in("hook.out"));
	CHECK(out != NULL && strncmp(out, "epilog\n", 7) == 0 && strstr(out, "LWK_MODE=default\n"),
	      "epilog saw: %s", out ? out : "(nothing)");

	/* Plain environment fallback. */
	mock_getopt_set = 0;
	setenv("SPANK_LWK_MODE", "big", 1);
	CHECK(cb_prolog(NULL, 6, args) == 0, "prolog failed: %s", mock_log);
	out = slurp(path_in("hook.out"));
	CHECK(out != NULL && strstr(out, "LWK_MODE=big\n"), "fallback saw: %s", out ? out : "(nothing)");
	unsetenv("SPANK_LWK_MODE");

	/* A spec far beyond the grammar's limit (one that reached the job
	 * without the submit check) still reaches lwk-prolog whole, which
	 * cancels the job; failing the hook would drain the node. */
	{
		static char big[8 * 1024 + 1];
		char *want;

		memset(big, 'k', sizeof(big) - 1);
		memcpy(big, "mck:kargs=", 10);
		mock_getopt_set = 1;
		mock_getopt = big;
		CHECK(cb_prolog(NULL, 6, args) == 0, "prolog with an 8 KiB spec failed: %s", mock_log);
		out = slurp(path_in("hook.out"));
		want = malloc(sizeof(big) + 16);
		if (want != NULL) {
			snprintf(want, sizeof(big) + 16, "LWK_MODE=%s\n", big);
			CHECK(out != NULL && strstr(out, want) != NULL, "8 KiB spec not passed whole");
			free(want);
		}
	}

	/* Failures come back to Slurm. */
	mock_getopt_set = 1;
	mock_getopt = "mck";
	setenv("HOOK_FAIL", "1", 1); /* not passed on: the hook is a separate script */
	{
		char *fargs[6];

		memcpy(fargs, args, sizeof(fargs));
		fargs[0] = "prolog=/bin/false";
		CHECK(cb_prolog(NULL, 6, fargs) == -1, "failing prolog reported success");
		CHECK(strstr(mock_log, "exited with status 1") != NULL, "message: %s", mock_log);
		fargs[0] = "prolog=/nonexistent/lwk-prolog";
		CHECK(cb_prolog(NULL, 6, fargs) == -1, "missing prolog reported success");
		CHECK(strstr(mock_log, "status 127") != NULL, "message: %s", mock_log);
	}
}

/* A fake node service on the rundir's hook.sock: a forked server accepts
 * one connection, saves the request to service.req, answers reply (n
 * bytes; after an empty 'a' frame it first wants the commit byte) and
 * closes. Returns its pid. */
static pid_t fake_service(const char *reply, size_t n)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *sock = path_in("run/hook.sock");
	int lfd;
	pid_t pid;

	unlink(sock);
	unlink(path_in("service.req"));
	if (strlen(sock) >= sizeof(addr.sun_path))
		return -1;
	memcpy(addr.sun_path, sock, strlen(sock) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1) < 0) {
		perror(sock);
		exit(2);
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		static char req[1 << 16];
		size_t got = 0, want = 12;
		int c = accept(lfd, NULL, NULL);
		FILE *f;

		if (c < 0)
			_exit(1);
		while (got < want) {
			ssize_t r = read(c, req + got, sizeof(req) - got);

			if (r <= 0)
				_exit(1);
			got += (size_t)r;
			if (got >= 12)
				want = 12 + ((size_t)(unsigned char)req[8] << 24 | (size_t)(unsigned char)req[9] << 16 |
					     (size_t)(unsigned char)req[10] << 8 | (unsigned char)req[11]);
			if (want > sizeof(req))
				_exit(1);
		}
		f = fopen(path_in("service.req"), "w");
		if (f == NULL || fwrite(req, 1, got, f) != got || fclose(f) != 0)
			_exit(1);
		/* After an acceptance, the commit byte before the rest. */
		if (n >= 5 && memcmp(reply, "a\0\0\0\0", 5) == 0) {
			char g;

			if (write(c, reply, 5) != 5 || read(c, &g, 1) != 1 || g != 'g')
				_exit(1);
			reply += 5;
			n -= 5;
		}
		if (n > 0 && write(c, reply, n) != (ssize_t)n)
			_exit(1);
		close(c);
		_exit(0);
	}
	close(lfd); /* the server has it */
	return pid;
}

/* Waits for the fake service; returns the request it got (static), or
 * NULL. */
static const char *service_done(pid_t pid, size_t *len)
{
	static char req[1 << 16];
	int status;
	FILE *f;

	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return NULL;
	f = fopen(path_in("service.req"), "r");
	if (f == NULL)
		return NULL;
	*len = fread(req, 1, sizeof(req), f);
	fclose(f);
	return req;
}

/* The job hooks with the node service: when it runs a hook, the stand-in
 * program does not run; when it declines, the program does. */
static void test_hook_service(void)
{
	char conf[600];
	const char *req;
	size_t len = 0, clen;
	pid_t pid;

	mock_ctx = S_CTX_JOB_SCRIPT;
	mock_getopt_set = 1;
	mock_getopt = "mck";
	clen = (size_t)snprintf(conf, sizeof(conf), "%s", path_in("lwk.conf")) + 1;

	unlink(path_in("hook.out"));
	pid = fake_service("a\0\0\0\0x\0\0\0\1\0", 11);
	CHECK(cb_prolog(NULL, 6, args) == 0, "prolog run by the service failed: %s", mock_log);
	req = service_done(pid, &len);
	CHECK(access(path_in("hook.out"), F_OK) != 0, "the service ran the prolog, and so did the program");
	/* "LWKHOOK1", length, "prolog", lwk.conf, the environment as the
	 * program gets it. */
	CHECK(req != NULL && len > 12 + 7 + clen && memcmp(req, "LWKHOOK1", 8) == 0 &&
	      memcmp(req + 12, "prolog", 7) == 0 && memcmp(req + 19, conf, clen) == 0 &&
	      memmem(req, len, "\0LWK_MODE=mck\0", 14) != NULL &&
	      memmem(req, len, "\0SLURM_JOB_ID=42\0", 17) != NULL &&
	      memmem(req, len, "\0GOMAXPROCS=2", 13) != NULL && req[len - 1] == '\0',
	      "the service got no or a wrong prolog request (%zu bytes)", len);

	pid = fake_service("a\0\0\0\0x\0\0\0\1\0", 11);
	CHECK(cb_epilog(NULL, 6, args) == 0, "epilog run by the service failed: %s", mock_log);
	req = service_done(pid, &len);
	CHECK(req != NULL && len > 19 && memcmp(req + 12, "epilog", 7) == 0, "the service got no epilog request");
	CHECK(access(path_in("hook.out"), F_OK) != 0, "the service ran the epilog, and so did the program");

	/* The service's failure is the hook's. */
	pid = fake_service("a\0\0\0\0x\0\0\0\1\1", 11);
	CHECK(cb_prolog(NULL, 6, args) == -1, "prolog failed in the service reported success");
	CHECK(service_done(pid, &len) != NULL, "fake service failed");
	CHECK(strstr(mock_error, "the node service's prolog exited with status 1") != NULL, "message: %s", mock_error);
	CHECK(access(path_in("hook.out"), F_OK) != 0, "program run after the service's prolog failed");

	/* Accepted and then lost: no fallback, the hook may have run halfway. */
	pid = fake_service("a\0\0\0\0", 5);
	CHECK(cb_prolog(NULL, 6, args) == -1, "prolog lost by the service reported success");
	CHECK(service_done(pid, &len) != NULL, "fake service failed");
	CHECK(strstr(mock_error, "closed the connection before the hook finished") != NULL, "message: %s", mock_error);
	CHECK(access(path_in("hook.out"), F_OK) != 0, "program run after the service accepted");

	/* Declined: the program runs, as without a service. */
	pid = fake_service("n\0\0\0\5fault", 10);
	mock_error[0] = '\0';
	CHECK(cb_prolog(NULL, 6, args) == 0, "prolog after a decline failed: %s", mock_log);
	CHECK(service_done(pid, &len) != NULL, "fake service failed");
	CHECK(access(path_in("hook.out"), F_OK) == 0, "the program did not run after the service declined");
	CHECK(mock_error[0] == '\0', "a decline logged an error: %s", mock_error);

	/* A socket that is not root's: an error, and the program runs. */
	unlink(path_in("hook.out"));
	pid = fake_service("a\0\0\0\0x\0\0\0\1\0", 11);
	CHECK(chown(path_in("run/hook.sock"), 1, 1) == 0, "chown hook.sock");
	CHECK(cb_prolog(NULL, 6, args) == 0, "prolog beside a socket not root's failed: %s", mock_log);
	CHECK(access(path_in("hook.out"), F_OK) == 0, "the program did not run beside a socket not root's");
	CHECK(strstr(mock_error, "not a socket owned by root") != NULL, "message: %s", mock_error);
	kill(pid, SIGKILL); /* never connected to */
	waitpid(pid, NULL, 0);

	unlink(path_in("run/hook.sock"));
	unlink(path_in("service.req"));
}

/* One step's slurmstepd: remote init (the option callback fires with the
 * step's --lwk-mode when it has one) and init_post_opt, then one task in a
 * forked child, whose stderr goes to task.err. Returns what happened:
 * 0 not wrapped, -1 refused, 1 exec'ed (the mcexec stand-in wrote its
 * record), -3 init_post_opt failed (slurmstepd would drain the node). */
static int run_task(void)
{
	pid_t pid;
	int status;

	unlink(path_in("mcexec.out"));
	unlink(path_in("task.err"));
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		mock_ctx = S_CTX_REMOTE;
		if (cb_init(NULL, 6, args) != 0)
			_exit(102);
		if (mock_getopt_set && mock_opt->cb(mock_opt->val, mock_getopt, 1) != 0)
			_exit(102);
		if (cb_post_opt(NULL, 6, args) != 0)
			_exit(102);
		if (freopen(path_in("task.err"), "w", stderr) == NULL)
			_exit(103);
		if (cb_task_priv(NULL, 6, args) != 0)
			_exit(101);
		if (cb_task(NULL, 6, args) != 0)
			_exit(101);
#ifdef PREPEND_PATH
		exec_prepended();
#endif
		_exit(100);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -2;
	if (WEXITSTATUS(status) == 100)
		return 0;
	if (WEXITSTATUS(status) == 101)
		return -1;
	if (WEXITSTATUS(status) == 102)
		return -3;
	return access(path_in("mcexec.out"), F_OK) == 0 ? 1 : -2;
}

static void test_tasks(void)
{
	static char path_env[600];
	static char *task_argv[] = { "myprog", "a b", "--flag", NULL };
	static char *task_env[] = { path_env, "FOO=bar", NULL };
	char *out, want[2048];

	snprintf(path_env, sizeof(path_env), "PATH=/nonexistent:%s", path_in("bin"));
	mock_argc = 3;
	mock_argv = task_argv;
	mock_env = task_env;
	mock_step = 0;
	mock_getopt_set = 1;
	mock_getopt = "mck";

	/* No marker and no option: a Linux job. */
	unlink(path_in("run/job-42"));
	mock_getopt_set = 0;
	CHECK(run_task() == 0, "task of a Linux job wrapped or refused: %s", mock_log);
	mock_step = 0xfffffffb; /* batch script */
	CHECK(run_task() == 0, "batch script of a Linux job refused: %s", mock_log);
	mock_getopt_set = 1;
	mock_getopt = "off";
	CHECK(run_task() == 0, "--lwk-mode=off step without a marker refused: %s", mock_log);

	/* No marker but the option: the job asked for an LWK that is not
	 * there (srun --lwk-mode in a Linux job, or a requeued job restarted
	 * without its prolog). Never on Linux silently: the task fails with
	 * the reason on its stderr, and init_post_opt does not fail (that
	 * would drain the node). */
	mock_getopt = "mck";
	mock_step = 0;
	CHECK(run_task() == -1, "step asking for an LWK ran without one");
	out = slurp(path_in("task.err"));
	CHECK(out != NULL && strstr(out, "lwk: job 42 asked for an LWK (--lwk-mode=mck), but none was booted") != NULL,
	      "task stderr: %s", out ? out : "(nothing)");
	mock_step = 0xfffffffb;
	CHECK(run_task() == -1, "batch script of an LWK job ran without its LWK");
	mock_step = 0xfffffffc; /* extern: not ours */
	CHECK(run_task() == 0, "extern step refused");
	mock_step = 0;

	/* The marker is keyed by the attempt: SLURM_RESTART_COUNT (unset for
	 * the first start) must match the marker's attempt. */
	write_file(path_in("run/job-42"), "os=0\nattempt=0\ncpus=4\noversubscribe=0\n", 0600);
	mock_restart = "1";
	CHECK(run_task() == -1, "step of start 1 ran on the LWK of start 0");
	out = slurp(path_in("task.err"));
	CHECK(out != NULL && strstr(out, "booted for start 0 of the job, this is start 1") != NULL,
	      "task stderr: %s", out ? out : "(nothing)");
	mock_step = 0xfffffffb;
	CHECK(run_task() == -1, "batch script of start 1 ran with start 0's marker");
	mock_step = 0;
	write_file(path_in("run/job-42"), "os=0\nattempt=1\ncpus=4\noversubscribe=0\n", 0600);
	CHECK(run_task() == 1, "step of start 1 not wrapped with start 1's marker: %s", mock_log);
	mock_step = 0xfffffffb;
	CHECK(run_task() == 0, "batch script of start 1 refused or wrapped: %s", mock_log);
	mock_step = 0;
	mock_restart = NULL;

	/* More local tasks than LWK CPUs: refused with the reason, unless the
	 * LWK allows oversubscription; then each task is its own mcexec. */
	write_file(path_in("run/job-42"), "os=0\nattempt=0\ncpus=1\noversubscribe=0\n", 0600);
	CHECK(run_task() == -1, "2 tasks on a 1-CPU LWK not refused");
	out = slurp(path_in("task.err"));
	CHECK(out != NULL && strstr(out, "lwk: step 42.0 runs 2 tasks on this node but the LWK has 1 CPUs") != NULL,
	      "task stderr: %s", out ? out : "(nothing)");
	write_file(path_in("run/job-42"), "os=0\nattempt=0\ncpus=1\noversubscribe=1\n", 0600);
	CHECK(run_task() == 1, "oversubscribing step not wrapped: %s", mock_log);
	out = slurp(path_in("mcexec.out"));
	snprintf(want, sizeof(want), "%s\na b\n--flag\n", prog_seen(path_in("bin/myprog"), "myprog"));
	CHECK(out != NULL && strncmp(out, want, strlen(want)) == 0, "mcexec (no -n) saw:\n%s", out ? out : "");

	write_file(path_in("run/job-42"), "os=0\n", 0600);
	CHECK(run_task() == 1, "task of an LWK step not wrapped: %s", mock_log);
	out = slurp(path_in("mcexec.out"));
	snprintf(want, sizeof(want), "-n\n2\n%s\na b\n--flag\nFOO=bar\n%s\n", prog_seen(path_in("bin/myprog"), "myprog"),
		 path_env);
	CHECK(out != NULL && strcmp(out, want) == 0, "mcexec saw:\n%s\nwant:\n%s", out ? out : "", want);
	/* ... after lwkctl confine-task put it into the proxies' cgroups. */
	out = slurp(path_in("lwkctl.confine"));
	snprintf(want, sizeof(want), "confine-task\n--config\n%s\n--job\n42\n--pid\n", path_in("lwk.conf"));
	CHECK(out != NULL && strncmp(out, want, strlen(want)) == 0 && strstr(out, "\n--role\nproxies\n") != NULL,
	      "confine-task saw:\n%s", out ? out : "");
	/* lwkctl, a Go program, runs with the plugin's GOMAXPROCS; the task
	 * (mcexec.out above) never gets it. */
	CHECK(out != NULL && strstr(out, "\nGOMAXPROCS=2\n") != NULL, "confine-task environment:\n%s", out ? out : "");
	/* A task that cannot be confined does not run. */
	write_file(path_in("lwkctl.fail"), "", 0600);
	CHECK(run_task() == -1, "unconfined task ran");
	unlink(path_in("lwkctl.fail"));

	/* The marker's NUMA numbering reaches the task as LWK_NUMA_MAP. */
	write_file(path_in("run/job-42"), "os=0\nattempt=0\ncpus=4\noversubscribe=0\nlwk_numa=0:0,1:1,4:2\n", 0600);
	CHECK(run_task() == 1, "task with a NUMA map not wrapped: %s", mock_log);
	out = slurp(path_in("mcexec.out"));
	snprintf(want, sizeof(want), "-n\n2\n%s\na b\n--flag\nFOO=bar\nLWK_NUMA_MAP=0:0,1:1,4:2\n%s\n",
		 prog_seen(path_in("bin/myprog"), "myprog"), path_env);
	CHECK(out != NULL && strcmp(out, want) == 0, "mcexec saw:\n%s\nwant:\n%s", out ? out : "", want);
	write_file(path_in("run/job-42"), "os=0\nattempt=0\ncpus=4\noversubscribe=0\nlwk_numa=0:0;x\n", 0600);
	CHECK(run_task() == -1, "malformed lwk_numa accepted");
	write_file(path_in("run/job-42"), "os=0\n", 0600);

	mock_step = 0xfffffffb; /* batch script */
	unlink(path_in("lwkctl.confine"));
	CHECK(run_task() == 0, "batch step wrapped");
	out = slurp(path_in("lwkctl.confine"));
	CHECK(out != NULL && strstr(out, "\n--role\nbatch\n") != NULL, "batch step not confined: %s", out ? out : "");
	mock_step = 0xfffffffc; /* extern */
	unlink(path_in("lwkctl.confine"));
	CHECK(run_task() == 0, "extern step wrapped");
	CHECK(access(path_in("lwkctl.confine"), F_OK) != 0, "extern step confined");
	mock_step = 0xfffffffa; /* interactive */
	CHECK(run_task() == 0, "interactive step wrapped");
	mock_step = 3;
	mock_getopt = "off";
	CHECK(run_task() == 0, "--lwk-mode=off step wrapped");
	out = slurp(path_in("lwkctl.confine"));
	CHECK(out != NULL && strstr(out, "\n--role\nbatch\n") != NULL, "--lwk-mode=off step not confined as batch: %s",
	      out ? out : "");
	mock_getopt_set = 0; /* the step did not repeat the option: still wrapped */
	CHECK(run_task() == 1, "step without the option not wrapped");
	/* A malformed marker: a step asking for an LWK fails, never runs on
	 * Linux. */
	write_file(path_in("run/job-42"), "attempt=0\nos=0\n", 0600);
	mock_getopt_set = 1;
	mock_getopt = "mck";
	CHECK(run_task() == -1, "malformed marker accepted");
	write_file(path_in("run/job-42"), "os=0\n", 0600);

	mock_getopt_set = 1;
	mock_getopt = "mck";
	task_argv[0] = "no-such-program";
#ifdef PREPEND_PATH
	/* Not the plugin's to resolve: mcexec gets the name. */
	CHECK(run_task() == 1, "task with an unresolvable program not wrapped: %s", mock_log);
#else
	CHECK(run_task() == -1, "missing program not refused");
#endif
	task_argv[0] = "myprog";

	/* A marker that is not a regular file is refused. */
	unlink(path_in("run/job-42"));
	CHECK(mkdir(path_in("run/job-42"), 0700) == 0, "mkdir marker");
	CHECK(run_task() == -1, "directory marker accepted");
	rmdir(path_in("run/job-42"));
}

/*
 * --bench: what a Linux job pays in slurmd's job_script process, i.e. the
 * plugin's job_prolog plus job_epilog callbacks for a job without
 * --lwk-mode (they fork nothing). Prints the median over rounds of 1000
 * calls each.
 */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void bench_linux_job(void)
{
	enum { ROUNDS = 31, CALLS = 1000 };
	double per[ROUNDS];
	struct timespec t0, t1;
	int r, i;

	mock_ctx = S_CTX_JOB_SCRIPT;
	mock_getopt_set = 0;
	unsetenv("SPANK_LWK_MODE");
	for (r = 0; r < ROUNDS; r++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (i = 0; i < CALLS; i++) {
			if (cb_prolog(NULL, 6, args) != 0 || cb_epilog(NULL, 6, args) != 0) {
				fprintf(stderr, "bench: a Linux job's hook failed: %s\n", mock_log);
				exit(1);
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		per[r] = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / CALLS;
	}
	qsort(per, ROUNDS, sizeof(per[0]), cmp_double);
	printf("SPANK job_prolog+job_epilog for a Linux job: %.0f ns (median of %d rounds x %d calls; no fork)\n",
	       per[ROUNDS / 2], ROUNDS, CALLS);
}

int main(int argc, char **argv)
{
	void *h;
	int bench = argc == 3 && strcmp(argv[2], "--bench") == 0;

	if (argc != 2 && !bench) {
		fprintf(stderr, "usage: %s ./spank_lwk.so [--bench]\n", argv[0]);
		return 2;
	}
	if ((h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
		return 2;
	}
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	cb_init = (spank_cb)dlsym(h, "slurm_spank_init");
	cb_post_opt = (spank_cb)dlsym(h, "slurm_spank_init_post_opt");
	cb_prolog = (spank_cb)dlsym(h, "slurm_spank_job_prolog");
	cb_epilog = (spank_cb)dlsym(h, "slurm_spank_job_epilog");
	cb_task_priv = (spank_cb)dlsym(h, "slurm_spank_task_init_privileged");
	cb_task = (spank_cb)dlsym(h, "slurm_spank_task_init");
	if (!cb_init || !cb_post_opt || !cb_prolog || !cb_epilog || !cb_task_priv || !cb_task) {
		fprintf(stderr, "%s: missing a callback\n", argv[1]);
		return 2;
	}
	if (dlsym(h, "spank_options") != NULL) {
		fprintf(stderr, "%s: exports spank_options (22.05 ignores it in sbatch)\n", argv[1]);
		return 1;
	}

	if (mkdir(path_in("bin"), 0755) != 0 || mkdir(path_in("run"), 0700) != 0) {
		perror("mkdir");
		return 2;
	}
	/* The hooks record their argv and environment (less what the shell
	 * itself adds). */
	write_file(path_in("lwk-prolog"),
		   "#!/bin/sh\n{ echo prolog; printf '%s\\n' \"$@\"; env | grep -Ev '^(PWD|SHLVL|_)=' | sort; }"
		   " > \"${LWK_CONF%/*}/hook.out\"\n",
		   0755);
	write_file(path_in("lwk-epilog"),
		   "#!/bin/sh\n{ echo epilog; printf '%s\\n' \"$@\"; env | grep -Ev '^(PWD|SHLVL|_)=' | sort; }"
		   " > \"${LWK_CONF%/*}/hook.out\"\n",
		   0755);
	{
		char script[1024];

		snprintf(script, sizeof(script),
			 "#!/bin/sh\n{ printf '%%s\\n' \"$@\"; /usr/bin/env | /bin/grep -Ev '^(PWD|SHLVL|_)=' "
			 "| /usr/bin/sort; } > %s\n",
			 path_in("mcexec.out"));
		write_file(path_in("mcexec"), script, 0755);
	}
	write_file(path_in("bin/myprog"), "#!/bin/sh\nexit 0\n", 0755);
	{
		char script[2048];

		/* A stand-in for lwkctl check-spec ($5 is the spec) and
		 * confine-task (records its argv; fails if lwkctl.fail exists). */
		snprintf(script, sizeof(script),
			 "#!/bin/sh\nif [ \"$1\" = confine-task ]; then { printf '%%s\\n' \"$@\"; /usr/bin/env | /usr/bin/sort; } > %s.confine; "
			 "[ -e %s.fail ] && exit 1; exit 0; fi\ncase \"$5\" in\nnosuch*) echo 'lwkctl: profile \"nosuchprofile\": no such profile' >&2; exit 3;;\n"
			 "usage*) exit 1;;\n"
			 "nocheck) exit 2;;\nesac\n{ printf '%%s\\n' \"$@\"; /usr/bin/env | /bin/grep -Ev '^(PWD|SHLVL|_)=' | /usr/bin/sort; } > %s\n"
			 /* stdout: the normalised spec (a reordered one, a bad one, or as given) */
			 "case \"$5\" in\n\"mck:numa=near,mem=8192M\") echo mck:mem=8G,numa=near;;\n"
			 "garbage) echo 'not;a spec';;\n*) echo \"$5\";;\nesac\n",
			 path_in("lwkctl"), path_in("lwkctl"), path_in("check.out"));
		write_file(path_in("lwkctl"), script, 0755);
	}
	snprintf(arg_prolog, sizeof(arg_prolog), "prolog=%s", path_in("lwk-prolog"));
	snprintf(arg_epilog, sizeof(arg_epilog), "epilog=%s", path_in("lwk-epilog"));
	snprintf(arg_conf, sizeof(arg_conf), "conf=%s", path_in("lwk.conf"));
	snprintf(arg_mcexec, sizeof(arg_mcexec), "mcexec=%s", path_in("mcexec"));
	snprintf(arg_rundir, sizeof(arg_rundir), "rundir=%s", path_in("run"));
	args[0] = arg_prolog;
	args[1] = arg_epilog;
	args[2] = arg_conf;
	args[3] = arg_mcexec;
	args[4] = arg_rundir;
	snprintf(arg_check, sizeof(arg_check), "check=%s", path_in("lwkctl"));
	args[5] = arg_check;

	if (bench) {
		bench_linux_job();
	} else {
		test_submit();
		test_job_hooks();
		if (geteuid() == 0) {
			test_hook_service();
			test_tasks();
		} else {
			printf("test_shim: not root, skipping the node service and task tests "
			       "(the socket and markers must be root-owned)\n");
		}
		printf("test_shim: %s (%d failures)\n", failures ? "FAIL" : "ok", failures);
	}
	if (failures == 0) {
		char *rm[] = { "rm", "-rf", dir, NULL };
		pid_t pid = fork();

		if (pid == 0) {
			execv("/bin/rm", rm);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
	}
	return failures ? 1 : 0;
}
