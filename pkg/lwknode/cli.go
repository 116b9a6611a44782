package lwknode

import (
	"os"
	"runtime/debug"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
)

// LinuxJob reports whether an --lwk-mode spec taken from the environment
// asks for no LWK: unset, or "off".
func LinuxJob(spec string) bool { return spec == "" || spec == "off" }

// DefaultConfigPath is LWK_CONF if set, else /etc/slurm/lwk.conf.
func DefaultConfigPath() string {
	if p := os.Getenv("LWK_CONF"); p != "" {
		return p
	}
	return config.DefaultPath
}

// OneLine flattens an error message (errors.Join separates with newlines)
// into the single line slurmd shows as a drain reason.
func OneLine(err error) string {
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(err.Error())
}

// shortLivedHeapLimit is the heap at which a short-lived program collects
// garbage after all: far above what a prolog or epilog of a 1024-CPU node
// allocates (a few MiB), far below what would hurt a node.
const shortLivedHeapLimit = 256 << 20

// ShortLived tunes the Go runtime for a program that runs for milliseconds
// (lwk-prolog, lwk-epilog): no collection at the default 4 MiB heap goal,
// whose stop-the-world phases cost a large node's prolog more than the
// memory it would free, and a collection only if the heap nears
// shortLivedHeapLimit.
func ShortLived() {
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(shortLivedHeapLimit)
}
