// Package e2e holds the end-to-end tests of slurm-lwk: they drive a real
// Slurm (the local single-node cluster of scripts/slurm-local) with sbatch,
// srun, scancel, squeue, sacct and scontrol, run by argv, and check the node
// afterwards through `lwkctl status --json`, the per-job marker files in
// RunDir, the simulated device files and /proc.
//
// The tests are built only with the e2e tag, so `go test ./...` skips them:
//
//	SLURM_LWK_PLUGIN=$PWD/spank/spank_lwk.so SLURM_LWK_BINDIR=$PWD/bin scripts/slurm-local up
//	go test -tags e2e -timeout 10m -v ./tests/e2e/
//
// They need root (they submit jobs as user nobody, resume the node and write
// the simulator's fault file) and a node running the SIMULATED IHK backend:
// they inject faults into it. Environment:
//
//	LWK_E2E_BINDIR  directory of lwkctl and lwk-sim-mcexec (default <repo>/bin)
//	LWK_E2E_CONF    lwk.conf of the node (default /etc/slurm/lwk.conf)
//	LWK_E2E_NODE    Slurm node name (default: the short host name)
//	LWK_E2E_FORCE   run even when not root (the tests will then fail loudly)
//
// Kernel and Slurm interfaces read: /proc/PID/{exe,cmdline,status} for
// leftover processes, slurm.conf's plugstack (through scontrol), and the
// simulator's DevDir for device stand-ins.
package e2e
