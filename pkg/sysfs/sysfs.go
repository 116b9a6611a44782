package sysfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// Paths of the three kernel interfaces, relative to the root.
const (
	CPUDir    = "sys/devices/system/cpu"
	NodeDir   = "sys/devices/system/node"
	MemoryDir = "sys/devices/system/memory"
)

// maxFileBytes bounds how much of one sysfs attribute is read. sysfs
// attributes are at most one page; a bigger file is not a sysfs attribute.
const maxFileBytes = 64 << 10

// ParseError reports a sysfs file whose content does not parse.
type ParseError struct {
	// Path is the file's full path (root included).
	Path string
	// Content is the offending content, trimmed and shortened.
	Content string
	// Err is the underlying parse error.
	Err error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse %s: %q: %v", e.Path, e.Content, e.Err)
}

// Unwrap returns the underlying parse error.
func (e *ParseError) Unwrap() error { return e.Err }

// FS reads the kernel interfaces below one root directory.
type FS struct {
	root string
}

// New returns an FS rooted at root ("" means "/"). The root must be an
// existing directory; it is made absolute and cleaned.
func New(root string) (FS, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return FS{}, fmt.Errorf("sysfs root %q: %w", root, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return FS{}, fmt.Errorf("sysfs root: %w", err)
	}
	if !st.IsDir() {
		return FS{}, fmt.Errorf("sysfs root %s: not a directory", abs)
	}
	return FS{root: abs}, nil
}

// Root returns the root directory the FS reads below.
func (f FS) Root() string { return f.root }

// Path returns the full path of a file given relative to the root.
func (f FS) Path(rel ...string) string {
	return filepath.Join(append([]string{f.root}, rel...)...)
}

// readString returns a file's content with surrounding white space removed.
// A missing file yields the *fs.PathError from open, which matches
// fs.ErrNotExist and names the path.
func (f FS) readString(rel ...string) (string, error) {
	p := f.Path(rel...)
	fh, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > maxFileBytes {
		return "", &ParseError{Path: p, Content: shorten(string(b[:64])), Err: errors.New("file larger than 64 KiB")}
	}
	return strings.TrimSpace(string(b)), nil
}

func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// readList reads a kernel list file ("0-3,8-11", may be empty).
func (f FS) readList(rel ...string) (cpuset.CPUSet, error) {
	s, err := f.readString(rel...)
	if err != nil {
		return cpuset.New(), err
	}
	set, err := cpuset.Parse(s)
	if err != nil {
		return cpuset.New(), &ParseError{Path: f.Path(rel...), Content: shorten(s), Err: err}
	}
	return set, nil
}

// readInt reads a decimal integer file.
func (f FS) readInt(rel ...string) (int, error) {
	s, err := f.readString(rel...)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, &ParseError{Path: f.Path(rel...), Content: shorten(s), Err: err}
	}
	return v, nil
}

// readHex reads a hexadecimal file with or without a 0x prefix.
func (f FS) readHex(rel ...string) (uint64, error) {
	s, err := f.readString(rel...)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 64)
	if err != nil {
		return 0, &ParseError{Path: f.Path(rel...), Content: shorten(s), Err: err}
	}
	return v, nil
}

// numberedEntries lists the entries of dir named prefix<N> (N decimal) and
// returns the N, ascending. Entries may be directories or symlinks.
func (f FS) numberedEntries(dir, prefix string) ([]int, error) {
	p := f.Path(dir)
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, e := range ents {
		id, ok := numberedName(e.Name(), prefix)
		if ok {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids, nil
}

// numberedName returns N for a name prefix<N>, N a canonical decimal.
func numberedName(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.Atoi(rest)
	if err != nil {
		return 0, false
	}
	return id, true
}

// exists reports whether a path exists below the root (links not followed).
func (f FS) exists(rel ...string) (bool, error) {
	_, err := os.Lstat(f.Path(rel...))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}
