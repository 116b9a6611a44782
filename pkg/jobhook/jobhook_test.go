package jobhook

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Jobs that asked for no LWK pass through both hooks before any
// configuration is read (the lwk.conf named here does not exist); any
// other job needs the configuration, and its absence is an error that
// names the file. The tests need no root: nothing is touched.
func TestHooksBeforeTheConfiguration(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "lwk.conf")
	base := []string{"SLURM_JOB_ID=42", "SLURM_JOB_UID=1000", "SLURM_JOB_GID=1000", "SLURM_JOB_USER=alice", "SLURMD_NODENAME=n1"}
	for _, tc := range []struct {
		name   string
		env    []string
		prolog string // wanted error substring; "" for nil
		epilog string
	}{
		{name: "linux job", env: base},
		{name: "empty mode", env: append(base, "LWK_MODE=")},
		{name: "off", env: append(base, "LWK_MODE=off")},
		{name: "lwk job", env: append(base, "LWK_MODE=mck"), prolog: missing, epilog: missing},
		// A malformed spec is the user's error at the prolog (which needs
		// the configuration to cancel the job) and is torn down
		// regardless at the epilog.
		{name: "malformed spec", env: append(base, "LWK_MODE=mck:mem=lots"), prolog: missing, epilog: missing},
		{name: "no job id", env: []string{"LWK_MODE=mck"}, prolog: "job environment", epilog: "job environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, h := range []struct {
				name string
				run  func(context.Context, Call) error
				want string
			}{{"prolog", Prolog, tc.prolog}, {"epilog", Epilog, tc.epilog}} {
				var stderr strings.Builder
				err := h.run(context.Background(), Call{Environ: tc.env, ConfigPath: missing, Start: time.Now(), Stderr: &stderr, Resident: true})
				if h.want == "" {
					require.NoError(t, err, h.name)
				} else {
					require.ErrorContains(t, err, h.want, h.name)
					if h.want == missing {
						require.ErrorIs(t, err, fs.ErrNotExist, h.name)
					}
				}
				require.Empty(t, stderr.String(), h.name)
			}
		})
	}
}
