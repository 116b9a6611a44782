/* A device holder for tests: opens PATH read-write, takes a shared flock
 * (as mcexec's stand-in does), prints "holding" and waits to be killed.
 *   -u  open it in a second thread that first called unshare(CLONE_FILES),
 *       so the descriptor exists only in that thread's file table
 *   -n  make the process non-dumpable (its /proc/PID shows root as owner)
 * Written in C because a Go thread with its own file table breaks the Go
 * runtime (its poller descriptor is missing there). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char *path;
static int unshare_files;

static void *hold(void *arg)
{
	int fd;

	(void)arg;
	if (unshare_files && unshare(CLONE_FILES) != 0) {
		perror("unshare");
		exit(7);
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("open");
		exit(3);
	}
	if (flock(fd, LOCK_SH) != 0) {
		perror("flock");
		exit(4);
	}
	if (write(STDOUT_FILENO, "holding\n", 8) != 8)
		exit(6);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	int opt;

	while ((opt = getopt(argc, argv, "un")) != -1) {
		switch (opt) {
		case 'u':
			unshare_files = 1;
			break;
		case 'n':
			if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
				perror("prctl");
				return 5;
			}
			break;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return 2;
	path = argv[optind];
	if (!unshare_files) {
		hold(NULL);
		return 0;
	}
	if (pthread_create(&t, NULL, hold, NULL) != 0)
		return 8;
	for (;;)
		pause();
}
