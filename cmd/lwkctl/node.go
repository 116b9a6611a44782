package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/defrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/memblock"
	"github.com/slurm-lwk/slurm-lwk/pkg/memfrag"
	"github.com/slurm-lwk/slurm-lwk/pkg/nodeprep"
)

const nodeUsage = `usage: lwkctl node COMMAND [flags]

  plan   [--system-mem SIZE] [--root DIR] [--json]
         print the kernel command line and the run-time settings the node
         needs (numa=fake sizing, movablecore=, irqaffinity=, job-node
         memory blocks to make Movable, IRQs to move, system confinement)
  apply  [--undo] [--root DIR] [--json]
         make the run-time settings (root); every change is recorded in
         <StateDir>/nodeprep.json and --undo reverses exactly those
  report [--root DIR] [--json]
         per NUMA node: memory, free 2/4 MiB blocks, share in free runs of
         >= 256 MiB (from /proc/kpageflags, root), block zones; IRQs and
         processes allowed on app cores

  defrag [--budget DURATION] [--drop-caches] [--no-evacuate] [--online-kernel]
         [--root DIR] [--json]
         defragment the job nodes now (root), as the prolog's optional
         pre-boot step does: drop clean page cache (only with
         --drop-caches), compact each job node, offline and online again
         their partly used Movable blocks; bounded by --budget (default 30s).
         --online-kernel (DefragOnlineKernel=yes) also evacuates the partly
         used Normal blocks and onlines every evacuated block as kernel
         memory, Movable ones included, so IHK (GFP_KERNEL) can reserve it;
         the result's kernel_blocks are the blocks so converted
  defrag --restore-movable BLOCKS [--root DIR] [--json]
         the epilog's part after --online-kernel (root): turn the listed
         job blocks (e.g. 33-38,41) back into ZONE_MOVABLE and online any
         offline job block; blocks that refuse stay kernel memory

  --root DIR   read and change the machine below DIR (default /)
`

func nodeCmd(ctx context.Context, fs *pflag.FlagSet, configPath *string, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		_, err := fmt.Fprint(stdout, nodeUsage)
		return err
	}
	sub, args := args[0], args[1:]
	root := fs.String("root", "/", "the machine's root directory")
	jsonOut := fs.Bool("json", false, "print JSON")
	systemMem := fs.String("system-mem", "", "memory the system side needs, to size numa=fake (e.g. 2G)")
	undo := fs.Bool("undo", false, "apply: reverse the recorded changes")
	budget := fs.Duration("budget", 30*time.Second, "defrag: time budget")
	dropCaches := fs.Bool("drop-caches", false, "defrag: drop the clean page cache (machine-wide)")
	noEvacuate := fs.Bool("no-evacuate", false, "defrag: do not offline and online Movable blocks")
	onlineKernel := fs.Bool("online-kernel", false, "defrag: online the evacuated job blocks as kernel memory")
	restoreMovable := fs.String("restore-movable", "", "defrag: turn these job blocks back into ZONE_MOVABLE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("node %s: unexpected arguments %q", sub, fs.Args())
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	s := nodeprep.Settings{OSCores: cfg.OSCores, SystemNodes: cfg.SystemNUMANodes, JobNodes: cfg.JobNUMANodes, PageBytes: uint64(os.Getpagesize())}
	if *systemMem != "" {
		if s.SystemMemBytes, err = lwkmode.ParseSize(*systemMem); err != nil {
			return fmt.Errorf("--system-mem %q: %w", *systemMem, err)
		}
	}
	switch sub {
	case "plan":
		m, err := nodeprep.ReadMachine(*root)
		if err != nil {
			return err
		}
		p, err := nodeprep.MakePlan(m, s)
		if err != nil {
			return err
		}
		if *jsonOut {
			return writeJSON(stdout, p)
		}
		_, err = fmt.Fprint(stdout, p.Format())
		return err
	case "apply":
		if os.Geteuid() != 0 {
			return errors.New("node apply: must run as root")
		}
		k, err := memblock.New(*root)
		if err != nil {
			return err
		}
		a := &nodeprep.Applier{Root: *root, StateDir: cfg.StateDir, Blocks: k, Runner: execRunner{},
			Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
		var res *nodeprep.Result
		if *undo {
			res, err = a.Undo(ctx)
		} else {
			var m *nodeprep.Machine
			if m, err = nodeprep.ReadMachine(*root); err != nil {
				return err
			}
			var p *nodeprep.Plan
			if p, err = nodeprep.MakePlan(m, s); err != nil {
				return err
			}
			res, err = a.Apply(ctx, p)
		}
		if res != nil {
			if *jsonOut {
				if jerr := writeJSON(stdout, res); jerr != nil {
					return errors.Join(err, jerr)
				}
			} else {
				what := "changed"
				if *undo {
					what = "reversed"
				}
				fmt.Fprintf(stdout, "%s %d, refused %d, recorded %d\n", what, len(res.Changed), len(res.Refused), res.Recorded)
				for _, r := range res.Refused {
					fmt.Fprintf(stdout, "  refused %s %s: %s\n", r.Kind, r.Object, r.Err)
				}
			}
		}
		return err
	case "defrag":
		if os.Geteuid() != 0 {
			return errors.New("node defrag: must run as root")
		}
		if s.JobNodes.IsEmpty() {
			return errors.New("node defrag: lwk.conf sets no JobNUMANodes")
		}
		if *restoreMovable != "" {
			return restoreBlocks(*root, s, *restoreMovable, *jsonOut, stdout)
		}
		k, err := memblock.New(*root)
		if err != nil {
			return err
		}
		m, err := nodeprep.ReadMachine(*root)
		if err != nil {
			return err
		}
		flags := memfrag.NewPageFlags(*root)
		o := defrag.Options{Nodes: s.JobNodes, DropCaches: *dropCaches, Evacuate: !*noEvacuate, OnlineKernel: *onlineKernel,
			Budget: *budget, Blocks: nodeprep.DefragBlocks(m, s.JobNodes, s.PageBytes), Flags: &flags}
		res, err := defrag.Run(ctx, k, nil, nodeprep.MeasureJobShare(*root, s), o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if res != nil {
			if *jsonOut {
				if jerr := writeJSON(stdout, res); jerr != nil {
					return errors.Join(err, jerr)
				}
			} else {
				fmt.Fprintf(stdout, "defrag: %s, contiguous share %.1f%% -> %.1f%%, %d blocks evacuated, %d refused, %d turned from Movable into kernel memory\n",
					res.Duration.Round(time.Millisecond), 100*res.ShareBefore, 100*res.ShareAfter, res.Evacuated, res.Refused, len(res.KernelBlocks))
			}
		}
		return err
	case "report":
		m, err := nodeprep.ReadMachine(*root)
		if err != nil {
			return err
		}
		r, err := nodeprep.MakeReport(m, s)
		if err != nil {
			return err
		}
		if *jsonOut {
			return writeJSON(stdout, r)
		}
		_, err = fmt.Fprint(stdout, r.Format())
		return err
	}
	return fmt.Errorf("unknown node command %q (plan, apply, report, defrag)", sub)
}

// Restored is what lwkctl node defrag --restore-movable did.
type Restored struct {
	Changed []int  `json:"changed"`
	Refused []int  `json:"refused"`
	Error   string `json:"error,omitempty"`
}

// restoreBlocks turns the listed job blocks back into ZONE_MOVABLE, as the
// epilog does after a DefragOnlineKernel prolog.
func restoreBlocks(root string, s nodeprep.Settings, list string, jsonOut bool, stdout io.Writer) error {
	set, err := cpuset.Parse(list)
	if err != nil {
		return fmt.Errorf("--restore-movable %q: want a list of memory block numbers: %w", list, err)
	}
	d := nodeprep.Defragmenter{Root: root, Settings: s, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	changed, refused, err := d.RestoreJobBlocks(set.List(), nil, true)
	r := Restored{Changed: changed, Refused: refused}
	if r.Changed == nil {
		r.Changed = []int{}
	}
	if r.Refused == nil {
		r.Refused = []int{}
	}
	if err != nil {
		r.Error = err.Error()
	}
	if jsonOut {
		if jerr := writeJSON(stdout, r); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else {
		fmt.Fprintf(stdout, "restore: %d blocks back in ZONE_MOVABLE, %d refused (stay kernel memory)\n", len(changed), len(refused))
	}
	return err
}

// execRunner runs a program by argument vector, never through a shell.
type execRunner struct{}

func (execRunner) Run(ctx context.Context, argv ...string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", argv[0], err, out)
	}
	return nil
}
