package slurm

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxHostlistHosts bounds the expansion of one hostlist expression.
const MaxHostlistHosts = 1 << 16

// ExpandHostlist expands a Slurm hostlist expression as scontrol prints it
// (hostlist_ranged_string) into node names, in order. Supported forms are
// comma-separated items, each a plain name or prefix[ranges]suffix with one
// bracket group, ranges being comma-separated numbers or lo-hi pairs:
//
//	a            -> a
//	a,b          -> a, b
//	pre[1-3,5]   -> pre1, pre2, pre3, pre5
//	pre[01-03]   -> pre01, pre02, pre03   (width taken from the low bound)
//
// Multi-dimensional forms (two bracket groups) are rejected.
func ExpandHostlist(expr string) ([]string, error) {
	if expr == "" {
		return nil, fmt.Errorf("hostlist: empty")
	}
	items, err := splitTopLevel(expr)
	if err != nil {
		return nil, fmt.Errorf("hostlist %q: %w", expr, err)
	}
	var hosts []string
	for _, item := range items {
		expanded, err := expandItem(item, MaxHostlistHosts-len(hosts))
		if err != nil {
			return nil, fmt.Errorf("hostlist %q: %w", expr, err)
		}
		hosts = append(hosts, expanded...)
	}
	return hosts, nil
}

// splitTopLevel splits at commas outside brackets.
func splitTopLevel(s string) ([]string, error) {
	var items []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
			if depth > 1 {
				return nil, fmt.Errorf("nested '['")
			}
		case ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ']'")
			}
		case ',':
			if depth == 0 {
				items = append(items, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced '['")
	}
	return append(items, s[start:]), nil
}

func expandItem(item string, budget int) ([]string, error) {
	if item == "" {
		return nil, fmt.Errorf("empty item")
	}
	open := strings.IndexByte(item, '[')
	if open < 0 {
		if err := CheckNodeName(item); err != nil {
			return nil, err
		}
		if budget < 1 {
			return nil, fmt.Errorf("more than %d hosts", MaxHostlistHosts)
		}
		return []string{item}, nil
	}
	end := strings.IndexByte(item, ']')
	prefix, ranges, suffix := item[:open], item[open+1:end], item[end+1:]
	if strings.ContainsAny(suffix, "[]") {
		return nil, fmt.Errorf("item %q: more than one bracket group is not supported", item)
	}
	if prefix == "" {
		return nil, fmt.Errorf("item %q: no name before '['", item)
	}
	if ranges == "" {
		return nil, fmt.Errorf("item %q: empty brackets", item)
	}
	var hosts []string
	for _, r := range strings.Split(ranges, ",") {
		loS, hiS, isRange := strings.Cut(r, "-")
		if !isRange {
			hiS = loS
		}
		lo, err := rangeBound(loS)
		if err != nil {
			return nil, fmt.Errorf("item %q: range %q: %w", item, r, err)
		}
		hi, err := rangeBound(hiS)
		if err != nil {
			return nil, fmt.Errorf("item %q: range %q: %w", item, r, err)
		}
		if hi < lo {
			return nil, fmt.Errorf("item %q: range %q runs backwards", item, r)
		}
		if hi-lo >= uint64(budget-len(hosts)) {
			return nil, fmt.Errorf("more than %d hosts", MaxHostlistHosts)
		}
		width := len(loS)
		for n := lo; n <= hi; n++ {
			digits := strconv.FormatUint(n, 10)
			if pad := width - len(digits); pad > 0 {
				digits = strings.Repeat("0", pad) + digits
			}
			name := prefix + digits + suffix
			if err := CheckNodeName(name); err != nil {
				return nil, err
			}
			hosts = append(hosts, name)
		}
	}
	return hosts, nil
}

func rangeBound(s string) (uint64, error) {
	if s == "" || len(s) > 9 {
		return 0, fmt.Errorf("bound %q: want 1-9 digits", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bound %q: not a number", s)
		}
	}
	return strconv.ParseUint(s, 10, 64)
}
