package lwknode

import (
	"os"
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
