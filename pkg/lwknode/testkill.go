package lwknode

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"github.com/slurm-lwk/slurm-lwk/pkg/apply"
)

// ArmTestKill arms lwk.conf's test-only TestKillAfterStep for this prolog:
// once the named step has succeeded, the prolog SIGKILLs itself, as a
// crashed prolog would. Without the key it does nothing. The key is
// honoured only when the lwk.conf at confPath (the file the configuration
// was loaded from) is a regular file owned by root that no group or other
// may write: a test-only key that kills the prolog must be as hard to set as
// the rest of the node's configuration. Otherwise it fails saying why.
func (n *Node) ArmTestKill(confPath string) error {
	step := n.Config.TestKillAfterStep
	if step == "" {
		return nil
	}
	fi, err := os.Stat(confPath)
	if err != nil {
		return fmt.Errorf("TestKillAfterStep: check %s: %w", confPath, err)
	}
	if err := checkTestKillFile(confPath, fi); err != nil {
		return err
	}
	n.Log.Warn("test only: the prolog kills itself after a step (lwk.conf TestKillAfterStep)", "step", step)
	n.testKillStep = step
	return nil
}

// checkTestKillFile refuses an lwk.conf that is not a regular file owned by
// root, or that group or others may write.
func checkTestKillFile(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("TestKillAfterStep in %s refused: not a regular file", path)
	case !ok || st.Uid != 0:
		uid := -1
		if ok {
			uid = int(st.Uid)
		}
		return fmt.Errorf("TestKillAfterStep in %s refused: the file is owned by uid %d, not root", path, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("TestKillAfterStep in %s refused: the file is writable by group or others (mode %04o)", path, fi.Mode().Perm())
	}
	return nil
}

// testKill is apply's fault hook for TestKillAfterStep: after step it kills
// the process; every other call goes on to next (the simulator's faults,
// or nil).
type testKill struct {
	step string
	next apply.Faults
	log  *slog.Logger
	// kill ends the process; selfKill unless a test replaces it.
	kill func()
}

func (k testKill) Before(step string) error {
	if k.next != nil {
		return k.next.Before(step)
	}
	return nil
}

func (k testKill) After(step string) {
	if k.next != nil {
		k.next.After(step)
	}
	if step == k.step {
		k.log.Warn("test only: killing the prolog after this step (lwk.conf TestKillAfterStep)", "step", step)
		k.kill()
	}
}

// selfKill SIGKILLs this process and never returns.
func selfKill() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught: wait for it
}
