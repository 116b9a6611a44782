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
 *      fork + execve + waitpid, argv arrays and an explicit environment,
 *      unless the node service (lwk-monitor) runs the same hook for it
 *      (run_hook);
 *   3. runs each task of a normal step of an LWK job through mcexec, when
 *      the prolog left the marker <rundir>/job-<jobid> on this node for
 *      this attempt of the job, after "lwkctl confine-task" (root) has put
 *      it into the job's proxy cgroups (the batch step's task and
 *      --lwk-mode=off steps go into the job's batch cgroup), with the
 *      marker's lwk_numa line in the task's LWK_NUMA_MAP; a job or step
 *      that asked for an LWK which is not there fails with the reason
 *      instead of running on Linux (remote_check).
 * The process runner, PATH resolver and node service client are in run.c.
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
#include "run.h"

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
/* The longest spec handed to lwk-prolog/lwk-epilog (see run_hook). */
#define LWK_HOOK_SPEC_MAX 65536

/* plugstack.conf arguments. */
struct lwk_args {
	const char *prolog; /* prolog=: the lwk-prolog binary */
	const char *epilog; /* epilog=: the lwk-epilog binary */
	const char *conf;   /* conf=: lwk.conf, passed as --config and LWK_CONF */
	const char *mcexec; /* mcexec=: what tasks run through */
	const char *rundir; /* rundir=: where the prolog leaves job-<id> markers */
	const char *check;  /* check=: lwkctl, run as "check-spec" at submit and
			     * as "confine-task" (root) in each task of an LWK job */
};

static int lwk_opt_cb(int val, const char *optarg, int remote);
static int check_spec(const struct lwk_args *a, const char *spec, char *norm, size_t cap);
static int remote_check(spank_t sp, int ac, char **av);

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

/* Longest lwk_numa line value, and its NUL (pkg/jobmarker.MaxNUMAMap). */
#define LWK_NUMA_MAX 1024

/* What remote init_post_opt (root, in slurmstepd, before the batch script
 * or any task is forked) found for this step; the forked task processes
 * inherit it. */
static enum {
	STEP_LINUX,   /* a Linux job or step: run as Slurm would */
	STEP_LWK,     /* this attempt's LWK is up: wrap the tasks in mcexec */
	STEP_REFUSED, /* the job asked for an LWK that is not there: fail */
} step_state;
static char step_why[2 * PATH_MAX]; /* STEP_REFUSED: what the task prints */
static long step_cpus;             /* STEP_LWK: LWK CPUs (0: unknown) */
static int step_oversubscribe;     /* STEP_LWK: McKernel allows more
				    * processes than CPUs */
static int step_confine;           /* this attempt's marker is here: confine
				    * the step's tasks (lwkctl confine-task) */
static char step_numa[LWK_NUMA_MAX]; /* STEP_LWK: the marker's lwk_numa
				    * ("" when it has none) */
/* Set in task_init_privileged (root) for a task to wrap; read in task_init
 * (user) of the same forked task process. */
static int marker_seen;

/*
 * Every Go program of ours (lwk-prolog, lwk-epilog, lwkctl) runs with this
 * in its environment. Before main, the Go runtime sets up one scheduler
 * context per CPU it may run on, each with its own allocation cache: on a
 * node with hundreds of CPUs that is most of a short program's start (1024
 * cost about 8,000 page faults where the whole of lwk-prolog's work takes
 * about 800), and none of these programs runs more than two things at
 * once. Only the runtime reads the variable, before main, so only the
 * parent can set it.
 */
#define GO_MAXPROCS_ENV "GOMAXPROCS=2"

/* Environment variables copied from our environment to lwk-prolog and
 * lwk-epilog; nothing else of slurmd's environment is passed on. */
static const char *const passed_env[] = {
	"SLURM_JOB_ID", "SLURM_JOB_UID", "SLURM_JOB_GID", "SLURM_JOB_USER",
	"SLURMD_NODENAME", "SLURM_CONF", "SLURM_JOB_PARTITION",
	/* the attempt the marker records, and the tasks per node the plan
	 * must hold (pkg/slurm.FromEnviron) */
	"SLURM_JOB_RESTART_COUNT", "SLURM_JOB_NTASKS", "SLURM_JOB_NUM_NODES",
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

	/* Each process starts without an option value (the callback fires
	 * after this, in every context). */
	opt_seen = opt_bad = 0;
	opt_spec[0] = '\0';
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
 * the command), have lwkctl check it against lwk.conf, and hand the spec to
 * the prolog and epilog as SPANK_LWK_MODE (spank_job_control_setenv
 * prefixes SPANK_). When lwkctl judged it (check_spec returns 1) its
 * normalised form goes; the spec goes as given only when lwkctl could not
 * judge it, and the Go parser normalises it then (one normaliser, not two).
 * The bare option is exported as "default" so that it is never an empty
 * string.
 */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	static char norm[LWK_SPEC_MAX + 2];
	struct lwk_args a;
	const char *spec;
	spank_err_t rc;

	if (ctx == S_CTX_REMOTE)
		return remote_check(sp, ac, av);
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

/* Appends NAME=VALUE (the first vlen bytes of value) to the environment
 * being built in store. */
static int add_env_n(char *store, size_t cap, size_t *used, char **envp, size_t *ne,
		     const char *name, const char *value, size_t vlen)
{
	int n = snprintf(store + *used, cap - *used, "%s=%.*s", name, (int)vlen, value);

	if (n < 0 || (size_t)n >= cap - *used)
		return -1;
	envp[(*ne)++] = store + *used;
	*used += (size_t)n + 1;
	return 0;
}

/* Appends NAME=VALUE to the environment being built in store. */
static int add_env(char *store, size_t cap, size_t *used, char **envp, size_t *ne,
		   const char *name, const char *value)
{
	return add_env_n(store, cap, used, envp, ne, name, value, strlen(value));
}

/* Runs argv via lwk_run and logs why when it fails to give a status. */
static int spawn_wait(const char *what, char *const argv[], char *const envp[], int timeout_ms,
		      char *out, size_t cap)
{
	char why[PATH_MAX + 128];
	int rc = lwk_run(argv, envp, timeout_ms, out, cap, why, sizeof(why));

	if (rc < 0)
		slurm_error("lwk: %s: %s", what, why);
	return rc;
}

/*
 * Runs hook ("prolog" or "epilog") with a minimal, explicit environment and
 * waits for it: in the node service when it takes the request, else as
 * "path --config CONF". Returns 0 when it exits 0, -1 otherwise.
 */
static int run_hook(const char *what, const char *hook, const char *path, const char *spec,
		    const struct lwk_args *a)
{
	enum { NPASSED = sizeof(passed_env) / sizeof(passed_env[0]) };
	static const char hook_path[] = "/usr/sbin:/usr/bin:/sbin:/bin";
	/* the passed variables, LWK_MODE, LWK_CONF, PATH, GOMAXPROCS, NULL */
	char *envp[NPASSED + 5], *argv[4], *store;
	char sock[PATH_MAX], why[PATH_MAX + LWK_ASK_MAX_DECLINE + 128];
	size_t used = 0, ne = 0, i, cap, speclen = strnlen(spec, LWK_HOOK_SPEC_MAX + 1);
	int err = 0, rc;

	/*
	 * The spec is the user's, and only the plugin at submit bounded it:
	 * one that reached the job another way (another plugstack, libslurm
	 * bindings) may be kilobytes long. Pass it on rather than fail the
	 * hook, which would drain the node: lwk-prolog refuses it and cancels
	 * the job. Beyond LWK_HOOK_SPEC_MAX the prefix goes, which is refused
	 * all the same.
	 */
	if (speclen > LWK_HOOK_SPEC_MAX)
		speclen = LWK_HOOK_SPEC_MAX;
	cap = sizeof("LWK_MODE=") + speclen + sizeof("LWK_CONF=") + strlen(a->conf) +
	      sizeof("PATH=") + sizeof(hook_path);
	for (i = 0; i < NPASSED; i++) {
		const char *value = getenv(passed_env[i]);

		if (value != NULL)
			cap += strlen(passed_env[i]) + 1 + strlen(value) + 1;
	}
	/* Build everything before fork: the child only execs. */
	store = malloc(cap);
	if (store == NULL) {
		slurm_error("lwk: %s: environment for %s: %m", what, path);
		return -1;
	}
	for (i = 0; i < NPASSED; i++) {
		const char *value = getenv(passed_env[i]);

		if (value != NULL)
			err |= add_env(store, cap, &used, envp, &ne, passed_env[i], value);
	}
	err |= add_env_n(store, cap, &used, envp, &ne, "LWK_MODE", spec, speclen);
	err |= add_env(store, cap, &used, envp, &ne, "LWK_CONF", a->conf);
	err |= add_env(store, cap, &used, envp, &ne, "PATH", hook_path);
	envp[ne++] = (char *)GO_MAXPROCS_ENV;
	if (err) { /* cannot happen: cap counts every byte */
		slurm_error("lwk: %s: environment for %s does not fit", what, path);
		free(store);
		return -1;
	}
	envp[ne] = NULL;
	argv[0] = (char *)path;
	argv[1] = "--config";
	argv[2] = (char *)a->conf;
	argv[3] = NULL;

	/*
	 * First ask the node service (lwk-monitor, on <rundir>/hook.sock): it
	 * runs the same prolog/epilog code without starting a Go program per
	 * job, and process start is most of a hook's cost on a node. The
	 * binaries remain the fallback when it is not running, was started
	 * with another lwk.conf, or declines (test fault injection). Once it
	 * accepted there is no fallback: the hook may have run halfway (as a
	 * program killed halfway), and the epilog cleans up.
	 */
	if ((size_t)snprintf(sock, sizeof(sock), "%s/hook.sock", a->rundir) < sizeof(sock)) {
		rc = lwk_ask(sock, hook, a->conf, envp, why, sizeof(why));
		if (rc >= 0) {
			free(store);
			if (rc == 0)
				return 0;
			slurm_error("lwk: %s: the node service's %s exited with status %d", what, hook, rc);
			return -1;
		}
		if (rc == -1) {
			slurm_error("lwk: %s: %s", what, why);
			free(store);
			return -1;
		}
		/* Not started: a socket or service not root's is worth an
		 * error; no service, or one that declined, is not. */
		if (rc == LWK_ASK_REFUSED)
			slurm_error("lwk: %s: %s; running %s", what, why, path);
		else
			slurm_debug("lwk: %s: node service not used: %s", what, why);
	}
	slurm_debug("lwk: %s: running %s (LWK_MODE=%.*s)", what, path,
		    (int)(speclen > LWK_SPEC_MAX ? LWK_SPEC_MAX : speclen), spec);
	/* No timeout: slurmd's PrologEpilogTimeout bounds the hooks. */
	rc = spawn_wait(what, argv, envp, 0, NULL, 0);
	free(store);
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
	char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", GO_MAXPROCS_ENV, NULL };
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
	return run_hook(what, prolog ? "prolog" : "epilog", prolog ? a.prolog : a.epilog, spec, &a);
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
 * Runs "lwkctl confine-task" (the check= binary) as root for this task,
 * which puts it into the job's cgroups (cgroup v1) or limits its step's
 * cgroup (v2) before it execs: proxies for a task run through mcexec,
 * batch for the batch script and --lwk-mode=off steps. lwkctl reads the
 * limits from the root-only record the prolog left in RunDir, never from
 * the task's environment, which it does not get.
 */
#define CONFINE_TIMEOUT_MS 10000

static int confine_task(const struct lwk_args *a, uint32_t job, uint32_t step, const char *role)
{
	char job_s[16], pid_s[16];
	char *argv[] = { (char *)a->check, "confine-task", "--config", (char *)a->conf, "--job", job_s,
			 "--pid", pid_s, "--role", (char *)role, NULL };
	char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", GO_MAXPROCS_ENV, NULL };
	int rc;

	snprintf(job_s, sizeof(job_s), "%u", job);
	snprintf(pid_s, sizeof(pid_s), "%d", (int)getpid());
	rc = spawn_wait("confine task", argv, envp, CONFINE_TIMEOUT_MS, NULL, 0);
	if (rc != 0) {
		slurm_error("lwk: step %u.%u: %s confine-task (%s) failed with status %d; the task does not run unconfined",
			    job, step, a->check, role, rc);
		return -1;
	}
	return 0;
}

/* A job's marker as the prolog writes it (pkg/jobmarker): "os=N" first,
 * then key=value lines; unknown keys are ignored. numa is the lwk_numa
 * line, "<linux>:<lwk>,...", how McKernel numbers the NUMA nodes it got
 * (mbind and set_mempolicy inside the LWK take McKernel's ids); "" when the
 * marker has none (an older prolog). */
struct lwk_marker {
	long os, attempt, cpus, oversubscribe;
	char numa[LWK_NUMA_MAX];
};

/* Reads rundir/job-<job>. Returns 0 when read, 1 when there is none, -1
 * when it is not a root-owned regular file or is malformed (why says so). */
static int read_marker(const char *rundir, uint32_t job, struct lwk_marker *m, char *why,
		       size_t wcap)
{
	char path[PATH_MAX], buf[LWK_NUMA_MAX + 512], *line, *save = NULL;
	struct stat st;
	ssize_t n;
	int fd, first = 1;

	m->os = -1;
	m->attempt = m->cpus = m->oversubscribe = 0;
	m->numa[0] = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/job-%u", rundir, job) >= sizeof(path)) {
		snprintf(why, wcap, "marker path too long");
		return -1;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		snprintf(why, wcap, "marker %s: %s", path, strerror(errno));
		return -1;
	}
	/* RunDir is root-only, so a user cannot fake a marker; refuse one
	 * that is not a root-owned regular file all the same. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0) {
		close(fd);
		snprintf(why, wcap, "marker %s is not a root-owned file", path);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		snprintf(why, wcap, "marker %s: empty or unreadable", path);
		return -1;
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '='), *end;
		long v;

		if (eq == NULL)
			goto bad;
		*eq = '\0';
		if (!first && strcmp(line, "lwk_numa") == 0) {
			/* Only digits, ':' and ',': it goes into the task's
			 * environment as is. */
			size_t len = strlen(eq + 1);

			if (len == 0 || len >= sizeof(m->numa) || strspn(eq + 1, "0123456789:,") != len)
				goto bad;
			memcpy(m->numa, eq + 1, len + 1);
			continue;
		}
		errno = 0;
		v = strtol(eq + 1, &end, 10);
		if (errno != 0 || end == eq + 1 || *end != '\0' || v < 0 || (first != (strcmp(line, "os") == 0)))
			goto bad;
		first = 0;
		if (strcmp(line, "os") == 0)
			m->os = v;
		else if (strcmp(line, "attempt") == 0)
			m->attempt = v;
		else if (strcmp(line, "cpus") == 0)
			m->cpus = v;
		else if (strcmp(line, "oversubscribe") == 0)
			m->oversubscribe = v;
	}
	if (m->os >= 0)
		return 0;
bad:
	snprintf(why, wcap, "marker %s: malformed", path);
	return -1;
}

/* The step's attempt: SLURM_RESTART_COUNT in the job's environment, which
 * slurmd sets for the batch step (and srun passes on to steps) only when it
 * is not 0. The SPANK item S_JOB_RESTART_COUNT is not filled in slurmstepd
 * (22.05). */
static long step_attempt(spank_t sp)
{
	char v[32], *end;
	long n;

	if (spank_getenv(sp, "SLURM_RESTART_COUNT", v, sizeof(v)) != ESPANK_SUCCESS || v[0] == '\0')
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	return (errno != 0 || *end != '\0' || n < 0) ? -1 : n;
}

/*
 * Remote init_post_opt, as root in slurmstepd, for the batch step and each
 * normal step, before the script or any task is forked: decide whether the
 * step runs on this attempt's LWK, on Linux, or not at all.
 *
 * A job or step that asked for an LWK must never run on Linux silently.
 * That happens when the prolog did not run for this attempt: Slurm 22.05's
 * slurmd takes "job id still in my credential cache" to mean "the prolog
 * already ran" (req.c, first_job_run = !slurm_cred_jobid_cached()), and a
 * requeued job restarted at once on the same node can meet a cache entry of
 * its previous attempt (slurm_cred.c purges with a 2 s backoff; removed in
 * 23.02). It also happens for `srun --lwk-mode=...` inside a job submitted
 * without it (the prolog never saw the option). The marker records the
 * attempt the LWK was booted for; a missing marker or another attempt's
 * fails the step's tasks in task_init with the reason on their stderr.
 * Failing here instead would drain the node (a remote init error does, for
 * the batch step).
 */
static int remote_check(spank_t sp, int ac, char **av)
{
	struct lwk_marker m;
	struct lwk_args a;
	char why[PATH_MAX + 64];
	uint32_t job, step, ntasks;
	long attempt;
	int asked, rc;

	step_state = STEP_LINUX;
	step_confine = 0;
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS)
		return 0;
	if (step == SLURM_EXTERN_CONT || step == SLURM_INTERACTIVE_STEP)
		return 0;
	if (parse_args(ac, av, &a) < 0)
		return -1;
	/* The option reaches every step of a job submitted with it (through
	 * the job's environment) and the step that gave it on srun. */
	asked = opt_seen && (opt_bad || strcmp(opt_spec, LWK_SPEC_OFF) != 0);
	rc = read_marker(a.rundir, job, &m, why, sizeof(why));
	if (rc < 0) {
		slurm_error("lwk: step %u.%u: %s", job, step, why);
		if (!asked)
			return 0;
		snprintf(step_why, sizeof(step_why), "lwk: job %u: the LWK state on this node is unusable (%s); "
			 "the step does not run on Linux instead", job, why);
		step_state = STEP_REFUSED;
		return 0;
	}
	if (rc == 1) {
		if (!asked)
			return 0;
		snprintf(step_why, sizeof(step_why),
			 "lwk: job %u asked for an LWK (--lwk-mode%s%s), but none was booted for it on this node: "
			 "submit the job itself with --lwk-mode (sbatch/salloc), not only a step; "
			 "if it was, the job's prolog did not run for this start (a requeued job restarted at once); "
			 "resubmit or requeue it", job, opt_spec[0] ? "=" : "", opt_spec);
		step_state = STEP_REFUSED;
		slurm_error("%s", step_why);
		return 0;
	}
	attempt = step_attempt(sp);
	if (attempt != m.attempt) {
		if (!asked)
			return 0;
		snprintf(step_why, sizeof(step_why),
			 "lwk: job %u: the LWK on this node was booted for start %ld of the job, this is start %ld "
			 "(a requeued job restarted before its prolog ran); the step does not run on Linux instead; "
			 "requeue the job", job, m.attempt, attempt);
		step_state = STEP_REFUSED;
		slurm_error("%s", step_why);
		return 0;
	}
	/* This attempt's LWK is up: every task of the step is confined
	 * (task_init_privileged), as proxies or as the job's Linux side. */
	step_confine = 1;
	/* The batch script runs on Linux (its sruns go through mcexec), and
	 * so do --lwk-mode=off steps. */
	if (step == SLURM_BATCH_SCRIPT || (opt_seen && !opt_bad && strcmp(opt_spec, LWK_SPEC_OFF) == 0))
		return 0;
	step_state = STEP_LWK;
	step_cpus = m.cpus;
	memcpy(step_numa, m.numa, sizeof(step_numa));
	step_oversubscribe = m.oversubscribe != 0;
	/* mcexec -n N refuses N above the LWK's CPUs (exit 22): say why here,
	 * once, instead of every task failing with mcexec's message. With
	 * allow_oversubscribe each task runs as its own mcexec, without -n. */
	if (m.cpus > 0 && spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &ntasks) == ESPANK_SUCCESS &&
	    (long)ntasks > m.cpus && !step_oversubscribe) {
		snprintf(step_why, sizeof(step_why),
			 "lwk: step %u.%u runs %u tasks on this node but the LWK has %ld CPUs: "
			 "use fewer tasks per node, more cores (--lwk-mode=...:cores=), or a profile with "
			 "kargs allow_oversubscribe", job, step, ntasks, m.cpus);
		step_state = STEP_REFUSED;
		slurm_error("%s", step_why);
	}
	return 0;
}

/*
 * Root, in the forked task process: when remote_check found this attempt's
 * LWK, confine the task before it runs anything (a normal step's tasks are
 * mcexec proxies; the batch script and --lwk-mode=off steps are the job's
 * Linux side), then wrap it if the step is a normal LWK one. A refused step
 * is not confined: its task only prints why and fails (task_init).
 */
int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	struct lwk_args a;
	uint32_t job, step;

	marker_seen = 0;
	if (!spank_remote(sp) || !step_confine || step_state == STEP_REFUSED)
		return 0;
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS)
		return -1;
	if (parse_args(ac, av, &a) < 0)
		return -1;
	if (confine_task(&a, job, step, step_state == STEP_LWK ? "proxies" : "batch") < 0)
		return -1;
	marker_seen = step_state == STEP_LWK && normal_step(sp, &job, &step);
	/* The LWK's NUMA numbering, for the task (see struct lwk_marker). */
	if (step_state == STEP_LWK && step_numa[0] != '\0' &&
	    spank_setenv(sp, "LWK_NUMA_MAP", step_numa, 1) != ESPANK_SUCCESS) {
		slurm_error("lwk: step %u.%u: cannot set LWK_NUMA_MAP", job, step);
		return -1;
	}
	return 0;
}

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
	int partitioned;

	if (step_state == STEP_REFUSED && spank_remote(sp)) {
		/* As the user, with the task's stdio set up: the reason goes to
		 * the job's error output, and the task (or batch script) fails
		 * before it runs. */
		size_t len = strlen(step_why);

		step_why[len] = '\n';
		if (write(STDERR_FILENO, step_why, len + 1) < 0) {
			/* slurmd's log has it */
		}
		step_why[len] = '\0';
		return -1;
	}
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
	/* More tasks than LWK CPUs (remote_check allowed it only with
	 * allow_oversubscribe): mcexec -n would refuse, so each task runs as
	 * its own mcexec on the shared CPUs. */
	partitioned = !(step_oversubscribe && step_cpus > 0 && (long)ntasks > step_cpus);

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 11, 0)
	{
		const char *prefix[3] = { a.mcexec, "-n", ntasks_s };
		spank_err_t rc = spank_prepend_task_argv(sp, partitioned ? 3 : 1, prefix);

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
	 * lookup, which lwk_resolve() replaces. S_JOB_ARGV is the step's argv, so
	 * --multi-prog steps are not supported on this path.
	 */
	{
		static char resolved[PATH_MAX];
		char **argv = NULL, **env = NULL, **nargv;
		int argc = 0, i, n;

		if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS ||
		    spank_get_item(sp, S_JOB_ENV, &env) != ESPANK_SUCCESS ||
		    argc < 1 || argv == NULL || argv[0] == NULL) {
			slurm_error("lwk: step %u.%u: task argv/env unavailable", job, step);
			return -1;
		}
		if (lwk_resolve(argv[0], env, resolved, sizeof(resolved)) < 0) {
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
		n = 1;
		if (partitioned) {
			nargv[n++] = "-n";
			nargv[n++] = ntasks_s;
		}
		nargv[n++] = resolved;
		for (i = 1; i < argc; i++)
			nargv[n++] = argv[i];
		nargv[n] = NULL;
		slurm_debug("lwk: step %u.%u: exec %s -n %s %s", job, step, a.mcexec,
			    ntasks_s, resolved);
		execve(a.mcexec, nargv, env);
		slurm_error("lwk: step %u.%u: execve %s: %m", job, step, a.mcexec);
		free(nargv);
		return -1;
	}
#endif
}
