package proxycgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// Mode is the cgroup version the confinement uses.
type Mode string

// The two modes.
const (
	V1 Mode = "v1"
	V2 Mode = "v2"
)

// Controllers are the controllers the confinement needs, in every mode.
var Controllers = []string{"cpuset", "memory", "cpu"}

// Layout is where the node mounts the controllers: chosen once, from the
// mount table, and then passed to everything that touches cgroups.
type Layout struct {
	Mode Mode
	// V1 maps each of Controllers to its hierarchy's mount point (cgroup v1).
	V1 map[string]string
	// Unified is the cgroup2 mount point (cgroup v2).
	Unified string
	// Proc is where /proc/<pid>/cgroup and the threads' run times are read.
	Proc procfs.FS
}

// ErrNoCgroups means the node mounts neither usable layout.
var ErrNoCgroups = errors.New("no usable cgroup layout")

// Detect chooses the layout from <proc>/self/mounts: v1 when cpuset,
// memory and cpu are each mounted as a v1 hierarchy (a hybrid node with an
// empty cgroup2 beside them is v1), v2 when a cgroup2 mount offers all three
// in its cgroup.controllers. v1 wins when both would do: on a hybrid node
// the v1 hierarchies are where the controllers are bound.
func Detect(proc procfs.FS) (Layout, error) {
	path := proc.Path("self", "mounts")
	b, err := os.ReadFile(path)
	if err != nil {
		return Layout{}, fmt.Errorf("read mount table %s: %w", path, err)
	}
	v1 := map[string]string{}
	var unified []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		mnt := unescapeMount(f[1])
		switch f[2] {
		case "cgroup":
			for opt := range strings.SplitSeq(f[3], ",") {
				if slices.Contains(Controllers, opt) {
					if _, dup := v1[opt]; !dup {
						v1[opt] = mnt
					}
				}
			}
		case "cgroup2":
			unified = append(unified, mnt)
		}
	}
	if len(v1) == len(Controllers) {
		return Layout{Mode: V1, V1: v1, Proc: proc}, nil
	}
	var why []string
	for _, mnt := range unified {
		ctl, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", mnt, err))
			continue
		}
		have := strings.Fields(string(ctl))
		missing := missingFrom(have)
		if len(missing) == 0 {
			return Layout{Mode: V2, Unified: mnt, Proc: proc}, nil
		}
		why = append(why, fmt.Sprintf("cgroup2 at %s lacks %s", mnt, strings.Join(missing, ",")))
	}
	var v1missing []string
	for _, c := range Controllers {
		if _, ok := v1[c]; !ok {
			v1missing = append(v1missing, c)
		}
	}
	why = append(why, "cgroup v1 lacks "+strings.Join(v1missing, ","))
	return Layout{}, fmt.Errorf("%s: need cpuset, memory and cpu (%s): %w", path, strings.Join(why, "; "), ErrNoCgroups)
}

func missingFrom(have []string) []string {
	var out []string
	for _, c := range Controllers {
		if !slices.Contains(have, c) {
			out = append(out, c)
		}
	}
	return out
}

// unescapeMount undoes the octal escapes of /proc/self/mounts (\040 for a
// space and so on).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
