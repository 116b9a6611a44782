// Command lwkctl is the admin's tool for slurm-lwk nodes.
//
//	lwkctl plan    print the LWK plan for given inputs, touching nothing
//	lwkctl status  show IHK reservations, OS instances and jobs with journals
//	lwkctl cleanup run the epilog's recovery for a job by hand, or for every
//	               job whose epilog already ran but whose LWK is still here
//	lwkctl cpus    translate between Slurm's abstract CPU IDs and Linux's
//	lwkctl confine-task  confine a task of an LWK job (run by the SPANK
//	               plugin as root, before the task execs)
//	lwkctl stats   decode a job's LWK usage record from accounting
//	lwkctl account gather, merge and store a job's LWK usage record
//	lwkctl check-spec  validate a --lwk-mode spec against lwk.conf (the
//	               SPANK plugin runs it at submit time, as the user)
//	lwkctl node    plan, apply (or undo) and report node preparation for
//	               contiguous LWK memory
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/backend"
	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodestatus"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/proxycgroup"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

const usage = `usage: lwkctl COMMAND [flags]

commands:
  plan     --lwk-mode SPEC --cpus LIST --mem SIZE [--job-id ID] [--sysfs-root DIR] [--json]
           print the plan lwk-prolog would make; touches nothing
  status   [--json]
           show the IHK backend, reserved CPUs and memory, OS instances, and jobs
  cleanup  --job ID | --ended
           tear down what a job left on the node (what lwk-epilog does)
  cpus     (--abstract LIST | --machine LIST) [--sysfs-root DIR]
           translate Slurm's abstract CPU IDs to Linux CPU IDs or back
  confine-task --job ID --pid PID --role proxies|batch
           (root; the SPANK plugin runs it in each task of an LWK job before the
           task execs) put the task into the job's cgroups, from the record
           the prolog wrote under RunDir
  check-spec [--] SPEC
           check a --lwk-mode spec against lwk.conf's profiles and allowed kernel
           arguments and print its normalised form; exit 0 valid, 3 invalid,
           2 cannot check here (no readable lwk.conf), 1 any other error
  node     plan|apply [--undo]|report [--json] [--root DIR]
           prepare the node for contiguous LWK memory (see lwkctl node --help)

  stats    JOBID [--json] [--field SystemComment]
           decode the job's LWK usage record from the accounting database
  account  [--job ID --nodes LIST | --since DURATION] [--field F] [--port 9417] [--dry-run]
           gather the job's node records from lwk-monitor, merge them and store
           them with sacctmgr (EpilogSlurmctld, or a catch-up timer with --since)

common flags:
  --config FILE   node configuration (default $LWK_CONF or /etc/slurm/lwk.conf)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		if errors.Is(err, errCannotCheck) {
			os.Exit(2) // silent: the submit host need not have lwk.conf
		}
		var inv *invalidSpecError
		if errors.As(err, &inv) {
			// A distinct status: the SPANK plugin refuses the job only on
			// this one, not on any error of an lwkctl it cannot vouch for.
			fmt.Fprintf(os.Stderr, "lwkctl: %s\n", lwknode.OneLine(err))
			os.Exit(3)
		}
		fmt.Fprintf(os.Stderr, "lwkctl: %s\n", lwknode.OneLine(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := pflag.NewFlagSet("lwkctl "+cmd, pflag.ContinueOnError)
	configPath := fs.String("config", lwknode.DefaultConfigPath(), "node configuration file")
	switch cmd {
	case "plan":
		return planCmd(fs, configPath, args, stdout)
	case "status":
		return statusCmd(ctx, fs, configPath, args, stdout)
	case "cleanup":
		return cleanupCmd(ctx, fs, configPath, args, stdout)
	case "cpus":
		return cpusCmd(fs, configPath, args, stdout)
	case "check-spec":
		return checkSpecCmd(fs, configPath, args, stdout)
	case "confine-task":
		return confineTaskCmd(fs, configPath, args)
	case "node":
		return nodeCmd(ctx, fs, configPath, args, stdout)
	case "stats":
		return statsCmd(ctx, fs, args, stdout)
	case "account":
		return accountCmd(ctx, fs, args, stdout)
	}
	return fmt.Errorf("unknown command %q (try lwkctl --help)", cmd)
}

func planCmd(fs *pflag.FlagSet, configPath *string, args []string, stdout io.Writer) error {
	var r lwknode.PlanRequest
	sysfsRoot := fs.String("sysfs-root", "", "read the topology under this root instead of lwk.conf's SysfsRoot")
	fs.Uint32Var(&r.JobID, "job-id", 0, "job ID")
	fs.StringVar(&r.Spec, "lwk-mode", "", "the --lwk-mode specification")
	fs.StringVar(&r.CPUs, "cpus", "", "the job's CPUs on this node (Linux numbering, list syntax)")
	fs.StringVar(&r.Mem, "mem", "", "the job's memory on this node (e.g. 10G)")
	jsonOut := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if *sysfsRoot != "" {
		cfg.SysfsRoot = *sysfsRoot
	}
	r.Config = cfg
	p, err := lwknode.DryRun(r)
	if err != nil {
		return err
	}
	if *jsonOut {
		return writeJSON(stdout, p)
	}
	return p.Format(stdout)
}

func statusCmd(ctx context.Context, fs *pflag.FlagSet, configPath *string, args []string, stdout io.Writer) error {
	jsonOut := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Read-only as far as slurm-lwk's own state goes: unlike openNode,
	// nothing is created under RunDir or LogDir, and journals are read
	// through journal.Reader. Opening the backend may still write: with
	// IHKBackend=sim it creates SimStateDir (its dev/mcd0 stand-in and
	// state), and either backend may refresh the topology cache in
	// StateDir.
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	b, err := backend.Open(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), false)
	if err != nil {
		return err
	}
	journals, err := journal.OpenReader(lwknode.JournalDir(cfg))
	if err != nil {
		return err
	}
	st, err := nodestatus.Collect(ctx, string(cfg.Backend), b.Client, journals, cfg.RunDir)
	if err != nil {
		return err
	}
	if err := st.AddCgroups(lwknode.OpenCgroups(cfg, procfs.Default())); err != nil {
		return err
	}
	if *jsonOut {
		return st.WriteJSON(stdout)
	}
	return st.WriteText(stdout)
}

func cleanupCmd(ctx context.Context, fs *pflag.FlagSet, configPath *string, args []string, stdout io.Writer) error {
	job := fs.Uint32("job", 0, "the job to clean up after")
	ended := fs.Bool("ended", false, "clean up after every job whose epilog already ran but whose LWK is still here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*job == 0) == !*ended {
		return errors.New("cleanup: give either --job ID or --ended")
	}
	node, err := openNode(*configPath)
	if err != nil {
		return err
	}
	if *ended {
		res, err := node.CollectEnded(ctx)
		if err != nil {
			return err
		}
		if res == nil {
			_, err = fmt.Fprintln(stdout, "no job whose epilog already ran holds anything here")
			return err
		}
		ids := append([]uint32{res.JobID}, res.Collected...)
		_, err = fmt.Fprintf(stdout, "jobs %v cleaned up (their epilog had already run): os destroyed %v, cpus released %q, memory chunks released %d, processes killed %v\n",
			ids, res.OS, res.ReleasedCPUs.String(), len(res.ReleasedMemory), res.Killed)
		return err
	}
	res, err := node.Cleanup(ctx, *job)
	if err != nil {
		return err
	}
	how := "from its journal"
	if res.Recovered {
		how = "from live state (no readable journal)"
	}
	_, err = fmt.Fprintf(stdout, "job %d cleaned up %s: os destroyed %v, cpus released %q, memory chunks released %d, processes killed %v, cgroups removed %v\n",
		*job, how, res.OS, res.ReleasedCPUs.String(), len(res.ReleasedMemory), res.Killed, res.Cgroups)
	return err
}

// confineTaskCmd puts one task of an LWK job into the job's confinement. It
// reads only lwk.conf (RunDir, CgroupPrefix) and the prolog's root-only
// record: nothing of the user's environment, which the plugin does not pass.
func confineTaskCmd(fs *pflag.FlagSet, configPath *string, args []string) error {
	job := fs.Uint32("job", 0, "the job (required)")
	pid := fs.Int("pid", 0, "the task's process ID (required)")
	role := fs.String("role", "", "proxies (a task run through mcexec) or batch (the batch script, --lwk-mode=off steps)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *job == 0 || *pid <= 1 {
		return errors.New("confine-task: --job and --pid are required")
	}
	r := proxycgroup.Role(*role)
	if r != proxycgroup.Proxy && r != proxycgroup.Batch {
		return fmt.Errorf("confine-task: --role %q: want proxies or batch", *role)
	}
	if os.Geteuid() != 0 {
		return errors.New("confine-task: needs root")
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	cg := lwknode.OpenCgroups(cfg, procfs.Default())
	m, ok := cg.(proxycgroup.Manager)
	if !ok {
		_, err := cg.Create(*job, proxycgroup.Limits{})
		return err
	}
	rec, err := proxycgroup.ReadRecord(cfg.RunDir, *job)
	if err != nil {
		return err
	}
	return m.Join(rec, *pid, r)
}

func cpusCmd(fs *pflag.FlagSet, configPath *string, args []string, stdout io.Writer) error {
	abstract := fs.String("abstract", "", "Slurm abstract CPU IDs to translate to Linux IDs")
	machine := fs.String("machine", "", "Linux CPU IDs to translate to Slurm abstract IDs")
	sysfsRoot := fs.String("sysfs-root", "", "read the topology under this root instead of lwk.conf's SysfsRoot")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root := *sysfsRoot
	if root == "" {
		cfg, err := config.Load(*configPath)
		if err != nil {
			return err
		}
		root = cfg.SysfsRoot
	}
	topo, err := topology.ReadLayout(root)
	if err != nil {
		return err
	}
	var in string
	convert := topo.SlurmAbstractToMachine
	switch {
	case *abstract != "" && *machine == "":
		in = *abstract
	case *machine != "" && *abstract == "":
		in, convert = *machine, topo.MachineToSlurmAbstract
	default:
		return errors.New("cpus: give exactly one of --abstract or --machine")
	}
	set, err := cpuset.Parse(in)
	if err != nil {
		return fmt.Errorf("cpus %q: %w", in, err)
	}
	out, err := convert(set)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, out.String())
	return err
}

// errCannotCheck makes check-spec exit 2: the spec was not judged.
var errCannotCheck = errors.New("cannot check")

// invalidSpecError makes check-spec exit 3: the spec is not valid here.
type invalidSpecError struct{ err error }

func (e *invalidSpecError) Error() string { return e.err.Error() }
func (e *invalidSpecError) Unwrap() error { return e.err }

// checkSpecCmd validates a spec the way the prolog will, minus what depends
// on the job's allocation, and prints its normalised form (which the SPANK
// plugin exports to the job). It runs unprivileged, on the submit host.
func checkSpecCmd(fs *pflag.FlagSet, configPath *string, args []string, stdout io.Writer) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("check-spec: want exactly one SPEC")
	}
	spec := fs.Arg(0)
	req, err := lwkmode.Parse(spec)
	if err != nil {
		return &invalidSpecError{err}
	}
	if req.Off {
		_, err := fmt.Fprintln(stdout, req.String())
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		// No lwk.conf on this host (or not readable): the prolog checks.
		return fmt.Errorf("%w: %w", errCannotCheck, err)
	}
	prof, err := cfg.Profile(req.Profile)
	if err != nil {
		return &invalidSpecError{fmt.Errorf("invalid --lwk-mode %q: %w", spec, err)}
	}
	if err := prof.CheckKargs(req.Kargs); err != nil {
		return &invalidSpecError{fmt.Errorf("invalid lwk-mode %q: %w", req.String(), err)}
	}
	_, err = fmt.Fprintln(stdout, req.String())
	return err
}

func openNode(configPath string) (*lwknode.Node, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return lwknode.Open(cfg, log, false)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
