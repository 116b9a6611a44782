package lwkmode

import (
	"fmt"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
)

// Validate checks a parsed request against the profile it selects (resolve
// it first with (*config.Config).Profile): every extra kernel argument must
// be on the profile's allow list, and the fixed plus extra arguments must
// fit IHK's 255-byte limit (config.Profile.CheckKargs holds the rule). An
// "off" request is always valid. Whether the CPUs and memory exist is the
// planner's check, not this one.
func Validate(req Request, profile config.Profile) error {
	if req.Off {
		return nil
	}
	if err := profile.CheckKargs(req.Kargs); err != nil {
		return fmt.Errorf("lwk-mode %q: %w", req.String(), err)
	}
	return nil
}
