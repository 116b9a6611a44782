package config

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// keySpec is one key of an ordinary lwk.conf line. The keys table is the
// only place a key is registered: Parse looks keys up in it, stores values
// with set, fills in def for keys the file leaves out, and the tests check
// that lwk.conf.example shows every key with its default and says doc.
type keySpec struct {
	// name is the canonical spelling (keys are case-insensitive).
	name string
	// set parses a non-empty value into its Config field.
	set func(c *Config, value string) error
	// def is the default as the file would spell it, parsed with set when
	// the file does not give the key; "" means no default (the key is
	// required, or optional and empty when not given: validate decides).
	def string
	// defFrom, if not nil, may replace def by a default computed from the
	// keys already settled (given or defaulted); "" keeps def, which is the
	// default lwk.conf.example documents.
	defFrom func(c *Config) string
	// doc is what the key is; lwk.conf.example must say it (in its "##"
	// comments, line breaks aside).
	doc string
}

// keys are the keys of ordinary lines. Adding a key: a Config field and one
// row here (and its lines in lwk.conf.example).
var keys = []keySpec{
	{name: "IHKBackend", set: setBackend,
		doc: "IHK backend: required, never chosen silently."},
	{name: "OSCores", set: into(parseSet, func(c *Config) *cpuset.CPUSet { return &c.OSCores }),
		doc: "CPUs kept for the system, slurmd and the mcexec proxies"},
	{name: "SystemNUMANodes", set: into(parseSet, func(c *Config) *cpuset.CPUSet { return &c.SystemNUMANodes }),
		doc: "system NUMA nodes hold the system's memory"},
	{name: "JobNUMANodes", set: into(parseSet, func(c *Config) *cpuset.CPUSet { return &c.JobNUMANodes }),
		doc: "LWK memory comes only from JobNUMANodes."},
	{name: "ProxyMemory", set: into(lwkmode.ParseSize, func(c *Config) *uint64 { return &c.ProxyMemoryBytes }),
		def: "128M", doc: "memory limit of all the job's proxies together"},
	{name: "ProxyCPUShare", set: into(parsePercent, func(c *Config) *int { return &c.ProxyCPUPercent }),
		def: "50%", doc: "CPU bandwidth as a share of the OS cores' capacity"},
	{name: "ProxyCPUPeriod", set: into(parseCFSPeriod, func(c *Config) *time.Duration { return &c.ProxyCPUPeriod }),
		def: "100ms", doc: "the CFS period (1ms to 1s)."},
	{name: "LWKMemoryShare", set: into(parsePercent, func(c *Config) *int { return &c.LWKMemoryPercent }),
		def: "90%", doc: "Share of the job's memory on the node given to the LWK"},
	{name: "LWKMemoryHeadroom", set: into(parseHeadroom, func(c *Config) *int { return &c.LWKMemoryHeadroomPercent }),
		def: "2%", doc: "Share of each NUMA node's free memory (MemFree) never reserved for an LWK"},
	{name: "McexecBuildID", set: into(parseBuildID, func(c *Config) *string { return &c.McexecBuildID }),
		doc: "IHK build id mcexec was compiled against"},
	{name: "DefaultProfile", set: setDefaultProfile,
		doc: "Profile a bare --lwk-mode (or --lwk-mode=default) selects."},
	{name: "StateDir", set: into(parsePath, func(c *Config) *string { return &c.StateDir }),
		def: "/run/slurm-lwk/state", doc: "journals and the node lock"},
	{name: "RunDir", set: into(parsePath, func(c *Config) *string { return &c.RunDir }),
		def: "/run/slurm-lwk", doc: "per-job marker files job-<jobid>"},
	{name: "DevDir", set: into(parsePath, func(c *Config) *string { return &c.DevDir }),
		def: "/dev", defFrom: defaultDevDir, doc: "where the IHK devices mcd0 and mcosN are."},
	{name: "SysfsRoot", set: into(parsePath, func(c *Config) *string { return &c.SysfsRoot }),
		def: "/", doc: "root under which sys/devices/system is read"},
	{name: "LogDir", set: into(parsePath, func(c *Config) *string { return &c.LogDir }),
		def: "/var/log/slurm-lwk", doc: "per-job LWK kernel message logs."},
	{name: "SimStateDir", set: into(parsePath, func(c *Config) *string { return &c.SimStateDir }),
		def: "/var/lib/slurm-lwk/sim", doc: "the simulator's shared state"},
	{name: "SimBootDelay", set: into(parseDuration, func(c *Config) *time.Duration { return &c.SimBootDelay }),
		def: "2s", doc: "how long a simulated boot takes"},
	{name: "SimOfflineCPUs", set: into(parseYesNo, func(c *Config) *bool { return &c.SimOfflineCPUs }),
		def: "no", doc: "reserving CPUs takes them offline for real"},
	{name: "McexecPath", set: into(parsePath, func(c *Config) *string { return &c.McexecPath }),
		def: "/usr/bin/mcexec", doc: "the mcexec tasks run through"},
	{name: "ScontrolPath", set: into(parsePath, func(c *Config) *string { return &c.ScontrolPath }),
		def: "/usr/bin/scontrol", doc: "scontrol, used to read the job's allocation"},
	{name: "ScancelPath", set: into(parsePath, func(c *Config) *string { return &c.ScancelPath }),
		def: "/usr/bin/scancel", doc: "scancel, used to cancel a job"},
	{name: "SqueuePath", set: into(parsePath, func(c *Config) *string { return &c.SqueuePath }),
		def: "/usr/bin/squeue", doc: "squeue, used to read a job's comment fields"},
	{name: "FailureReasonField", set: setFailureReasonField,
		def: "AdminComment", doc: "the job field lwk-monitor appends a failure reason to"},
	{name: "BootTimeout", set: into(parsePositiveDuration, func(c *Config) *time.Duration { return &c.BootTimeout }),
		def: "120s", doc: "BOOT plus the wait for the OS to reach RUNNING."},
	{name: "DestroyTimeout", set: into(parsePositiveDuration, func(c *Config) *time.Duration { return &c.DestroyTimeout }),
		def: "30s", doc: "retries of DESTROY_OS while the instance is busy."},
	{name: "LockTimeout", set: into(parsePositiveDuration, func(c *Config) *time.Duration { return &c.LockTimeout }),
		def: "240s", doc: "wait for the node lock held by another job's prolog/epilog."},
	{name: "CgroupPrefix", set: into(parseCgroupName, func(c *Config) *string { return &c.CgroupPrefix }),
		def: "slurm-lwk", doc: "the directory of the jobs' cgroups under each cgroup v1 hierarchy"},
	{name: "TestKillAfterStep", set: into(parseStepName, func(c *Config) *string { return &c.TestKillAfterStep }),
		doc: "Test only: lwk-prolog kills itself (SIGKILL) right after this journal step"},
}

// profileKeySpec is one key of a Profile= line after Profile=NAME. These
// keys have no defaults; parseProfile checks what a profile needs.
type profileKeySpec struct {
	// name is the canonical spelling (keys are case-insensitive).
	name string
	// set parses the value (possibly empty) into its Profile field.
	set func(p *Profile, value string) error
	// doc is what the key is; lwk.conf.example must say it.
	doc string
}

// profileKeys are the keys of a Profile= line.
var profileKeys = []profileKeySpec{
	{name: "Image", set: setImage, doc: "absolute path of the kernel image"},
	{name: "Kargs", set: setKargs, doc: "fixed kernel arguments; must include hidos"},
	{name: "AllowKargs", set: setAllowKargs, doc: "kernel arguments users may add with kargs="},
	{name: "Defrag", set: func(p *Profile, v string) (err error) { p.Defrag.Enabled, err = parseYesNo(v); return err },
		doc: "defragment the job NUMA nodes right before reserving"},
	{name: "DefragDropCaches", set: func(p *Profile, v string) (err error) { p.Defrag.DropCaches, err = parseYesNo(v); return err },
		doc: "also drop the clean page cache first"},
	{name: "DefragBudget", set: func(p *Profile, v string) (err error) { p.Defrag.Budget, err = parsePositiveDuration(v); return err },
		doc: "bound on the whole step"},
	{name: "DefragOnlineKernel", set: func(p *Profile, v string) (err error) { p.Defrag.OnlineKernel, err = parseYesNo(v); return err },
		doc: "online the evacuated job blocks as kernel memory (IHK reserves with GFP_KERNEL)"},
	{name: "ProxyMemory", set: func(p *Profile, v string) (err error) { p.ProxyMemoryBytes, err = lwkmode.ParseSize(v); return err },
		doc: "the proxy limits for this profile's jobs"},
	{name: "ProxyCPUShare", set: func(p *Profile, v string) (err error) { p.ProxyCPUPercent, err = parsePercent(v); return err },
		doc: "the proxy limits for this profile's jobs"},
	{name: "ProxyCPUPeriod", set: func(p *Profile, v string) (err error) { p.ProxyCPUPeriod, err = parseCFSPeriod(v); return err },
		doc: "the proxy limits for this profile's jobs"},
	{name: "PerfEvents", set: setPerfEvents, doc: "CPU performance counters lwk-monitor programs for this profile's jobs"},
}

// profileOverrides are the ordinary keys a Profile= line may also give, for
// that profile's jobs (Config.ProxyLimits).
var profileOverrides = []string{"ProxyMemory", "ProxyCPUShare", "ProxyCPUPeriod"}

// keyIndex maps a lower-cased key to its row of keys.
var keyIndex = func() map[string]*keySpec {
	m := make(map[string]*keySpec, len(keys))
	for i := range keys {
		m[strings.ToLower(keys[i].name)] = &keys[i]
	}
	return m
}()

// findProfileKey returns the row of a Profile= line key, or nil.
func findProfileKey(name string) *profileKeySpec {
	for i := range profileKeys {
		if strings.EqualFold(profileKeys[i].name, name) {
			return &profileKeys[i]
		}
	}
	return nil
}

// into makes a keySpec.set from a value parser and the field it fills.
func into[T any](parse func(string) (T, error), field func(c *Config) *T) func(*Config, string) error {
	return func(c *Config, value string) error {
		v, err := parse(value)
		if err != nil {
			return err
		}
		*field(c) = v
		return nil
	}
}

func setBackend(c *Config, value string) error {
	switch b := Backend(strings.ToLower(value)); b {
	case BackendIHK, BackendSim:
		c.Backend = b
		return nil
	}
	return fmt.Errorf("unknown backend %q (want ihk or sim)", value)
}

func setDefaultProfile(c *Config, value string) error {
	if err := lwkmode.CheckProfileName(value); err != nil {
		return err
	}
	c.DefaultProfile = value
	return nil
}

// setFailureReasonField parses FailureReasonField: AdminComment, Comment
// or none (any letter case).
func setFailureReasonField(c *Config, value string) error {
	for _, v := range []string{"AdminComment", "Comment", "none"} {
		if strings.EqualFold(value, v) {
			c.FailureReasonField = v
			return nil
		}
	}
	return fmt.Errorf("%q: want AdminComment, Comment or none", value)
}

// defaultDevDir puts the simulator's device stand-ins under its state.
func defaultDevDir(c *Config) string {
	if c.Backend == BackendSim {
		return path.Join(c.SimStateDir, "dev")
	}
	return ""
}

// parseCFSPeriod parses a CFS period: the kernel's cpu.cfs_period_us
// accepts 1000..1000000.
func parseCFSPeriod(value string) (time.Duration, error) {
	d, err := parseDuration(value)
	if err == nil && (d < time.Millisecond || d > time.Second) {
		err = fmt.Errorf("%s: the CFS period must be between 1ms and 1s", value)
	}
	return d, err
}

func setImage(p *Profile, value string) error {
	img, err := parsePath(value)
	if err != nil {
		return err
	}
	if len(img) > ihk.MaxPathLen {
		return fmt.Errorf("path is %d bytes, at most %d", len(img), ihk.MaxPathLen)
	}
	p.Image = img
	return nil
}

func setKargs(p *Profile, value string) error {
	p.Kargs = strings.Fields(value)
	for _, k := range p.Kargs {
		if !printableKarg(k) {
			return fmt.Errorf("bad kernel argument %q", k)
		}
	}
	if joined := strings.Join(p.Kargs, " "); len(joined) > ihk.MaxKargsLen {
		return fmt.Errorf("kernel arguments are %d bytes, at most %d", len(joined), ihk.MaxKargsLen)
	}
	return nil
}

// setAllowKargs parses AllowKargs: a comma-separated list of kernel
// arguments in the kargs= token syntax.
func setAllowKargs(p *Profile, value string) error {
	for _, a := range strings.Split(value, ",") {
		if err := lwkmode.CheckKarg(a); err != nil {
			return fmt.Errorf("bad entry %q (a kernel argument name, NAME=VALUE, or NAME= to allow any value): %w", a, err)
		}
		p.AllowedKargs = append(p.AllowedKargs, a)
	}
	return nil
}

// MaxPerfEvents bounds a profile's PerfEvents: IHK programs counter i for
// event i on every LWK CPU, and CPUs have few programmable counters (the
// simulator four, current x86 and arm64 cores up to eight).
const MaxPerfEvents = 8

// setPerfEvents parses PerfEvents: CODE[:MODE],... where CODE is a raw,
// architecture-specific event code (0x-prefixed hex or decimal) and MODE is
// u (user mode, the default), k (kernel mode) or uk (both).
func setPerfEvents(p *Profile, value string) error {
	items := strings.Split(value, ",")
	if len(items) > MaxPerfEvents {
		return fmt.Errorf("%d events, at most %d", len(items), MaxPerfEvents)
	}
	p.PerfEvents = nil
	for _, it := range items {
		code, mode, _ := strings.Cut(it, ":")
		v, err := strconv.ParseUint(code, 0, 64)
		if err != nil || code == "" || code[0] == '+' {
			return fmt.Errorf("bad event %q: want a raw event code such as 0x3c, optionally :u, :k or :uk", it)
		}
		ev := PerfEvent{Code: v, User: true}
		switch mode {
		case "", "u":
		case "k":
			ev = PerfEvent{Code: v, Kernel: true}
		case "uk", "ku":
			ev.Kernel = true
		default:
			return fmt.Errorf("bad event %q: mode %q is not u, k or uk", it, mode)
		}
		if slices.Contains(p.PerfEvents, ev) {
			return fmt.Errorf("event %q given twice", it)
		}
		p.PerfEvents = append(p.PerfEvents, ev)
	}
	return nil
}

// parseStepName checks a prolog journal step name (TestKillAfterStep).
func parseStepName(value string) (string, error) {
	if slices.Contains(steps.Prolog(), value) {
		return value, nil
	}
	return "", fmt.Errorf("%q: not a prolog step (want one of %s)", value, strings.Join(steps.Prolog(), ", "))
}

// parseCgroupName checks a cgroup directory name: one path component.
func parseCgroupName(value string) (string, error) {
	if value == "" || value == "." || value == ".." || len(value) > 64 ||
		strings.IndexFunc(value, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
		}) >= 0 {
		return "", fmt.Errorf("%q: want one directory name of letters, digits, '_', '.', '-' (at most 64)", value)
	}
	return value, nil
}

// printableKarg reports whether an admin's fixed kernel argument is printable
// ASCII without quotes or backslashes.
func printableKarg(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\'' || s[i] == '\\' {
			return false
		}
	}
	return s != ""
}
