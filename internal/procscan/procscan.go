// Package procscan lists a machine's processes for the end-to-end and
// cluster tests: which executable each runs, and which belong to a user
// (to find what a test left behind). It reads through pkg/procfs.
package procscan

import (
	"os"
	"strconv"
	"strings"

	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
)

// Exes maps every PID to its resolved executable, where readable (" (deleted)"
// dropped, so a replaced binary still matches its path).
func Exes(fs procfs.FS) map[int]string {
	m := map[int]string{}
	pids, _ := fs.PIDs()
	for _, pid := range pids {
		if exe, err := os.Readlink(fs.Path(strconv.Itoa(pid), "exe")); err == nil {
			m[pid] = strings.TrimSuffix(exe, " (deleted)")
		}
	}
	return m
}

// OfUser maps the PIDs whose real UID is uid to their start time (ticks
// after boot), which tells a recycled PID apart.
func OfUser(fs procfs.FS, uid int) map[int]uint64 {
	m := map[int]uint64{}
	pids, _ := fs.PIDs()
	for _, pid := range pids {
		if u, err := fs.RealUID(pid); err != nil || u != uid {
			continue
		}
		if st, err := fs.Stat(pid); err == nil {
			m[pid] = st.StartTicks
		}
	}
	return m
}

// Cmdline is pid's command line, arguments separated by spaces; "" once
// the process is gone.
func Cmdline(fs procfs.FS, pid int) string {
	data, _ := os.ReadFile(fs.Path(strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}
