package lwkmode

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits of the grammar. spank/grammar.c uses the same numbers.
const (
	// MaxSpecLen is the longest accepted specification. Units: bytes.
	MaxSpecLen = 255
	// MaxProfileLen is the longest profile name. Units: bytes.
	MaxProfileLen = 32
	// MaxCores is the largest accepted cores= value.
	MaxCores = 65535
)

// Spellings with a fixed meaning.
const (
	// SpecOff asks for a Linux-only job.
	SpecOff = "off"
	// SpecDefault selects the node's default profile; it is also the
	// normalised form of the empty spec.
	SpecDefault = "default"
)

// Option keys, in canonical order.
const (
	KeyMem   = "mem"
	KeyCores = "cores"
	KeyNUMA  = "numa"
	KeyKargs = "kargs"
)

// KeyProfile is the ParseError.Key of errors about the profile name. It is
// not an option key.
const KeyProfile = "profile"

// ParseError is a rejected --lwk-mode specification.
type ParseError struct {
	// Spec is the whole specification as given.
	Spec string
	// Key is the option key at fault ("mem", "cores", "numa", "kargs", an
	// unknown key as written), KeyProfile for the profile name, or empty
	// when the error concerns the whole specification (length, characters,
	// syntax).
	Key string
	// Value is the offending value, if any.
	Value string
	// Reason says what is wrong, naming the value.
	Reason string
}

// Error implements error: `lwk-mode "SPEC": KEY: REASON`.
func (e *ParseError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("lwk-mode %q: %s", e.Spec, e.Reason)
	}
	return fmt.Sprintf("lwk-mode %q: %s: %s", e.Spec, e.Key, e.Reason)
}

// Parse turns a --lwk-mode specification into a Request. It checks the
// grammar only (see the package documentation); Validate checks the request
// against a profile.
func Parse(spec string) (Request, error) {
	fail := func(key, value, format string, args ...any) (Request, error) {
		return Request{}, &ParseError{Spec: spec, Key: key, Value: value, Reason: fmt.Sprintf(format, args...)}
	}
	if len(spec) > MaxSpecLen {
		return fail("", "", "too long: %d bytes, at most %d", len(spec), MaxSpecLen)
	}
	for i := 0; i < len(spec); i++ {
		if !specByte(spec[i]) {
			return fail("", "", "forbidden character %q at byte %d", spec[i], i)
		}
	}
	switch spec {
	case "", SpecDefault:
		return Request{}, nil
	case SpecOff:
		return Request{Off: true}, nil
	}

	profile, options, hasOptions := strings.Cut(spec, ":")
	if err := checkProfile(profile); err != "" {
		return fail(KeyProfile, profile, "%s", err)
	}
	if strings.EqualFold(profile, SpecOff) {
		// Only the exact "off" reaches here with options ("off:mem=1G").
		return fail(KeyProfile, profile, "%q takes no options", SpecOff)
	}
	req := Request{}
	if profile != SpecDefault {
		req.Profile = profile
	}
	if !hasOptions {
		return req, nil
	}
	if options == "" {
		return fail("", "", "no options after %q", profile+":")
	}

	seen := map[string]bool{}
	for _, opt := range strings.Split(options, ",") {
		if opt == "" {
			return fail("", "", "empty option (stray comma)")
		}
		key, value, ok := strings.Cut(opt, "=")
		if !ok {
			return fail(key, "", "missing \"=VALUE\"")
		}
		if key == "" {
			return fail("", value, "option %q has no key", opt)
		}
		switch key {
		case KeyMem, KeyCores, KeyNUMA, KeyKargs:
		default:
			return fail(key, value, "unknown key (want mem, cores, numa or kargs)")
		}
		if seen[key] {
			return fail(key, value, "given twice")
		}
		seen[key] = true
		if value == "" {
			return fail(key, value, "empty value")
		}
		var reason string
		switch key {
		case KeyMem:
			req.Memory, reason = parseMemory(value)
		case KeyCores:
			req.Cores, reason = parseCores(value)
		case KeyNUMA:
			req.NUMA, reason = parseNUMA(value)
		case KeyKargs:
			req.Kargs, reason = parseKargs(value)
		}
		if reason != "" {
			return fail(key, value, "%s", reason)
		}
	}
	return req, nil
}

// specByte reports whether b may appear anywhere in a specification. All
// shell metacharacters, whitespace, control bytes and non-ASCII bytes are
// outside this set.
func specByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("_.=,:+%-", b) >= 0
}

// checkProfile returns why name is not a profile name in a specification,
// or "". The exact reserved spellings pass: Parse gives them their meaning.
func checkProfile(name string) string {
	switch {
	case name == "":
		return "empty profile name"
	case len(name) > MaxProfileLen:
		return fmt.Sprintf("name %q too long: %d bytes, at most %d", name, len(name), MaxProfileLen)
	case !isLetter(name[0]):
		return fmt.Sprintf("bad name %q: must start with a letter", name)
	}
	for i := 1; i < len(name); i++ {
		b := name[i]
		if !isLetter(b) && !isDigit(b) && b != '_' && b != '.' && b != '-' {
			return fmt.Sprintf("bad name %q: %q not allowed (letters, digits, _ . -)", name, b)
		}
	}
	for _, reserved := range []string{SpecOff, SpecDefault} {
		if name != reserved && strings.EqualFold(name, reserved) {
			return fmt.Sprintf("name %q is reserved; did you mean %q?", name, reserved)
		}
	}
	return ""
}

// CheckProfileName reports why name cannot name a profile in the node
// configuration, or nil: it must be a profile name of the grammar, and not
// "off" or "default" in any letter case (those spellings have a fixed
// meaning in a specification).
func CheckProfileName(name string) error {
	if strings.EqualFold(name, SpecOff) || strings.EqualFold(name, SpecDefault) {
		return fmt.Errorf("profile name %q is reserved", name)
	}
	if reason := checkProfile(name); reason != "" {
		return errors.New(reason)
	}
	return nil
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }
func isDigit(b byte) bool  { return '0' <= b && b <= '9' }

// allDigits reports whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// sizeUnits maps a size suffix to its multiplier (binary units).
var sizeUnits = map[byte]uint64{
	'B': 1,
	'K': 1 << 10,
	'M': 1 << 20,
	'G': 1 << 30,
	'T': 1 << 40,
}

// parseMemory parses a mem= value; the second result is the reason it is
// bad, or "".
func parseMemory(value string) (Memory, string) {
	if num, ok := strings.CutSuffix(value, "%"); ok {
		if !allDigits(num) {
			return Memory{}, fmt.Sprintf("bad percentage %q: want an integer 1-100", value)
		}
		pct, err := strconv.ParseUint(num, 10, 64)
		if err != nil || pct < 1 || pct > 100 {
			return Memory{}, fmt.Sprintf("bad percentage %q: want an integer 1-100", value)
		}
		return Memory{Percent: int(pct)}, ""
	}
	n, reason := parseSize(value, true)
	return Memory{Bytes: n}, reason
}

// ParseSize parses an absolute size: a positive integer and a binary unit,
// B, K, M, G or T (case-insensitive), e.g. "128M". A bare number is
// rejected: Slurm reads those as MiB, and a silent unit mismatch is worse
// than an error. It is the size of mem= without the percentage form; the
// node configuration and lwkctl use it too.
func ParseSize(value string) (uint64, error) {
	n, reason := parseSize(value, false)
	if reason != "" {
		return 0, errors.New(reason)
	}
	return n, nil
}

// parseSize parses a size with a unit; the second result is the reason it
// is bad, or "". withPercent says whether the caller also accepts a
// percentage, which the messages then offer.
func parseSize(value string, withPercent bool) (uint64, string) {
	units, orPercent := "B, K, M, G, T", ""
	if withPercent {
		units, orPercent = "B, K, M, G, T or %", " or a percentage"
	}
	i := 0
	for i < len(value) && isDigit(value[i]) {
		i++
	}
	num, suffix := value[:i], value[i:]
	if num == "" {
		return 0, fmt.Sprintf("bad size %q: want a number with a unit (B, K, M, G, T)%s", value, orPercent)
	}
	if suffix == "" {
		return 0, fmt.Sprintf("bad size %q: missing unit (%s)", value, units)
	}
	mult, known := sizeUnits[upper(suffix[0])]
	if len(suffix) != 1 || !known {
		return 0, fmt.Sprintf("bad size %q: unknown suffix %q", value, suffix)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Sprintf("bad size %q: too large", value)
	}
	if n == 0 {
		return 0, fmt.Sprintf("bad size %q: must be positive", value)
	}
	return n * mult, ""
}

func upper(b byte) byte {
	if 'a' <= b && b <= 'z' {
		return b - 'a' + 'A'
	}
	return b
}

func parseCores(value string) (int, string) {
	if !allDigits(value) {
		return 0, fmt.Sprintf("bad count %q: want a positive integer", value)
	}
	n, err := strconv.ParseUint(value, 10, 64)
	if err != nil || n > MaxCores {
		return 0, fmt.Sprintf("bad count %q: at most %d", value, MaxCores)
	}
	if n == 0 {
		return 0, fmt.Sprintf("bad count %q: must be positive", value)
	}
	return int(n), ""
}

func parseNUMA(value string) (NUMAPolicy, string) {
	switch p := NUMAPolicy(value); p {
	case NUMAStrict, NUMANear:
		return p, ""
	}
	return "", fmt.Sprintf("bad policy %q: want %q or %q", value, NUMAStrict, NUMANear)
}

func parseKargs(value string) ([]string, string) {
	tokens := strings.Split(value, "+")
	for _, t := range tokens {
		if t == "" {
			return nil, fmt.Sprintf("empty kernel argument in %q (stray +)", value)
		}
		if reason := checkKarg(t); reason != "" {
			return nil, reason
		}
	}
	return tokens, ""
}

// checkKarg returns why t is not a kernel argument a user may pass in
// kargs=, or "".
func checkKarg(t string) string {
	if t == "" {
		return "empty kernel argument"
	}
	if !isLetter(t[0]) && !isDigit(t[0]) && t[0] != '_' {
		return fmt.Sprintf("bad kernel argument %q: must start with a letter, digit or _", t)
	}
	for i := 1; i < len(t); i++ {
		b := t[i]
		if !isLetter(b) && !isDigit(b) && b != '_' && b != '.' && b != '=' && b != '-' {
			return fmt.Sprintf("bad kernel argument %q: %q not allowed (letters, digits, _ . = -)", t, b)
		}
	}
	return ""
}

// CheckKarg reports why t is not one kernel argument of kargs=
// ([A-Za-z0-9_][A-Za-z0-9_.=-]*), or nil. The node configuration's allow
// lists use the same syntax.
func CheckKarg(t string) error {
	if reason := checkKarg(t); reason != "" {
		return errors.New(reason)
	}
	return nil
}

// String returns the normalised specification: "off", or the profile name
// ("default" for the node's default profile) followed by the options in the
// order mem, cores, numa, kargs, sizes in the largest unit that divides them
// exactly. Parse(r.String()) equals r for every Request Parse returns.
func (r Request) String() string {
	if r.Off {
		return SpecOff
	}
	var b strings.Builder
	if r.Profile == "" {
		b.WriteString(SpecDefault)
	} else {
		b.WriteString(r.Profile)
	}
	sep := byte(':')
	add := func(key, value string) {
		b.WriteByte(sep)
		sep = ','
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(value)
	}
	switch {
	case r.Memory.Percent != 0:
		add(KeyMem, strconv.Itoa(r.Memory.Percent)+"%")
	case r.Memory.Bytes != 0:
		add(KeyMem, FormatSize(r.Memory.Bytes))
	}
	if r.Cores != 0 {
		add(KeyCores, strconv.Itoa(r.Cores))
	}
	if r.NUMA != "" {
		add(KeyNUMA, string(r.NUMA))
	}
	if len(r.Kargs) != 0 {
		add(KeyKargs, strings.Join(r.Kargs, "+"))
	}
	return b.String()
}

// FormatSize prints bytes with the largest binary unit (T, G, M, K, else B)
// that divides it exactly: 8589934592 → "8G", 1536 → "1536B" (1.5 KiB).
// Zero prints as "0B".
func FormatSize(bytes uint64) string {
	for _, u := range []byte{'T', 'G', 'M', 'K'} {
		if m := sizeUnits[u]; bytes >= m && bytes%m == 0 {
			return strconv.FormatUint(bytes/m, 10) + string(u)
		}
	}
	return strconv.FormatUint(bytes, 10) + "B"
}
