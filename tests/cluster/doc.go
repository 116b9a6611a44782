// Package cluster holds the multi-node end-to-end tests of slurm-lwk: three
// slurmd hosts (lwkn1..lwkn3), each in its own network, UTS and mount
// namespaces with its own simulated node, on one slurmctld, as set up by
// scripts/slurm-cluster. The tests submit jobs as user nobody with sbatch and
// check each host through `scripts/slurm-cluster exec HOST lwkctl status
// --json`, the host's RunDir markers, simulated devices, proxy cgroups and
// LWK logs, and the accounting record through `lwkctl stats`.
//
// The tests are built only with the cluster tag, so `go test ./...` skips
// them. Run them with
//
//	make test-cluster
//
// which takes the Slurm lock, brings the cluster up, runs them and takes it
// down (scripts/slurm-cluster test). They need root. Environment (set by the
// script):
//
//	LWK_CLUSTER_SCRIPT    scripts/slurm-cluster (default <repo>/scripts/slurm-cluster)
//	SLURM_CLUSTER_DIR     the cluster's directory (default /var/lib/slurm-cluster)
//	LWK_E2E_BINDIR        directory of lwkctl and lwk-sim-mcexec (default <repo>/bin)
//
// Kernel interfaces read: /proc/PID/{exe,status,stat} for leftover processes
// and /sys/fs/cgroup/{cpuset,memory,cpu} for the hosts' proxy cgroups.
package cluster
