// Package slurm holds slurm-lwk's Slurm-facing edges, without policy: the
// job environment slurmd gives Prolog=/Epilog= and the SPANK shim's hooks
// (FromEnviron), the output of `scontrol show job -d` (ParseShowJob), and the
// scontrol calls made by argv, never through a shell (ShowJob, DrainNode,
// SetAdminComment, CancelJob, RequeueJob) behind the small Runner interface.
//
// Interfaces spoken: the process environment set by slurmd
// (src/plugins/prep/script/prep_script_slurmd.c, _build_env: SLURM_JOB_ID,
// SLURM_JOBID, SLURM_JOB_UID, SLURM_JOB_GID, SLURM_JOB_USER,
// SLURMD_NODENAME, SLURM_SCRIPT_CONTEXT, SPANK_* job-control variables) and
// the scontrol command line and its text output.
//
// Versions covered: the environment and the `scontrol show job -d` layout of
// Slurm 22.05 (fixtures captured from 22.05.8 on Debian 12, see
// testdata/showjob/README.md). Detail lines have the form
//
//	Nodes=<hostlist> CPU_IDs=<list> Mem=<MiB> GRES=<text>
//
// one per group of nodes with identical allocations, right after the
// JOB_GRES= line (releases before JOB_GRES was printed are read from after
// Socks/Node=, and GRES_IDX= is accepted for GRES=). Only 22.05.8 was run;
// current Slurm sources print the same detail-line format after JOB_GRES=
// and add fields elsewhere in the record, which the parser ignores. A
// pending job has neither JOB_GRES= nor detail lines (ErrNotAllocated).
// One-line output (scontrol -o) is not supported. CPU_IDs are Slurm's
// abstract CPU IDs, not kernel CPU numbers. Slurm 22.05's scontrol has no
// JSON output for jobs (`scontrol show job --json` is "unrecognized option"
// on 22.05.8), so the text is read in every supported series.
//
// Slurm prints user-controlled fields verbatim, newlines included (checked
// on 22.05.8: a job name or comment can contain a line "Nodes=vm
// CPU_IDs=0-15 ..."). The parser therefore reads only the detail block after
// the record's single JOB_GRES= line and returns ErrAmbiguous when the
// record, the anchor line or a node is duplicated: a forged allocation is
// refused, never used. lwk-prolog cancels such a job (pkg/verdict): the
// line break is the user's doing, set at submit or later with `scontrol
// update` (job_submit.lua.example refuses both).
//
// Slurm's documentation advises against calling Slurm commands from
// Prolog/Epilog (one RPC per node per job; slurmctld may be slow), and
// slurmctld refuses `scontrol update` of a finished job, so SetAdminComment
// works from the prolog or the monitor, not from the epilog.
package slurm
