package teardown

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/finalusage"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/retry"
)

// usageReader is the optional part of IHK that saveUsage uses.
type usageReader interface {
	Rusage(ctx context.Context, os int) (*ihk.Rusage, error)
}

// saveUsage leaves the instance's last rusage reading for lwk-monitor (see
// package finalusage): read under the node lock right before DESTROY_OS, it
// is the job's complete LWK usage, which the monitor cannot read itself
// without risking an open descriptor when DESTROY runs. GETRUSAGE fails
// when the instance is not booted; then there is nothing to save. A
// backend without Rusage (a test's fake) saves nothing.
func (d Deps) saveUsage(ctx context.Context, log *slog.Logger, idx int, res *Result) {
	r, ok := d.IHK.(usageReader)
	if !ok {
		return
	}
	ru, err := retry.Value(func() (*ihk.Rusage, error) { return r.Rusage(ctx, idx) })
	if err != nil {
		log.Debug("no final lwk usage", "err", err)
		return
	}
	if err := os.MkdirAll(d.LogDir, 0o700); err != nil {
		log.Warn("cannot save final lwk usage", "err", err)
		return
	}
	reading := finalusage.Reading{JobID: res.JobID, OS: idx, Time: time.Now().UTC(), TeardownBegan: res.Began.UTC(), Rusage: ru}
	if err := finalusage.Write(d.LogDir, reading); err != nil {
		log.Warn("cannot save final lwk usage", "err", err)
	}
}
