// Command lwk-sim-mcexec is the simulated mcexec: it runs a program on
// Linux, pinned to the CPUs of a booted simulated McKernel instance, for
// nodes whose lwk.conf says IHKBackend=sim. It is not mcexec and never
// talks to a real IHK device.
//
// It accepts mcexec's command line (McKernel's executer/user/mcexec.c):
//
//	lwk-sim-mcexec [--config FILE] [-n N] [-c N] [mcexec options] [OS_INDEX] PROGRAM [ARGS...]
//
// Options stop at the first non-option argument, as mcexec's getopt("+...")
// does; a first non-option made of digits is the OS index (default 0, or
// the only instance present). -n N checks N against the LWK CPU count (exit
// 22 when larger, like mcexec) and, under srun (SLURM_LOCALID=r), pins the
// program to the r-th of N equal slices of the LWK CPUs, which is how
// mcctrl partitions them between the ranks of one node. -c N pins to LWK
// CPU N only. These mcexec options are accepted and ignored because they
// only tune the LWK side: -t, -m, -M/--mpol-threshold, -h/--extend-heap-by,
// -s/--stack-premap, -S/--straight-map-threshold, -u/--uti-thread-rank,
// -f/--flags, -e, --enable-straight-map, --mpol-no-heap, --mpol-no-stack,
// --mpol-no-bss, --mpol-shm-premap, --no-bind-ikc-map,
// --disable-sched-yield, --enable-uti, --uti-use-last-cpu, --profile,
// --enable-vdso, --disable-vdso, --enable-tofu, --debug-mcexec. The
// command line is parsed by hand rather than with pflag because getopt's
// rules (stop at the first non-option, clustered "-n4") are the contract.
//
// Kernel interfaces: it opens the device stand-in <DevDir>/mcosN (DevDir
// from lwk.conf) O_RDWR like mcexec opens /dev/mcosN, holds flock(LOCK_SH)
// on it for its whole life (so the simulator refuses DESTROY_OS with EBUSY
// meanwhile), reads the instance's CPUs and status from it, pins the
// program with sched_setaffinity(2), reads the host's
// /sys/devices/system/cpu/present, and appends the program's rusage to the
// stand-in when it ends.
//
// The program gets the caller's environment plus LWK_SIM_OS (the instance
// index) and LWK_SIM_CPUS (the simulated LWK CPUs it was given, kernel list
// syntax). Where those CPUs do not exist on this host (a fixture topology
// larger than the machine) or lie outside the process's allowed CPUs, it
// runs on the CPUs it may use and says so once on stderr.
//
// Signals: every catchable signal is forwarded to the program except
// SIGCHLD, SIGTSTP, SIGTTIN and SIGTTOU (mcexec does not forward those; they
// stop only the proxy) and SIGURG (the Go runtime uses it internally). The
// program runs in the stand-in's process group, so signals sent to the whole
// group (a terminal's Ctrl-C) reach it twice. If the stand-in is killed, the
// program is killed too (PR_SET_PDEATHSIG), as killing mcexec destroys the
// LWK process.
//
// Exit status: the program's exit code; 128+N when signal N killed it
// (real mcexec re-raises the signal instead, so its parent sees
// WIFSIGNALED); 1 for start-up failures (the device cannot be opened, the
// instance is not RUNNING, the program cannot be found); 22 when -n exceeds
// the LWK CPU count.
package main
