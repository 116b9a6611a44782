/*
 * lwk.c - slurm-lwk SPANK shim: --lwk-mode, lwk-prolog/lwk-epilog, mcexec.
 *
 * The shim holds no policy. It
 *   1. registers --lwk-mode[=SPEC] and checks SPEC's grammar at submit time
 *      (sbatch/salloc/srun), then has `lwkctl check-spec` check it against
 *      lwk.conf (profiles, allowed kernel arguments), so a bad SPEC is
 *      refused before anything is queued; hands SPEC to the prolog and
 *      epilog through the job control environment (SPANK_LWK_MODE);
 *   2. runs lwk-prolog / lwk-epilog from the job_script context with
 *      fork + execve + waitpid, argv arrays and an explicit environment;
 *   3. runs each task of a normal step of an LWK job through mcexec, when
 *      the prolog left the marker <rundir>/job-<jobid> on this node, with
 *      the marker's lwk_numa line in the task's LWK_NUMA_MAP.
 * What to boot, where and how much is decided in Go (pkg/lwkmode, plan,
 * apply); the grammar check is grammar.c, tested against the Go parser's
 * vectors.
 *
 * plugstack.conf arguments (all optional, all absolute paths; see
 * plugstack.conf.example): prolog= epilog= conf= mcexec= rundir= check=.
 *
 * Written against Slurm 22.05 (Debian 12); newer APIs are chosen at compile
 * time from SLURM_VERSION_NUMBER. Built per Slurm release series, not
 * linked against libslurm: the spank_* and slurm_* symbols come from the
 * loading process (srun, sbatch, salloc, slurmstepd, slurmd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "grammar.h"

SPANK_PLUGIN(lwk, 1);

/* Step IDs of the special steps (slurm/slurm.h; fallbacks for headers that
 * lack one). */
#ifndef SLURM_BATCH_SCRIPT
#define SLURM_BATCH_SCRIPT 0xfffffffb
#endif
#ifndef SLURM_EXTERN_CONT
#define SLURM_EXTERN_CONT 0xfffffffc
#endif
#ifndef SLURM_INTERACTIVE_STEP
#define SLURM_INTERACTIVE_STEP 0xfffffffa
#endif

#define LWK_SPEC_DEFAULT "default" /* normalised bare --lwk-mode */
#define LWK_SPEC_OFF "off"

/* plugstack.conf arguments. */
struct lwk_args {
	const char *prolog; /* prolog=: the lwk-prolog binary */
	const char *epilog; /* epilog=: the lwk-epilog binary */
	const char *conf;   /* conf=: lwk.conf, passed as --config and LWK_CONF */
	const char *mcexec; /* mcexec=: what tasks run through */
	const char *rundir; /* rundir=: where the prolog leaves job-<id> markers */
	const char *check;  /* check=: lwkctl, run as "check-spec" at submit */
};

static int lwk_opt_cb(int val, const char *optarg, int remote);
static int check_spec(const struct lwk_args *a, const char *spec, char *norm, size_t cap);

/* The option. Registered with spank_option_register in slurm_spank_init
 * (never exported as a spank_options table: 22.05 does not load that table
 * in sbatch/salloc). has_arg 2: the value is optional. */
static struct spank_option lwk_option = {
	"lwk-mode",
	"SPEC",
	"Run the job on a light-weight kernel (McKernel). SPEC is off, or "
	"PROFILE[:mem=SIZE|PCT%,cores=N,numa=strict|near,kargs=A+B]; "
	"without SPEC the node's default profile.",
	2,
	0,
	lwk_opt_cb,
};

/* Option value as the option callback last saw it, in this process. */
static int opt_seen;                          /* callback ran */
static int opt_bad;                           /* value failed the grammar */
static char opt_spec[LWK_SPEC_MAX + 1];       /* value; "" = default profile */
static struct lwk_grammar_error opt_err;      /* why, when opt_bad */

/* Set in task_init_privileged (root) when this node booted an LWK for the
 * job; read in task_init (user) of the same forked task process. */
static int marker_seen;

/* Environment variables copied from our environment to lwk-prolog and
 * lwk-epilog; nothing else of slurmd's environment is passed on. */
static const char *const passed_env[] = {
	"SLURM_JOB_ID", "SLURM_JOB_UID", "SLURM_JOB_GID", "SLURM_JOB_USER",
	"SLURMD_NODENAME", "SLURM_CONF", "SLURM_JOB_PARTITION",
};

static int parse_args(int ac, char **av, struct lwk_args *a)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "prolog=", offsetof(struct lwk_args, prolog) },
		{ "epilog=", offsetof(struct lwk_args, epilog) },
		{ "conf=", offsetof(struct lwk_args, conf) },
		{ "mcexec=", offsetof(struct lwk_args, mcexec) },
		{ "rundir=", offsetof(struct lwk_args, rundir) },
		{ "check=", offsetof(struct lwk_args, check) },
	};
	const char *v;
	size_t k;
	int i;

	a->prolog = "/usr/libexec/slurm-lwk/lwk-prolog";
	a->epilog = "/usr/libexec/slurm-lwk/lwk-epilog";
	a->conf = "/etc/slurm/lwk.conf";
	a->mcexec = "/usr/bin/mcexec";
	a->rundir = "/run/slurm-lwk";
	a->check = "/usr/bin/lwkctl";
	for (i = 0; i < ac; i++) {
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strncmp(av[i], keys[k].key, strlen(keys[k].key)) == 0)
				break;
		if (k == sizeof(keys) / sizeof(keys[0])) {
			slurm_error("lwk: plugstack.conf: unknown argument \"%s\" "
				    "(want prolog=, epilog=, conf=, mcexec=, rundir=, check=)", av[i]);
			return -1;
		}
		v = av[i] + strlen(keys[k].key);
		if (v[0] != '/' || strlen(v) >= PATH_MAX || strstr(v, "/../") ||
		    (strlen(v) >= 3 && strcmp(v + strlen(v) - 3, "/..") == 0)) {
			slurm_error("lwk: plugstack.conf: %s wants an absolute path, got \"%s\"",
				    keys[k].key, v);
			return -1;
		}
		*(const char **)((char *)a + keys[k].off) = v;
	}
	return 0;
}

static void log_bad_spec(const struct lwk_grammar_error *e)
{
	/* The reason never holds raw bytes of a forbidden character. */
	slurm_error("lwk: invalid --lwk-mode: %s%s%s", e->key, e->key[0] ? ": " : "",
		    e->reason);
}

/*
 * Option callback; runs in every context (twice in a batch step). NULL and
 * "" mean the default profile; so does "(null)", which is what some Slurm
 * paths make of a missing optional value when they copy it through the job
 * environment. At submit (remote == 0) a bad value fails the command: Slurm
 * prints "Invalid --lwk-mode argument" and sbatch, salloc and srun exit 255
 * with nothing queued (seen on 22.05.8, also for #SBATCH lines). On the
 * node (remote == 1) it never fails, because a remote init error would
 * drain the node for a user's mistake.
 */
static int lwk_opt_cb(int val, const char *optarg, int remote)
{
	size_t n;

	(void)val;
	if (optarg == NULL || strcmp(optarg, "(null)") == 0)
		optarg = "";
	n = strlen(optarg);
	opt_seen = 1;
	if (lwk_grammar_check(optarg, n, &opt_err) < 0) {
		opt_bad = 1;
		opt_spec[0] = '\0';
		if (remote) {
			slurm_debug("lwk: ignoring invalid --lwk-mode on the node: %s", opt_err.reason);
			return 0;
		}
		log_bad_spec(&opt_err);
		return -1;
	}
	opt_bad = 0;
	memcpy(opt_spec, optarg, n + 1); /* n <= LWK_SPEC_MAX: checked */
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	struct lwk_args a;
	spank_err_t rc;

	if (parse_args(ac, av, &a) < 0)
		return -1;
	rc = spank_option_register(sp, &lwk_option);
	if (rc != ESPANK_SUCCESS) {
		slurm_error("lwk: register --lwk-mode: %s", spank_strerror(rc));
		/* slurmd's own context never uses the option. */
		return spank_context() == S_CTX_SLURMD ? 0 : -1;
	}
	return 0;
}

/*
 * At submit: refuse a bad spec (in case the callback's failure did not stop
 * the command), have lwkctl check it against lwk.conf, and hand the spec,
 * normalised by lwkctl when it could judge it, to the prolog and epilog as SPANK_LWK_MODE
 * (spank_job_control_setenv prefixes SPANK_). The bare option is exported
 * as "default" so that it is never an empty string. The spec goes as given:
 * the Go parser normalises it (one normaliser, not two).
 */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	static char norm[LWK_SPEC_MAX + 2];
	struct lwk_args a;
	const char *spec;
	spank_err_t rc;

	if ((ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR) || !opt_seen)
		return 0;
	if (opt_bad) {
		log_bad_spec(&opt_err);
		return -1;
	}
	if (parse_args(ac, av, &a) < 0)
		return -1;
	/* An srun inside a running job inherits the job's spec, which was
	 * checked when the job was submitted: do not check it on every step. */
	spec = opt_spec[0] ? opt_spec : LWK_SPEC_DEFAULT;
	if (strcmp(opt_spec, LWK_SPEC_OFF) != 0 &&
	    !(ctx == S_CTX_LOCAL && getenv("SLURM_JOB_ID") != NULL)) {
		switch (check_spec(&a, spec, norm, sizeof(norm))) {
		case -1:
			return -1;
		case 1:
			spec = norm; /* lwkctl's normalised form */
			break;
		}
	}
	rc = spank_job_control_setenv(sp, "LWK_MODE", spec, 1);
	if (rc != ESPANK_SUCCESS) {
		slurm_error("lwk: export LWK_MODE: %s", spank_strerror(rc));
		return -1;
	}
	return 0;
}

/* The job's spec in the job_script context, or NULL for a Linux job. */
static const char *job_spec(spank_t sp)
{
	char *arg = NULL;
	const char *env;

	if (spank_option_getopt(sp, &lwk_option, &arg) == ESPANK_SUCCESS)
		return (arg == NULL || arg[0] == '\0' || strcmp(arg, "(null)") == 0)
			       ? LWK_SPEC_DEFAULT : arg;
	env = getenv("SPANK_LWK_MODE");
	if (env != NULL && env[0] == '\0')
		return LWK_SPEC_DEFAULT;
	return env;
}

/* Appends NAME=VALUE to the environment being built in store. */
static int add_env(char *store, size_t cap, size_t *used, char **envp, size_t *ne,
		   const char *name, const char *value)
{
	int n = snprintf(store + *used, cap - *used, "%s=%s", name, value);

	if (n < 0 || (size_t)n >= cap - *used)
		return -1;
	envp[(*ne)++] = store + *used;
	*used += (size_t)n + 1;
	return 0;
}

/*
 * Runs argv[0] with argv and envp (fork + execve, never a shell) and waits
 * for it, at most timeout_ms when that is positive. With out != NULL, the
 * child's stdout is captured into out (NUL-terminated, at most cap - 1
 * bytes; the rest is dropped). Returns the exit status (0-255), or -1 when
 * it could not be started, timed out or did not exit normally (logged).
 */
static int spawn_wait(const char *what, char *const argv[], char *const envp[], int timeout_ms,
		      char *out, size_t cap)
{
	int status, waited = 0, pipefd[2] = { -1, -1 };
	size_t got = 0;
	pid_t pid, w;

	if (out != NULL) {
		out[0] = '\0';
		if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
			slurm_error("lwk: %s: pipe: %m", what);
			return -1;
		}
	}
	pid = fork();
	if (pid < 0) {
		slurm_error("lwk: %s: fork: %m", what);
		if (out != NULL) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		static const char msg[] = "lwk: exec failed\n";

		/* Async-signal-safe calls only: the parent may be threaded. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* dup2 clears close-on-exec on the copy; the pipe's own
		 * descriptors go with close_range or at exec. */
		if (out != NULL && dup2(pipefd[1], STDOUT_FILENO) < 0)
			_exit(127);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
		close_range(3, ~0U, 0); /* no slurmd/slurmstepd fd leaks into Go */
#endif
		execve(argv[0], argv, envp);
		if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
			/* nothing left to report to */
		}
		_exit(127);
	}
	if (out != NULL)
		close(pipefd[1]);
	for (;;) {
		w = waitpid(pid, &status, timeout_ms > 0 ? WNOHANG : 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w != 0)
			break;
		if (waited >= timeout_ms) {
			slurm_error("lwk: %s: %s still running after %d ms; killed", what, argv[0], timeout_ms);
			kill(pid, SIGKILL);
			do {
				w = waitpid(pid, &status, 0);
			} while (w < 0 && errno == EINTR);
			if (out != NULL)
				close(pipefd[0]);
			return -1;
		}
		usleep(10000);
		waited += 10;
	}
	if (out != NULL) {
		/* The output is one short line: it fits the pipe's buffer, so
		 * reading it after the child exited cannot deadlock. */
		ssize_t n;

		while (got + 1 < cap && (n = read(pipefd[0], out + got, cap - 1 - got)) > 0)
			got += (size_t)n;
		out[got] = '\0';
		close(pipefd[0]);
	}
	if (w < 0) {
		slurm_error("lwk: %s: waitpid %d: %m", what, (int)pid);
		return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		slurm_error("lwk: %s: %s killed by signal %d", what, argv[0], WTERMSIG(status));
	else
		slurm_error("lwk: %s: %s ended with wait status 0x%x", what, argv[0], status);
	return -1;
}

/*
 * Runs path as "path --config CONF" with a minimal, explicit environment
 * and waits for it. Returns 0 when it exits 0, -1 otherwise.
 */
static int run_hook(const char *what, const char *path, const char *spec,
		    const struct lwk_args *a)
{
	enum { NPASSED = sizeof(passed_env) / sizeof(passed_env[0]) };
	static char store[8192];
	char *envp[NPASSED + 4], *argv[4];
	size_t used = 0, ne = 0, i;
	int err = 0, rc;

	/* Build everything before fork: the child only execs. */
	for (i = 0; i < NPASSED; i++) {
		const char *value = getenv(passed_env[i]);

		if (value != NULL)
			err |= add_env(store, sizeof(store), &used, envp, &ne, passed_env[i], value);
	}
	err |= add_env(store, sizeof(store), &used, envp, &ne, "LWK_MODE", spec);
	err |= add_env(store, sizeof(store), &used, envp, &ne, "LWK_CONF", a->conf);
	err |= add_env(store, sizeof(store), &used, envp, &ne, "PATH",
		       "/usr/sbin:/usr/bin:/sbin:/bin");
	if (err) {
		slurm_error("lwk: %s: environment for %s too large", what, path);
		return -1;
	}
	envp[ne] = NULL;
	argv[0] = (char *)path;
	argv[1] = "--config";
	argv[2] = (char *)a->conf;
	argv[3] = NULL;

	slurm_debug("lwk: %s: running %s (LWK_MODE=%s)", what, path, spec);
	/* No timeout: slurmd's PrologEpilogTimeout bounds the hooks. */
	rc = spawn_wait(what, argv, envp, 0, NULL, 0);
	if (rc == 0)
		return 0;
	if (rc > 0)
		slurm_error("lwk: %s: %s exited with status %d", what, path, rc);
	return -1;
}

/*
 * Submit side: has lwkctl check the spec against lwk.conf (is the profile
 * defined, are the extra kernel arguments allowed). It runs as the
 * submitting user, for at most CHECK_TIMEOUT_MS, and prints its own reason
 * on stderr. Exit 3 (LWKCTL_INVALID) refuses the job; anything else that is
 * not success (no lwkctl, no readable lwk.conf on this host, an lwkctl too
 * old to know check-spec, a hang) lets the job through, and the prolog
 * checks on the node.
 */
#define LWKCTL_INVALID 3
#define CHECK_TIMEOUT_MS 10000

static int check_spec(const struct lwk_args *a, const char *spec, char *norm, size_t cap)
{
	char *argv[] = { (char *)a->check, "check-spec", "--config", (char *)a->conf,
			 "--", (char *)spec, NULL };
	char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	struct lwk_grammar_error gerr;
	size_t n;
	int rc;

	if (access(a->check, X_OK) != 0) {
		slurm_debug("lwk: %s not available (%m); the prolog checks the spec", a->check);
		return 0;
	}
	rc = spawn_wait("check spec", argv, envp, CHECK_TIMEOUT_MS, norm, cap);
	if (rc == LWKCTL_INVALID) {
		slurm_error("lwk: --lwk-mode=%s is not valid on this cluster", spec);
		return -1;
	}
	if (rc != 0) {
		slurm_debug("lwk: %s check-spec could not judge (status %d); the prolog checks",
			    a->check, rc);
		return 0;
	}
	/* The normalised spec: one line, and it must pass our own grammar. */
	n = strcspn(norm, "\n");
	norm[n] = '\0';
	if (n == 0 || lwk_grammar_check(norm, n, &gerr) < 0) {
		slurm_debug("lwk: %s check-spec printed no usable normalised spec", a->check);
		return 0;
	}
	return 1;
}

/* job_prolog / job_epilog: a Linux job (no option, or "off") forks nothing. */
static int job_hook(spank_t sp, int ac, char **av, int prolog)
{
	const char *what = prolog ? "job prolog" : "job epilog";
	struct lwk_args a;
	const char *spec;

	if (parse_args(ac, av, &a) < 0)
		return -1;
	spec = job_spec(sp);
	if (spec == NULL || strcmp(spec, LWK_SPEC_OFF) == 0)
		return 0;
	return run_hook(what, prolog ? a.prolog : a.epilog, spec, &a);
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	return job_hook(sp, ac, av, 1);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	return job_hook(sp, ac, av, 0);
}

/* Normal steps only: never the batch script, the extern step or an
 * interactive step. Returns 1 for a normal step; 0 otherwise or when the
 * IDs are unavailable. */
static int normal_step(spank_t sp, uint32_t *job, uint32_t *step)
{
	if (spank_get_item(sp, S_JOB_ID, job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, step) != ESPANK_SUCCESS)
		return 0;
	return *step != SLURM_BATCH_SCRIPT && *step != SLURM_EXTERN_CONT &&
	       *step != SLURM_INTERACTIVE_STEP;
}

/*
 * Exports the marker's "lwk_numa=<linux>:<lwk>,..." line, how McKernel
 * numbers the NUMA nodes it got, to the task as LWK_NUMA_MAP: mbind and
 * set_mempolicy inside the LWK take McKernel's ids. A marker without the
 * line (an older prolog) exports nothing; a line with anything but digits,
 * ':' and ',' is refused.
 */
static int export_numa_map(spank_t sp, const char *path)
{
	char buf[4096], *line, *end;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (line = buf; line != NULL && *line != '\0'; line = end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		if (end != NULL)
			*end = '\0';
		if (strncmp(line, "lwk_numa=", 9) != 0)
			continue;
		line += 9;
		if (*line == '\0' || strspn(line, "0123456789:,") != strlen(line))
			return -1;
		return spank_setenv(sp, "LWK_NUMA_MAP", line, 1) == ESPANK_SUCCESS ? 0 : -1;
	}
	return 0;
}

/*
 * Root, in the forked task process: look for the marker the prolog writes
 * once the LWK is up. RunDir is root-only, so a user cannot fake it; a
 * marker that is not a root-owned regular file is refused all the same.
 */
int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	struct lwk_args a;
	char path[PATH_MAX];
	struct stat st;
	uint32_t job, step;
	int n;

	marker_seen = 0;
	if (!spank_remote(sp) || !normal_step(sp, &job, &step))
		return 0;
	if (parse_args(ac, av, &a) < 0)
		return -1;
	n = snprintf(path, sizeof(path), "%s/job-%u", a.rundir, job);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0; /* a Linux job, or no LWK on this node */
		slurm_error("lwk: step %u.%u: marker %s: %m", job, step, path);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != 0) {
		slurm_error("lwk: step %u.%u: marker %s is not a root-owned file", job, step, path);
		return -1;
	}
	if (export_numa_map(sp, path) < 0) {
		slurm_error("lwk: step %u.%u: marker %s: bad lwk_numa line", job, step, path);
		return -1;
	}
	marker_seen = 1;
	return 0;
}

#if SLURM_VERSION_NUMBER < SLURM_VERSION_NUM(23, 11, 0)
/*
 * Resolves prog on the job's PATH as exec_task would (a name with a '/' is
 * taken as it is). Runs as the user, so access() checks the user's rights.
 */
static int resolve(const char *prog, char **env, char *out, size_t cap)
{
	const char *path = "/usr/local/bin:/usr/bin:/bin", *p, *end;
	char **e;

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
#endif

/*
 * As the user, just before Slurm execs the task: run it through
 * "mcexec -n <local task count> PROGRAM ARGS" when this node booted an LWK
 * for the job, the step is a normal one, and the step did not ask for
 * --lwk-mode=off.
 */
int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	struct lwk_args a;
	char *arg = NULL, ntasks_s[16];
	uint32_t job, step, ntasks;

	if (!marker_seen || !spank_remote(sp) || !normal_step(sp, &job, &step))
		return 0;
	if (spank_option_getopt(sp, &lwk_option, &arg) == ESPANK_SUCCESS &&
	    arg != NULL && strcmp(arg, LWK_SPEC_OFF) == 0) {
		slurm_debug("lwk: step %u.%u: --lwk-mode=off, task runs on Linux", job, step);
		return 0;
	}
	if (parse_args(ac, av, &a) < 0)
		return -1;
	if (spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &ntasks) != ESPANK_SUCCESS) {
		slurm_error("lwk: step %u.%u: local task count unavailable", job, step);
		return -1;
	}
	snprintf(ntasks_s, sizeof(ntasks_s), "%u", ntasks);

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 11, 0)
	{
		const char *prefix[3] = { a.mcexec, "-n", ntasks_s };
		spank_err_t rc = spank_prepend_task_argv(sp, 3, prefix);

		if (rc != ESPANK_SUCCESS) {
			slurm_error("lwk: step %u.%u: prepend %s: %s", job, step, a.mcexec,
				    spank_strerror(rc));
			return -1;
		}
		slurm_debug("lwk: step %u.%u: task runs through %s -n %s", job, step,
			    a.mcexec, ntasks_s);
		return 0;
	}
#else
	/*
	 * Before 23.11 there is no way to change the task's argv, so exec
	 * mcexec here, with the job's environment (S_JOB_ENV; the process
	 * environment at this point is slurmstepd's, not the task's). What
	 * Slurm's exec_task would still have done after this callback is
	 * skipped: TaskProlog and --task-prolog (and the variables they
	 * export), creating TMPDIR, applying the propagated rlimits
	 * (SLURM_RLIMIT_* stay in the environment, the limits are not set),
	 * the SELinux exec context, sbcast/container handling, and its PATH
	 * lookup, which resolve() replaces. S_JOB_ARGV is the step's argv, so
	 * --multi-prog steps are not supported on this path.
	 */
	{
		static char resolved[PATH_MAX];
		char **argv = NULL, **env = NULL, **nargv;
		int argc = 0, i;

		if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS ||
		    spank_get_item(sp, S_JOB_ENV, &env) != ESPANK_SUCCESS ||
		    argc < 1 || argv == NULL || argv[0] == NULL) {
			slurm_error("lwk: step %u.%u: task argv/env unavailable", job, step);
			return -1;
		}
		if (resolve(argv[0], env, resolved, sizeof(resolved)) < 0) {
			slurm_error("lwk: step %u.%u: %s: command not found on the job's PATH",
				    job, step, argv[0]);
			return -1;
		}
		nargv = calloc((size_t)argc + 4, sizeof(*nargv));
		if (nargv == NULL) {
			slurm_error("lwk: step %u.%u: %m", job, step);
			return -1;
		}
		nargv[0] = (char *)a.mcexec;
		nargv[1] = "-n";
		nargv[2] = ntasks_s;
		nargv[3] = resolved;
		for (i = 1; i < argc; i++)
			nargv[i + 3] = argv[i];
		nargv[argc + 3] = NULL;
		slurm_debug("lwk: step %u.%u: exec %s -n %s %s", job, step, a.mcexec,
			    ntasks_s, resolved);
		execve(a.mcexec, nargv, env);
		slurm_error("lwk: step %u.%u: execve %s: %m", job, step, a.mcexec);
		free(nargv);
		return -1;
	}
#endif
}
