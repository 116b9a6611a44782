// Package verdict decides what a failed lwk-prolog does about its job and
// its node, and carries the decision out through Slurm's commands.
//
// A prolog that exits non-zero makes slurmd drain the node ("Prolog error")
// and slurmctld requeue and hold a batch job, so failing is right only for a
// fault of the node. Everything else is settled by the prolog itself, which
// then exits 0:
//
//   - Cancel: the job's own request cannot be met on this node: a --lwk-mode
//     that is malformed or unsatisfiable (plan.ErrRequest, *slurm.SpecError),
//     or a job record the user made unreadable by putting line breaks into
//     its name or comment after submit (slurm.ErrAmbiguous). The reason goes
//     to the job's AdminComment, then scancel.
//   - Requeue: the node is healthy but another job's LWK is booted on it
//     (ErrNodeBusy; IHK boots one OS per device). The reason goes to the
//     AdminComment, then `scontrol requeue`; slurmctld starts the job again
//     after the credential lifetime, elsewhere or here once the node is free.
//     Jobs Slurm cannot requeue (srun/salloc allocations) are cancelled.
//   - Drain: anything else. The node's drain reason is set to the error
//     (slurmd's own reason, "Prolog error", names no cause) and the prolog
//     fails.
//
// If cancelling or requeueing fails, the node is drained after all: a job
// that would run without the LWK it asked for is worse than a drained node.
//
// Interfaces spoken: the scontrol and scancel command lines, through
// slurm.Runner (argv arrays, never a shell).
package verdict
