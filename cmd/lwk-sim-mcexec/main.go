package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
)

func main() {
	os.Exit(mainExit(os.Args[1:]))
}

// mainExit parses the command line and configuration, runs, and maps the
// outcome to the exit status (the one place that does).
func mainExit(args []string) int {
	opts, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lwk-sim-mcexec: %v\n\n%s", err, usageText)
		return 1
	}
	if opts.Help {
		fmt.Print(usageText)
		return 0
	}
	path := opts.ConfigPath
	if path == "" {
		path = config.DefaultPath
		if env := os.Getenv("LWK_CONF"); env != "" {
			path = env
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lwk-sim-mcexec: %v\n", err)
		return 1
	}
	status, err := run(opts, cfg, host{sysRoot: "/", stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var se *startError
		if errors.As(err, &se) {
			return se.code
		}
		return 1
	}
	return status
}
