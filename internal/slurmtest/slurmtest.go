// Package slurmtest holds what the end-to-end and cluster tests read from
// Slurm's own output: scontrol's one-line records and the final job states.
package slurmtest

import (
	"regexp"
	"strings"
)

var fieldKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_:/]*=`)

// ParseFields splits a one-line `scontrol show job|node -o` record into its
// Key=Value fields. A word without a key continues the previous value
// (Reason=Prolog error [slurm@...]).
func ParseFields(s string) map[string]string {
	m := map[string]string{}
	last := ""
	for _, w := range strings.Fields(s) {
		if fieldKey.MatchString(w) {
			k, v, _ := strings.Cut(w, "=")
			m[k] = v
			last = k
			continue
		}
		if last != "" {
			m[last] += " " + w
		}
	}
	return m
}

// Terminal reports whether a JobState is final.
func Terminal(state string) bool {
	switch state {
	case "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE":
		return true
	}
	return false
}
