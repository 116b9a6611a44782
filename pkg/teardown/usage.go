package teardown

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/finalusage"
)

// saveUsage leaves the instance's last rusage reading for lwk-monitor (see
// package finalusage): read under the node lock right before DESTROY_OS, it
// is the job's complete LWK usage, which the monitor cannot read itself
// without risking an open descriptor when DESTROY runs. GETRUSAGE fails
// when the instance is not booted; then there is nothing to save.
func (d Deps) saveUsage(ctx context.Context, log *slog.Logger, idx int, res *Result) {
	ru, err := d.IHK.Rusage(ctx, idx)
	if err != nil {
		log.Debug("no final lwk usage", "err", err)
		return
	}
	if err := os.MkdirAll(d.LogDir, 0o700); err != nil {
		log.Warn("cannot save final lwk usage", "err", err)
		return
	}
	r := finalusage.Reading{JobID: res.JobID, OS: idx, Time: time.Now().UTC(), Rusage: ru}
	if err := finalusage.Write(d.LogDir, r); err != nil {
		log.Warn("cannot save final lwk usage", "err", err)
	}
}
