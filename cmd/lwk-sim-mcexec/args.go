package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// options is the parsed command line.
type options struct {
	// ConfigPath is --config; empty means LWK_CONF or the default path.
	ConfigPath string
	// Partitions is -n; 0 when not given.
	Partitions int
	// StartCPU is -c (an LWK CPU number); -1 when not given.
	StartCPU int
	// OSIndex is the explicit OS index; -1 when not given.
	OSIndex int
	// Program and Args are what to run.
	Program string
	Args    []string
	// Help is --help.
	Help bool
}

// shortWithArg are mcexec's short options that take an argument; the ones
// not handled here are accepted and ignored.
const shortWithArg = "ntcmMhsSufe"

// longWithArg and longFlags are mcexec's long options (plus our --config
// and --help).
var (
	longWithArg = map[string]bool{
		"config": true, "mpol-threshold": true, "extend-heap-by": true, "stack-premap": true,
		"straight-map-threshold": true, "uti-thread-rank": true, "flags": true,
	}
	longFlags = map[string]bool{
		"help": true, "enable-straight-map": true, "mpol-no-heap": true, "mpol-no-stack": true,
		"mpol-no-bss": true, "mpol-shm-premap": true, "no-bind-ikc-map": true,
		"disable-sched-yield": true, "enable-uti": true, "uti-use-last-cpu": true, "profile": true,
		"enable-vdso": true, "disable-vdso": true, "enable-tofu": true, "debug-mcexec": true,
	}
)

// errUsage marks command-line errors.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// parseArgs parses mcexec's command line (without argv[0]).
func parseArgs(args []string) (options, error) {
	o := options{StartCPU: -1, OSIndex: -1}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		var name, value string
		var hasValue bool
		if strings.HasPrefix(a, "--") {
			name, value, hasValue = strings.Cut(a[2:], "=")
			switch {
			case longFlags[name]:
				if hasValue {
					return o, usageErr("option --%s takes no value", name)
				}
				if name == "help" {
					o.Help = true
				}
				continue
			case longWithArg[name]:
				if !hasValue {
					if i+1 >= len(args) {
						return o, usageErr("option --%s needs a value", name)
					}
					i++
					value = args[i]
				}
			default:
				return o, usageErr("unknown option --%s", name)
			}
		} else {
			name = a[1:2]
			if !strings.Contains(shortWithArg, name) {
				return o, usageErr("unknown option -%s", name)
			}
			value = a[2:]
			if value == "" {
				if i+1 >= len(args) {
					return o, usageErr("option -%s needs a value", name)
				}
				i++
				value = args[i]
			}
		}
		if err := o.set(name, value); err != nil {
			return o, err
		}
	}
	rest := args[i:]
	if len(rest) > 0 && rest[0] != "" && rest[0][0] >= '0' && rest[0][0] <= '9' {
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 0 || n >= 64 {
			return o, usageErr("bad OS index %q (0-63)", rest[0])
		}
		o.OSIndex = n
		rest = rest[1:]
	}
	if o.Help {
		return o, nil
	}
	if len(rest) == 0 || rest[0] == "" {
		return o, usageErr("no program given")
	}
	o.Program, o.Args = rest[0], rest[1:]
	return o, nil
}

func (o *options) set(name, value string) error {
	switch name {
	case "config":
		if value == "" {
			return usageErr("--config needs a file")
		}
		o.ConfigPath = value
	case "n":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 {
			return usageErr("-n %q: want a positive number of processes", value)
		}
		o.Partitions = n
	case "c":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return usageErr("-c %q: want an LWK CPU number", value)
		}
		o.StartCPU = n
	}
	// Every other option tunes the LWK side only; accepted and ignored.
	return nil
}

const usageText = `lwk-sim-mcexec: simulated mcexec: runs the program on Linux, pinned to the
CPUs of a booted simulated McKernel instance (IHKBackend=sim). Not mcexec.

usage: lwk-sim-mcexec [--config FILE] [-n N] [-c N] [mcexec options] [OS_INDEX] PROGRAM [ARGS...]

  --config FILE  lwk.conf to read DevDir from (default: $LWK_CONF, else /etc/slurm/lwk.conf)
  -n N           N processes share the LWK CPUs; under srun, SLURM_LOCALID picks the slice
  -c N           run on LWK CPU N only
  OS_INDEX       instance to use (default: 0, or the only one present)
  Other mcexec options (-t -m -M -h -s -S -u -f -e and the long ones) are accepted and ignored.
`
