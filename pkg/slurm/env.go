package slurm

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Environment variables read by FromEnviron. slurmd sets the SLURM_* ones
// for Prolog=/Epilog= (prep_script_slurmd.c, _build_env); the SPANK shim sets
// LWK_MODE; SPANK_LWK_MODE is the job-control copy a plugin exports with
// spank_job_control_setenv.
const (
	EnvJobID         = "SLURM_JOB_ID"
	EnvJobIDLegacy   = "SLURM_JOBID"
	EnvJobUID        = "SLURM_JOB_UID"
	EnvJobGID        = "SLURM_JOB_GID"
	EnvJobUser       = "SLURM_JOB_USER"
	EnvNodeName      = "SLURMD_NODENAME"
	EnvLWKMode       = "LWK_MODE"
	EnvSpankLWKMode  = "SPANK_LWK_MODE"
	EnvScriptContext = "SLURM_SCRIPT_CONTEXT"
	EnvSlurmConf     = "SLURM_CONF"
	// EnvRestartCount is how often the job was requeued: the prolog's and
	// epilog's SLURM_JOB_RESTART_COUNT (0 for the first attempt).
	EnvRestartCount = "SLURM_JOB_RESTART_COUNT"
	// EnvNTasks and EnvNumNodes are the job's task and node counts.
	EnvNTasks   = "SLURM_JOB_NTASKS"
	EnvNumNodes = "SLURM_JOB_NUM_NODES"
)

// Script contexts slurmd puts in SLURM_SCRIPT_CONTEXT.
const (
	ContextPrologSlurmd = "prolog_slurmd"
	ContextEpilogSlurmd = "epilog_slurmd"
)

// maxSpecBytes bounds the --lwk-mode spec taken from the environment.
const maxSpecBytes = 1024

// JobEnv is what a prolog or epilog learns about its job from the
// environment slurmd gives it.
type JobEnv struct {
	// JobID is SLURM_JOB_ID (or SLURM_JOBID). Never 0.
	JobID uint32
	// UID and GID are the job owner's (SLURM_JOB_UID, SLURM_JOB_GID).
	UID, GID uint32
	// User is SLURM_JOB_USER; empty if unset.
	User string
	// Node is SLURMD_NODENAME, this node's Slurm name; empty if unset.
	Node string
	// Spec is the --lwk-mode value: LWK_MODE, else SPANK_LWK_MODE; empty
	// if neither is set.
	Spec string
	// ScriptContext is SLURM_SCRIPT_CONTEXT (prolog_slurmd, epilog_slurmd);
	// empty if unset.
	ScriptContext string
	// SlurmConf is SLURM_CONF, the slurm.conf slurmd uses (a clean absolute
	// path); empty if unset. Pass it on to scontrol through ExecRunner.Env
	// when it is not the default /etc/slurm/slurm.conf.
	SlurmConf string
	// RestartCount is SLURM_JOB_RESTART_COUNT, the job's attempt: 0 for the
	// first run, n after n requeues; 0 if unset.
	RestartCount uint32
	// NTasks and NumNodes are SLURM_JOB_NTASKS and SLURM_JOB_NUM_NODES; 0
	// if unset.
	NTasks, NumNodes uint32
}

// SpecError is a --lwk-mode value in the environment that fails the raw
// check (too long, or bytes outside printable ASCII). It is the user's
// request that is malformed, not the environment: FromEnviron returns it
// with every other field filled in, so the prolog can cancel the job.
type SpecError struct {
	// Var is the variable that held the spec (LWK_MODE or SPANK_LWK_MODE).
	Var string
	Err error
}

func (e *SpecError) Error() string { return e.Var + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *SpecError) Unwrap() error { return e.Err }

// SpecFromEnviron returns the --lwk-mode value (LWK_MODE, else
// SPANK_LWK_MODE) without parsing or checking anything else, for the
// Linux-job fast path that must not fail on an odd environment.
func SpecFromEnviron(env []string) string {
	var lwk, spank string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case EnvLWKMode:
			lwk = v
		case EnvSpankLWKMode:
			spank = v
		}
	}
	if lwk != "" {
		return lwk
	}
	return spank
}

// FromEnviron parses the job's environment (os.Environ() form). SLURM_JOB_ID
// (or SLURM_JOBID), SLURM_JOB_UID and SLURM_JOB_GID are required; the others
// are optional but checked when present. Numbers must be plain decimal
// (no sign, spaces or leading zeros). A variable that appears twice, or
// SLURM_JOB_ID and SLURM_JOBID that disagree, is an error. Errors name the
// variable. A spec that fails the raw check is a *SpecError, returned with
// the JobEnv otherwise complete (Spec empty); it is checked last, so any
// other error takes precedence.
func FromEnviron(env []string) (JobEnv, error) {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case EnvJobID, EnvJobIDLegacy, EnvJobUID, EnvJobGID, EnvJobUser,
			EnvNodeName, EnvLWKMode, EnvSpankLWKMode, EnvScriptContext, EnvSlurmConf,
			EnvRestartCount, EnvNTasks, EnvNumNodes:
		default:
			continue
		}
		if _, dup := vars[k]; dup {
			return JobEnv{}, fmt.Errorf("environment variable %s is set more than once", k)
		}
		vars[k] = v
	}

	var je JobEnv
	var err error

	id, hasID := vars[EnvJobID]
	legacy, hasLegacy := vars[EnvJobIDLegacy]
	switch {
	case hasID && hasLegacy && id != legacy:
		return JobEnv{}, fmt.Errorf("%s=%q and %s=%q disagree", EnvJobID, id, EnvJobIDLegacy, legacy)
	case hasID:
		je.JobID, err = parseJobID(EnvJobID, id)
	case hasLegacy:
		je.JobID, err = parseJobID(EnvJobIDLegacy, legacy)
	default:
		err = fmt.Errorf("%s is not set (neither is %s)", EnvJobID, EnvJobIDLegacy)
	}
	if err != nil {
		return JobEnv{}, err
	}

	if je.UID, err = requireID(vars, EnvJobUID); err != nil {
		return JobEnv{}, err
	}
	if je.GID, err = requireID(vars, EnvJobGID); err != nil {
		return JobEnv{}, err
	}

	if v, ok := vars[EnvJobUser]; ok {
		if err := checkUserName(v); err != nil {
			return JobEnv{}, fmt.Errorf("%s=%q: %w", EnvJobUser, v, err)
		}
		je.User = v
	}
	if v, ok := vars[EnvNodeName]; ok {
		if err := CheckNodeName(v); err != nil {
			return JobEnv{}, fmt.Errorf("%s: %w", EnvNodeName, err)
		}
		je.Node = v
	}
	if v, ok := vars[EnvScriptContext]; ok {
		for _, c := range v {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				return JobEnv{}, fmt.Errorf("%s=%q: not a script context name", EnvScriptContext, v)
			}
		}
		je.ScriptContext = v
	}
	if v, ok := vars[EnvSlurmConf]; ok {
		if !filepath.IsAbs(v) || filepath.Clean(v) != v || strings.ContainsAny(v, "\x00\n") {
			return JobEnv{}, fmt.Errorf("%s=%q: not a clean absolute path", EnvSlurmConf, v)
		}
		je.SlurmConf = v
	}
	for _, c := range []struct {
		name string
		dst  *uint32
	}{{EnvRestartCount, &je.RestartCount}, {EnvNTasks, &je.NTasks}, {EnvNumNodes, &je.NumNodes}} {
		if v, ok := vars[c.name]; ok {
			n, err := parseDecimal32(v)
			if err != nil {
				return JobEnv{}, fmt.Errorf("%s=%q: %w", c.name, v, err)
			}
			*c.dst = n
		}
	}
	// Last: the spec is the user's, and a malformed one must not hide the
	// fields the prolog needs to cancel the job.
	for _, k := range []string{EnvLWKMode, EnvSpankLWKMode} {
		v, ok := vars[k]
		if !ok {
			continue
		}
		if err := checkSpec(v); err != nil {
			return je, &SpecError{Var: k, Err: err}
		}
		if je.Spec == "" {
			je.Spec = v
		}
	}
	return je, nil
}

func requireID(vars map[string]string, name string) (uint32, error) {
	v, ok := vars[name]
	if !ok {
		return 0, fmt.Errorf("%s is not set", name)
	}
	n, err := parseDecimal32(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", name, v, err)
	}
	if n == ^uint32(0) {
		return 0, fmt.Errorf("%s=%q: (uid_t)-1 is not an ID", name, v)
	}
	return n, nil
}

func parseJobID(name, v string) (uint32, error) {
	n, err := parseDecimal32(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", name, v, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%s=%q: job ID 0 is not a job", name, v)
	}
	return n, nil
}

// parseDecimal32 accepts exactly the digits Slurm prints with %u: no sign,
// no spaces, no leading zeros, at most 2^32-1.
func parseDecimal32(s string) (uint32, error) {
	if s == "" {
		return 0, fmt.Errorf("empty, want a decimal number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("leading zero in a decimal number")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("out of range for a 32-bit number")
	}
	return uint32(n), nil
}

// checkUserName accepts what a passwd/LDAP user name can reasonably be:
// 1-256 bytes of UTF-8 without control characters, spaces, ':' or '/'
// (so "DOMAIN\user" and "user@realm" pass).
func checkUserName(s string) error {
	if s == "" || len(s) > 256 {
		return fmt.Errorf("user name must be 1-256 bytes")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("user name is not valid UTF-8")
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.IsSpace(c) || c == ':' || c == '/' {
			return fmt.Errorf("user name contains %q", c)
		}
	}
	return nil
}

// checkSpec bounds the raw --lwk-mode text; its grammar is lwkmode's job.
func checkSpec(s string) error {
	if len(s) > maxSpecBytes {
		return fmt.Errorf("spec is %d bytes, limit %d", len(s), maxSpecBytes)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("spec contains byte 0x%02x; only printable ASCII is allowed", s[i])
		}
	}
	return nil
}

// CheckNodeName accepts a single Slurm node name: 1-255 bytes of letters,
// digits, '-', '_' and '.', not starting with '-' or '.'. Hostlist
// expressions ("n[1-4]", "a,b") are not node names.
func CheckNodeName(s string) error {
	if s == "" || len(s) > 255 {
		return fmt.Errorf("node name %q: must be 1-255 bytes", s)
	}
	if s[0] == '-' || s[0] == '.' {
		return fmt.Errorf("node name %q: must not start with %q", s, s[0])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("node name %q: byte %q is not allowed", s, c)
		}
	}
	return nil
}
