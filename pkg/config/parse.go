package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwkmode"
)

// ErrNoProfile is returned (wrapped) by (*Config).Profile for a name that
// lwk.conf does not define. Callers branch on it to tell a user's mistake
// from a node fault.
var ErrNoProfile = errors.New("no such profile")

// ParseError is an error in lwk.conf, located by file and line.
type ParseError struct {
	// File is the name given to Parse (the path, for Load).
	File string
	// Line is the 1-based line number; 0 for an error about the whole file
	// (a required key missing, a cross-key check).
	Line int
	// Key is the key at fault as the file spells it, or empty.
	Key string
	// Err is the cause.
	Err error
}

// Error implements error: "FILE:LINE: KEY: cause".
func (e *ParseError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Err.Error()
	}
	return loc + ": " + e.Key + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ParseError) Unwrap() error { return e.Err }

// Load reads and parses the lwk.conf at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// pair is one KEY=VALUE of a line.
type pair struct {
	key, value string
}

// Parse reads an lwk.conf from r; name is used in error messages. Keys are
// case-insensitive, as in Slurm's files; values may be double-quoted; '#'
// outside quotes starts a comment. Defaults are applied to keys not set, then
// the whole configuration is validated.
func Parse(r io.Reader, name string) (*Config, error) {
	c := &Config{Profiles: map[string]Profile{}}
	set := map[string]int{} // canonical key → line it was set on
	profileLine := map[string]int{}

	sc := bufio.NewScanner(r)
	// A small first buffer (the scanner grows it up to the 1 MiB limit): a
	// 64 KiB one cost 16 fresh pages at every prolog and epilog start.
	sc.Buffer(make([]byte, 4<<10), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		fail := func(key string, err error) error {
			return &ParseError{File: name, Line: lineNo, Key: key, Err: err}
		}
		pairs, err := splitLine(sc.Text())
		if err != nil {
			return nil, fail("", err)
		}
		if len(pairs) == 0 {
			continue
		}
		if strings.EqualFold(pairs[0].key, "Profile") {
			p, err := parseProfile(pairs)
			if err != nil {
				var pe *ParseError
				if errors.As(err, &pe) {
					pe.File, pe.Line = name, lineNo
					return nil, pe
				}
				return nil, fail("Profile", err)
			}
			if prev, dup := profileLine[p.Name]; dup {
				return nil, fail("Profile", fmt.Errorf("profile %q already defined on line %d", p.Name, prev))
			}
			profileLine[p.Name] = lineNo
			c.Profiles[p.Name] = p
			c.ProfileNames = append(c.ProfileNames, p.Name)
			continue
		}
		for _, kv := range pairs {
			k, ok := keyIndex[strings.ToLower(kv.key)]
			if !ok {
				if findProfileKey(kv.key) != nil {
					return nil, fail(kv.key, errors.New("allowed only on a Profile= line"))
				}
				return nil, fail("", fmt.Errorf("unknown key %q", kv.key))
			}
			if prev, dup := set[k.name]; dup {
				return nil, fail(kv.key, fmt.Errorf("already set on line %d", prev))
			}
			set[k.name] = lineNo
			if kv.value == "" {
				return nil, fail(kv.key, errors.New("empty value"))
			}
			if err := k.set(c, kv.value); err != nil {
				return nil, fail(kv.key, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}

	if err := c.applyDefaults(set); err != nil {
		return nil, &ParseError{File: name, Err: err}
	}
	if err := c.validate(set); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.File = name
			return nil, pe
		}
		return nil, &ParseError{File: name, Err: err}
	}
	return c, nil
}

// splitLine splits one line into KEY=VALUE pairs separated by blanks. A
// value may be enclosed in double quotes (no escapes inside); '#' outside
// quotes starts a comment.
func splitLine(line string) ([]pair, error) {
	var pairs []pair
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
			i++
		}
		if i == len(line) || line[i] == '#' {
			return pairs, nil
		}
		start := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' && line[i] != '\t' && line[i] != '#' {
			i++
		}
		key := line[start:i]
		if i == len(line) || line[i] != '=' {
			return nil, fmt.Errorf("%q: expected KEY=VALUE", key)
		}
		if key == "" {
			return nil, errors.New("missing key before '='")
		}
		i++ // '='
		var value string
		if i < len(line) && line[i] == '"' {
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("%s: unterminated quote", key)
			}
			value = line[i+1 : i+1+end]
			i += end + 2
			if i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '#' && line[i] != '\r' {
				return nil, fmt.Errorf("%s: text after closing quote", key)
			}
		} else {
			vs := i
			for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '#' && line[i] != '\r' {
				if line[i] == '"' {
					return nil, fmt.Errorf("%s: stray quote in value", key)
				}
				i++
			}
			value = line[vs:i]
		}
		pairs = append(pairs, pair{key: key, value: value})
	}
}

// applyDefaults fills in every key the file did not set: first the fixed
// defaults, then those computed from other keys.
func (c *Config) applyDefaults(set map[string]int) error {
	for _, derived := range []bool{false, true} {
		for _, k := range keys {
			if _, given := set[k.name]; given || (k.defFrom != nil) != derived {
				continue
			}
			def := k.def
			if derived {
				if d := k.defFrom(c); d != "" {
					def = d
				}
			}
			if def == "" {
				continue
			}
			if err := k.set(c, def); err != nil {
				return fmt.Errorf("default %s=%s: %w", k.name, def, err)
			}
		}
	}
	return nil
}

// validate checks what needs the whole file. Errors about one key carry the
// line that set it.
func (c *Config) validate(set map[string]int) error {
	at := func(key string, err error) error {
		return &ParseError{Line: set[key], Key: key, Err: err}
	}
	if c.Backend == "" {
		return at("IHKBackend", errors.New("required: name the IHK backend, IHKBackend=ihk (the real driver) or IHKBackend=sim (the simulator)"))
	}
	if c.SimOfflineCPUs && c.Backend != BackendSim {
		return at("SimOfflineCPUs", errors.New("only with IHKBackend=sim (the real driver offlines CPUs itself)"))
	}
	if c.OSCores.IsEmpty() {
		return at("OSCores", errors.New("required: the CPUs kept for the system and the mcexec proxies, e.g. OSCores=0-1"))
	}
	sysSet, jobSet := !c.SystemNUMANodes.IsEmpty(), !c.JobNUMANodes.IsEmpty()
	switch {
	case sysSet && !jobSet:
		return at("SystemNUMANodes", errors.New("set without JobNUMANodes: give both or neither"))
	case jobSet && !sysSet:
		return at("JobNUMANodes", errors.New("set without SystemNUMANodes: give both or neither"))
	case sysSet && jobSet:
		if both := c.SystemNUMANodes.Intersection(c.JobNUMANodes); !both.IsEmpty() {
			return at("JobNUMANodes", fmt.Errorf("nodes %s are also SystemNUMANodes", both))
		}
	}
	if len(c.ProfileNames) == 0 {
		return &ParseError{Err: errors.New("no LWK profile: add a line like Profile=mck Image=/path/mckernel.img Kargs=hidos")}
	}
	if c.DefaultProfile != "" {
		if _, ok := c.Profiles[c.DefaultProfile]; !ok {
			return at("DefaultProfile", fmt.Errorf("profile %q is not defined (have %s)", c.DefaultProfile, strings.Join(c.ProfileNames, ", ")))
		}
	}
	return nil
}

// parseProfile parses a line whose first pair is Profile=NAME.
func parseProfile(pairs []pair) (Profile, error) {
	p := Profile{Name: pairs[0].value}
	if err := lwkmode.CheckProfileName(p.Name); err != nil {
		return Profile{}, &ParseError{Key: pairs[0].key, Err: err}
	}
	seen := map[string]bool{}
	for _, kv := range pairs[1:] {
		k := findProfileKey(kv.key)
		if k == nil {
			var names []string
			for _, pk := range profileKeys {
				names = append(names, pk.name)
			}
			return Profile{}, &ParseError{Err: fmt.Errorf("unknown key %q on a Profile= line (want %s)", kv.key, strings.Join(names, ", "))}
		}
		if seen[k.name] {
			return Profile{}, &ParseError{Key: kv.key, Err: errors.New("given twice")}
		}
		seen[k.name] = true
		if err := k.set(&p, kv.value); err != nil {
			return Profile{}, &ParseError{Key: kv.key, Err: err}
		}
	}
	if p.Defrag.Enabled && p.Defrag.Budget == 0 {
		p.Defrag.Budget = DefaultDefragBudget
	}
	if !p.Defrag.Enabled && (p.Defrag.DropCaches || p.Defrag.Budget != 0 || p.Defrag.OnlineKernel) {
		return Profile{}, &ParseError{Key: pairs[0].key, Err: fmt.Errorf("profile %q: DefragDropCaches, DefragBudget and DefragOnlineKernel need Defrag=yes", p.Name)}
	}
	if p.Image == "" {
		return Profile{}, &ParseError{Key: pairs[0].key, Err: fmt.Errorf("profile %q has no Image=", p.Name)}
	}
	if !slices.Contains(p.Kargs, ihk.RequiredKarg) {
		return Profile{}, &ParseError{Key: pairs[0].key, Err: fmt.Errorf("profile %q: Kargs must include %q", p.Name, ihk.RequiredKarg)}
	}
	return p, nil
}

func parseSet(value string) (cpuset.CPUSet, error) {
	s, err := cpuset.Parse(value)
	if err != nil {
		return cpuset.CPUSet{}, fmt.Errorf("bad list %q: %w", value, err)
	}
	return s, nil
}

// parseHeadroom reads LWKMemoryHeadroom: an integer percentage 0-50.
func parseHeadroom(value string) (int, error) {
	num := strings.TrimSuffix(value, "%")
	n, err := strconv.Atoi(num)
	if err != nil || num == "" || num[0] < '0' || num[0] > '9' || n > 50 || !strings.HasSuffix(value, "%") {
		return 0, fmt.Errorf("bad headroom %q: want an integer percentage 0%%-50%%", value)
	}
	return n, nil
}

// parseBuildID reads McexecBuildID: what IHK_OS_GET_BUILDID returns, a short
// git hash or a version string (printable ASCII, no spaces, at most 64
// bytes).
func parseBuildID(value string) (string, error) {
	if value == "" || len(value) > 64 {
		return "", fmt.Errorf("bad build id %q: want 1-64 printable characters", value)
	}
	for _, r := range value {
		if r <= ' ' || r > '~' {
			return "", fmt.Errorf("bad build id %q: want printable ASCII without spaces", value)
		}
	}
	return value, nil
}

// parsePercent parses "50%" or "50" into 1..100.
func parsePercent(value string) (int, error) {
	num := strings.TrimSuffix(value, "%")
	n, err := strconv.Atoi(num)
	if err != nil || num == "" || num[0] < '0' || num[0] > '9' || n < 1 || n > 100 {
		return 0, fmt.Errorf("bad percentage %q: want an integer 1-100", value)
	}
	return n, nil
}

// parseDuration parses a Go duration with a unit ("100ms", "2s", "1m30s");
// zero is allowed.
func parseDuration(value string) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q: want a number with a unit, e.g. 100ms, 2s, 1m", value)
	}
	return d, nil
}

func parsePositiveDuration(value string) (time.Duration, error) {
	d, err := parseDuration(value)
	if err == nil && d == 0 {
		err = fmt.Errorf("bad duration %q: must be positive", value)
	}
	return d, err
}

// parsePath accepts an absolute, clean path ("/a/b", not "a/b", "/a/../b",
// "/a/").
func parsePath(value string) (string, error) {
	if !path.IsAbs(value) {
		return "", fmt.Errorf("path %q is not absolute", value)
	}
	if path.Clean(value) != value {
		return "", fmt.Errorf("path %q is not clean (want %q)", value, path.Clean(value))
	}
	for i := 0; i < len(value); i++ {
		if value[i] < ' ' || value[i] == 0x7f {
			return "", fmt.Errorf("path %q has a control character", value)
		}
	}
	return value, nil
}

// Profile returns the profile called name; "" selects the default profile
// (DefaultProfile, else the first profile the file defines). An undefined
// name gives an error wrapping ErrNoProfile.
func (c *Config) Profile(name string) (Profile, error) {
	if name == "" {
		name = c.DefaultProfile
		if name == "" && len(c.ProfileNames) > 0 {
			name = c.ProfileNames[0]
		}
	}
	p, ok := c.Profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("profile %q: %w (lwk.conf defines %s)", name, ErrNoProfile, strings.Join(c.ProfileNames, ", "))
	}
	return p, nil
}

// CheckKargs reports an error unless every one of the user's extra kernel
// arguments is on the profile's allow list (an entry ending in "=" allows
// any non-empty value for that key; any other entry must match exactly) and
// the fixed and extra arguments joined by spaces fit in ihk.MaxKargsLen bytes.
func (p Profile) CheckKargs(extra []string) error {
	for _, k := range extra {
		if !p.allows(k) {
			if len(p.AllowedKargs) == 0 {
				return fmt.Errorf("kernel argument %q: profile %q allows no extra kernel arguments", k, p.Name)
			}
			return fmt.Errorf("kernel argument %q: not allowed by profile %q (allowed: %s)", k, p.Name, strings.Join(p.AllowedKargs, ", "))
		}
	}
	if n := len(p.KernelArgs(extra)); n > ihk.MaxKargsLen {
		return fmt.Errorf("kernel arguments of profile %q plus %s: %d bytes, at most %d", p.Name, strings.Join(extra, "+"), n, ihk.MaxKargsLen)
	}
	return nil
}

func (p Profile) allows(k string) bool {
	for _, a := range p.AllowedKargs {
		if strings.HasSuffix(a, "=") {
			if strings.HasPrefix(k, a) && len(k) > len(a) {
				return true
			}
		} else if a == k {
			return true
		}
	}
	return false
}

// KernelArgs returns the kernel argument string IHK gets: the fixed
// arguments, then the extra ones, joined by single spaces.
func (p Profile) KernelArgs(extra []string) string {
	return strings.Join(append(slices.Clone(p.Kargs), extra...), " ")
}

// parseYesNo parses yes/no (also true/false, 1/0; any letter case).
func parseYesNo(value string) (bool, error) {
	switch strings.ToLower(value) {
	case "yes", "true", "1":
		return true, nil
	case "no", "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("want yes or no, not %q", value)
}
