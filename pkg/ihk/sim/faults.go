package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/steps"
)

// Environment variables and file read by FaultsFromEnv.
const (
	// FaultEnv names operations that fail: "<op>[:<errno>][,...]".
	FaultEnv = "LWK_SIM_FAULT"
	// CrashEnv names operations after which the process SIGKILLs itself:
	// "<op>[,...]".
	CrashEnv = "LWK_SIM_CRASH"
	// FaultsFile is the name, inside the state directory, of the file with
	// one directive per line: "fault <op>[:<errno>]" or "crash <op>".
	FaultsFile = "faults"
)

// operations lists the ihk.Client methods in snake_case, in interface order,
// with the ioctl each one stands for (used as ihk.Error.Op). perf_set
// stands for the pair the real client issues (AUX_PERF_NUM, then
// AUX_PERF_SET, whose name its errors carry); perf_control for one of
// three requests, chosen by the operation (perfCallNames).
var operations = []struct{ name, ioctl string }{
	{"reserve_cpus", "IHK_DEVICE_RESERVE_CPU"},
	{"release_cpus", "IHK_DEVICE_RELEASE_CPU"},
	{"reserved_cpus", "IHK_DEVICE_QUERY_CPU"},
	{"reserve_memory", "IHK_DEVICE_RESERVE_MEM"},
	{"release_memory", "IHK_DEVICE_RELEASE_MEM"},
	{"reserved_memory", "IHK_DEVICE_QUERY_MEM"},
	{"create_os", "IHK_DEVICE_CREATE_OS"},
	{"destroy_os", "IHK_DEVICE_DESTROY_OS"},
	{"list_os", "list_os"},
	{"detect_hangup", "IHK_DEVICE_DETECT_HUNGUP"},
	{"assign_cpus", "IHK_OS_ASSIGN_CPU"},
	{"assigned_cpus", "IHK_OS_QUERY_CPU"},
	{"assign_memory", "IHK_OS_ASSIGN_MEM"},
	{"assigned_memory", "IHK_OS_QUERY_MEM"},
	{"set_ikcmap", "IHK_OS_SET_IKC_MAP"},
	{"ikcmap", "IHK_OS_GET_IKC_MAP"},
	{"build_id", "IHK_OS_GET_BUILDID"},
	{"load_image", "IHK_OS_LOAD"},
	{"set_kernel_args", "IHK_OS_SET_KARGS"},
	{"boot", "IHK_OS_BOOT"},
	{"shutdown", "IHK_OS_SHUTDOWN"},
	{"status", "IHK_OS_STATUS"},
	{"register_event", "IHK_OS_REGISTER_EVENT"},
	{"rusage", "IHK_OS_GETRUSAGE"},
	{"read_kmsg", "IHK_OS_READ_KMSG"},
	{"freeze", "IHK_OS_FREEZE"},
	{"thaw", "IHK_OS_THAW"},
	{"perf_set", "IHK_OS_AUX_PERF_SET"},
	{"perf_control", "IHK_OS_AUX_PERF_ENABLE/DISABLE/DESTROY"},
	{"perf_read", "IHK_OS_AUX_PERF_GET"},
}

// Operations returns the IHK operation names: every ihk.Client method in
// snake_case, in the interface's order. Tests that must cover every
// operation range over it.
func Operations() []string {
	names := make([]string, len(operations))
	for i, o := range operations {
		names[i] = o.name
	}
	return names
}

func ioctlName(op string) string {
	for _, o := range operations {
		if o.name == op {
			return o.ioctl
		}
	}
	return op
}

// FaultNames returns every name a fault directive accepts: Operations plus
// the prolog steps that are not IHK operations (steps.NotIHK), so that one
// LWK_SIM_FAULT / LWK_SIM_CRASH covers the whole prolog.
func FaultNames() []string {
	return append(Operations(), steps.NotIHK...)
}

func knownOp(op string) bool {
	for _, o := range FaultNames() {
		if o == op {
			return true
		}
	}
	return false
}

// Faults says which operations fail (and with which errno) and after which
// operations the process kills itself. The zero value and nil inject nothing.
type Faults struct {
	fail  map[string]syscall.Errno
	crash map[string]bool
}

// Fail reports whether op is set to fail, and the errno it fails with.
func (f *Faults) Fail(op string) (syscall.Errno, bool) {
	if f == nil {
		return 0, false
	}
	e, ok := f.fail[op]
	return e, ok
}

// Crash reports whether the process must SIGKILL itself after op succeeds.
func (f *Faults) Crash(op string) bool {
	return f != nil && f.crash[op]
}

// Before is apply's fault hook: it fails a prolog step that is not an IHK
// operation (steps.NotIHK) if a fault names it. The IHK operations fail in
// the client wrapper (Inject), so Before leaves them alone.
func (f *Faults) Before(step string) error {
	if !slices.Contains(steps.NotIHK, step) {
		return nil
	}
	if errno, ok := f.Fail(step); ok {
		return fmt.Errorf("simulated fault: %w", errno)
	}
	return nil
}

// After is apply's other hook: it SIGKILLs the process once a step that is
// not an IHK operation succeeded, if a crash names it.
func (f *Faults) After(step string) {
	if slices.Contains(steps.NotIHK, step) && f.Crash(step) {
		crash()
	}
}

// crash SIGKILLs this process.
func crash() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; wait for it
}

// Empty reports whether nothing is injected.
func (f *Faults) Empty() bool {
	return f == nil || (len(f.fail) == 0 && len(f.crash) == 0)
}

// String lists the faults in the file syntax, one directive per line,
// sorted.
func (f *Faults) String() string {
	if f == nil {
		return ""
	}
	var lines []string
	for op, e := range f.fail {
		lines = append(lines, fmt.Sprintf("fault %s:%s", op, unix.ErrnoName(e)))
	}
	for op := range f.crash {
		lines = append(lines, "crash "+op)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (f *Faults) addFail(spec string) error {
	op, errnoText, hasErrno := strings.Cut(strings.TrimSpace(spec), ":")
	if !knownOp(op) {
		return fmt.Errorf("unknown operation %q", op)
	}
	errno := syscall.EIO
	if hasErrno {
		e, err := parseErrno(errnoText)
		if err != nil {
			return fmt.Errorf("operation %s: %w", op, err)
		}
		errno = e
	}
	if f.fail == nil {
		f.fail = map[string]syscall.Errno{}
	}
	f.fail[op] = errno
	return nil
}

func (f *Faults) addCrash(op string) error {
	op = strings.TrimSpace(op)
	if !knownOp(op) {
		return fmt.Errorf("unknown operation %q", op)
	}
	if f.crash == nil {
		f.crash = map[string]bool{}
	}
	f.crash[op] = true
	return nil
}

func (f *Faults) merge(o *Faults) {
	if o == nil {
		return
	}
	for op, e := range o.fail {
		if f.fail == nil {
			f.fail = map[string]syscall.Errno{}
		}
		f.fail[op] = e
	}
	for op := range o.crash {
		if f.crash == nil {
			f.crash = map[string]bool{}
		}
		f.crash[op] = true
	}
}

// parseErrno accepts a name ("EBUSY") or a number ("16").
func parseErrno(s string) (syscall.Errno, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 4095 {
			return 0, fmt.Errorf("errno %d out of range 1-4095", n)
		}
		return syscall.Errno(n), nil
	}
	for n := 1; n < 200; n++ {
		if unix.ErrnoName(syscall.Errno(n)) == strings.ToUpper(s) {
			return syscall.Errno(n), nil
		}
	}
	return 0, fmt.Errorf("unknown errno %q", s)
}

// ParseFaults parses the faults file syntax: one directive per line,
// "fault <op>[:<errno>]" (errno by name or number, default EIO) or
// "crash <op>"; blank lines and lines starting with '#' are ignored.
// Names are those of FaultNames.
func ParseFaults(s string) (*Faults, error) {
	f := &Faults{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, arg, _ := strings.Cut(line, " ")
		var err error
		switch kind {
		case "fault":
			err = f.addFail(arg)
		case "crash":
			err = f.addCrash(arg)
		default:
			err = fmt.Errorf("unknown directive %q (want fault or crash)", kind)
		}
		if err != nil {
			return nil, fmt.Errorf("faults line %d: %w", n, err)
		}
	}
	return f, sc.Err()
}

// ParseFaultEnv parses the values of LWK_SIM_FAULT ("<op>[:<errno>][,...]")
// and LWK_SIM_CRASH ("<op>[,...]"); empty strings inject nothing.
func ParseFaultEnv(fault, crash string) (*Faults, error) {
	f := &Faults{}
	for _, spec := range strings.Split(fault, ",") {
		if strings.TrimSpace(spec) == "" {
			continue
		}
		if err := f.addFail(spec); err != nil {
			return nil, fmt.Errorf("%s: %w", FaultEnv, err)
		}
	}
	for _, op := range strings.Split(crash, ",") {
		if strings.TrimSpace(op) == "" {
			continue
		}
		if err := f.addCrash(op); err != nil {
			return nil, fmt.Errorf("%s: %w", CrashEnv, err)
		}
	}
	return f, nil
}

// FaultsFromEnv combines LWK_SIM_FAULT, LWK_SIM_CRASH and the file
// <stateDir>/faults. The file is read only if it is a regular file owned by
// root (or by the calling user, who could set the environment anyway) and
// not writable by group or others; otherwise it is ignored and the returned
// warning says why. A missing file is not an error.
func FaultsFromEnv(stateDir string) (f *Faults, warning string, err error) {
	f, err = ParseFaultEnv(os.Getenv(FaultEnv), os.Getenv(CrashEnv))
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(stateDir, FaultsFile)
	fileFaults, warning, err := readFaultsFile(path)
	if err != nil {
		return nil, "", err
	}
	f.merge(fileFaults)
	return f, warning, nil
}

func readFaultsFile(path string) (*Faults, string, error) {
	fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", nil
		}
		return nil, "", fmt.Errorf("read faults %s: %w", path, err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("read faults %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Sprintf("ignoring faults file %s: not a regular file", path), nil
	case !ok || (st.Uid != 0 && int(st.Uid) != os.Geteuid()):
		return nil, fmt.Sprintf("ignoring faults file %s: not owned by root", path), nil
	case fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Sprintf("ignoring faults file %s: writable by group or others", path), nil
	}
	data, err := io.ReadAll(io.LimitReader(fd, 64<<10))
	if err != nil {
		return nil, "", fmt.Errorf("read faults %s: %w", path, err)
	}
	f, err := ParseFaults(string(data))
	if err != nil {
		return nil, "", fmt.Errorf("read faults %s: %w", path, err)
	}
	return f, "", nil
}
