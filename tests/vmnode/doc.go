//go:build vmnode

// Package vmnode holds the tests that run inside the node-preparation
// harness's throw-away VM (scripts/vm-node smoke), on Debian's own kernel
// with only cgroup2 mounted. They run the real lwk-prolog, lwk-epilog and
// "lwkctl confine-task" with the simulated IHK backend and SimOfflineCPUs=yes,
// so reserving the job's CPUs really takes them offline through sysfs, over a
// cgroup v2 tree laid out as Slurm's cgroup/v2 plugin lays it out
// (system.slice/[<node>_]slurmstepd.scope/<job>/step_<id>/user/task_<n>),
// and check what the kernel then does: the job's CPUs go offline and come
// back, a job cpuset of offlined CPUs only falls back to its parent's and
// the confinement narrows the proxies to the OS cores in place, memory.max
// OOM-kills, cpu.max throttles, and the job's user cannot undo any of it.
//
// The build tag keeps them out of "go test ./...": they take CPUs of the
// machine offline. Inside the VM they also need LWK_VM_GUEST=1 and
// LWK_BIN_DIR (the directory of lwk-prolog, lwk-epilog and lwkctl).
package vmnode
