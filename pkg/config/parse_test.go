package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/cpuset"
)

func mustParseSet(t *testing.T, s string) cpuset.CPUSet {
	t.Helper()
	set, err := cpuset.Parse(s)
	require.NoError(t, err)
	return set
}

// paperNode is the paper's evaluation node (§5): OS cores 0-1, numa=fake=12
// with nodes 0-1 for the system.
const paperNode = `# lwk.conf for the paper's evaluation node
IHKBackend=ihk
OSCores=0-1
SystemNUMANodes=0-1
JobNUMANodes=2-11

ProxyMemory=128M
ProxyCPUShare=50%
ProxyCPUPeriod=100ms
LWKMemoryShare=90%

Profile=mck Image=/opt/mckernel/smp-x86/kernel/mckernel.img Kargs="hidos dump_level=24" AllowKargs=allow_oversubscribe,time_sharing,idle_halt,dump_level=
profile=mck-big image="/opt/mckernel/big.img" kargs=hidos   # keys are case-insensitive
`

func TestParseFull(t *testing.T) {
	c, err := Parse(strings.NewReader(paperNode), "lwk.conf")
	require.NoError(t, err)
	require.Equal(t, BackendIHK, c.Backend)
	require.True(t, mustParseSet(t, "0-1").Equals(c.OSCores))
	require.True(t, mustParseSet(t, "0-1").Equals(c.SystemNUMANodes))
	require.True(t, mustParseSet(t, "2-11").Equals(c.JobNUMANodes))
	require.Equal(t, []string{"mck", "mck-big"}, c.ProfileNames)
	require.Equal(t, Profile{
		Name:         "mck",
		Image:        "/opt/mckernel/smp-x86/kernel/mckernel.img",
		Kargs:        []string{"hidos", "dump_level=24"},
		AllowedKargs: []string{"allow_oversubscribe", "time_sharing", "idle_halt", "dump_level="},
	}, c.Profiles["mck"])
	require.Equal(t, Profile{Name: "mck-big", Image: "/opt/mckernel/big.img", Kargs: []string{"hidos"}}, c.Profiles["mck-big"])

	p, err := c.Profile("")
	require.NoError(t, err)
	require.Equal(t, "mck", p.Name, "no DefaultProfile: the first one defined")
	p, err = c.Profile("mck-big")
	require.NoError(t, err)
	require.Equal(t, "mck-big", p.Name)
	_, err = c.Profile("nope")
	require.ErrorIs(t, err, ErrNoProfile)
	require.EqualError(t, err, `profile "nope": no such profile (lwk.conf defines mck, mck-big)`)
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want Config
	}{
		{
			name: "real driver",
			conf: "IHKBackend=ihk\nOSCores=0\nProfile=p Image=/k.img Kargs=hidos\n",
			want: Config{
				Backend: BackendIHK, DevDir: "/dev",
				ProxyMemoryBytes: 128 << 20, ProxyCPUPercent: 50, ProxyCPUPeriod: 100 * time.Millisecond,
				LWKMemoryPercent: 90, LWKMemoryHeadroomPercent: 2, StateDir: "/run/slurm-lwk/state", RunDir: "/run/slurm-lwk",
				SysfsRoot: "/", LogDir: "/var/log/slurm-lwk", SimStateDir: "/var/lib/slurm-lwk/sim",
				SimBootDelay: 2 * time.Second, McexecPath: "/usr/bin/mcexec", ScontrolPath: "/usr/bin/scontrol", ScancelPath: "/usr/bin/scancel",
				SqueuePath: "/usr/bin/squeue", FailureReasonField: "AdminComment",
				BootTimeout: 120 * time.Second, DestroyTimeout: 30 * time.Second, LockTimeout: 240 * time.Second,
				CgroupPrefix: "slurm-lwk",
			},
		},
		{
			name: "simulator puts devices under its state",
			conf: "IHKBackend=sim\nOSCores=0\nSimStateDir=/tmp/lwk-sim\nProfile=p Image=/k.img Kargs=hidos\n",
			want: Config{
				Backend: BackendSim, DevDir: "/tmp/lwk-sim/dev", SimStateDir: "/tmp/lwk-sim",
				ProxyMemoryBytes: 128 << 20, ProxyCPUPercent: 50, ProxyCPUPeriod: 100 * time.Millisecond,
				LWKMemoryPercent: 90, LWKMemoryHeadroomPercent: 2, StateDir: "/run/slurm-lwk/state", RunDir: "/run/slurm-lwk",
				SysfsRoot: "/", LogDir: "/var/log/slurm-lwk",
				SimBootDelay: 2 * time.Second, McexecPath: "/usr/bin/mcexec", ScontrolPath: "/usr/bin/scontrol", ScancelPath: "/usr/bin/scancel",
				SqueuePath: "/usr/bin/squeue", FailureReasonField: "AdminComment",
				BootTimeout: 120 * time.Second, DestroyTimeout: 30 * time.Second, LockTimeout: 240 * time.Second,
				CgroupPrefix: "slurm-lwk",
			},
		},
		{
			name: "explicit values win",
			conf: `ihkbackend=SIM
OSCORES=0-1
DevDir=/srv/dev
ProxyMemory=1G
ProxyCPUShare=25
ProxyCPUPeriod=50ms
LWKMemoryShare=100%
LWKMemoryHeadroom=0%
McexecBuildID=3114d9e7
StateDir="/srv/state"
RunDir=/srv/run
SysfsRoot=/srv/fixture
LogDir=/srv/log
SimBootDelay=0s
McexecPath=/usr/local/bin/lwk-sim-mcexec
ScontrolPath=/usr/local/bin/scontrol
SqueuePath=/usr/local/bin/squeue
failurereasonfield=comment
BootTimeout=5m
DestroyTimeout=1s
LockTimeout=2s
CgroupPrefix=lwk-test.1
DefaultProfile=p
Profile=p Image=/k.img Kargs=hidos
`,
			want: Config{
				Backend: BackendSim, DevDir: "/srv/dev", SimStateDir: "/var/lib/slurm-lwk/sim",
				ProxyMemoryBytes: 1 << 30, ProxyCPUPercent: 25, ProxyCPUPeriod: 50 * time.Millisecond,
				LWKMemoryPercent: 100, LWKMemoryHeadroomPercent: 0, McexecBuildID: "3114d9e7",
				StateDir: "/srv/state", RunDir: "/srv/run",
				SysfsRoot: "/srv/fixture", LogDir: "/srv/log", SimBootDelay: 0,
				McexecPath: "/usr/local/bin/lwk-sim-mcexec", ScontrolPath: "/usr/local/bin/scontrol", ScancelPath: "/usr/bin/scancel",
				SqueuePath: "/usr/local/bin/squeue", FailureReasonField: "Comment",
				BootTimeout: 5 * time.Minute, DestroyTimeout: time.Second, LockTimeout: 2 * time.Second,
				DefaultProfile: "p", CgroupPrefix: "lwk-test.1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(tt.conf), "lwk.conf")
			require.NoError(t, err)
			require.True(t, c.OSCores.Size() > 0)
			got := *c
			got.OSCores, got.Profiles, got.ProfileNames = cpuset.CPUSet{}, nil, nil
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseDefragKeys(t *testing.T) {
	const head = "IHKBackend=sim\nOSCores=0-1\n"
	for _, tc := range []struct {
		name, line string
		want       DefragPolicy
		err        string
	}{
		{name: "off by default", line: "Profile=a Image=/i Kargs=hidos", want: DefragPolicy{}},
		{name: "on with default budget", line: "Profile=a Image=/i Kargs=hidos Defrag=yes", want: DefragPolicy{Enabled: true, Budget: DefaultDefragBudget}},
		{name: "all keys", line: "Profile=a Image=/i Kargs=hidos defrag=YES DefragDropCaches=true DefragBudget=3s DefragOnlineKernel=yes",
			want: DefragPolicy{Enabled: true, DropCaches: true, Budget: 3 * time.Second, OnlineKernel: true}},
		{name: "bad yes/no", line: "Profile=a Image=/i Kargs=hidos Defrag=maybe", err: `Defrag: want yes or no, not "maybe"`},
		{name: "budget must be positive", line: "Profile=a Image=/i Kargs=hidos Defrag=yes DefragBudget=0s", err: "must be positive"},
		{name: "drop caches without defrag", line: "Profile=a Image=/i Kargs=hidos DefragDropCaches=yes", err: "need Defrag=yes"},
		{name: "online kernel without defrag", line: "Profile=a Image=/i Kargs=hidos DefragOnlineKernel=yes", err: "need Defrag=yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(head+tc.line+"\n"), "lwk.conf")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, c.Profiles["a"].Defrag)
		})
	}
}

func TestParseSimOfflineCPUs(t *testing.T) {
	c, err := Parse(strings.NewReader("IHKBackend=sim\nOSCores=0-1\nSimOfflineCPUs=yes\nProfile=a Image=/i Kargs=hidos\n"), "lwk.conf")
	require.NoError(t, err)
	require.True(t, c.SimOfflineCPUs)
	_, err = Parse(strings.NewReader("IHKBackend=ihk\nOSCores=0-1\nSimOfflineCPUs=yes\nProfile=a Image=/i Kargs=hidos\n"), "lwk.conf")
	require.ErrorContains(t, err, "only with IHKBackend=sim")
}

func TestParseTestKillAfterStep(t *testing.T) {
	for _, step := range []string{"reserve_memory", "boot", "write_marker", "defrag_memory"} {
		c, err := Parse(strings.NewReader("IHKBackend=ihk\nOSCores=0-1\nTestKillAfterStep="+step+"\nProfile=a Image=/i Kargs=hidos\n"), "lwk.conf")
		require.NoError(t, err, step)
		require.Equal(t, step, c.TestKillAfterStep)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "IHKBackend=sim\nOSCores=0-1\n"                // lines 1-2
	const prof = "Profile=mck Image=/opt/mck.img Kargs=hidos\n" // a valid profile line
	long := "/" + strings.Repeat("i", 255)
	tests := []struct {
		name string
		conf string
		want string
	}{
		{name: "unknown key", conf: head + "Foo=1\n" + prof, want: `lwk.conf:3: unknown key "Foo"`},
		{name: "not key=value", conf: head + "OSCores\n", want: `lwk.conf:3: "OSCores": expected KEY=VALUE`},
		{name: "empty key", conf: head + "=1\n", want: `lwk.conf:3: missing key before '='`},
		{name: "unterminated quote", conf: head + `StateDir="/var/lib` + "\n", want: `lwk.conf:3: StateDir: unterminated quote`},
		{name: "text after quote", conf: head + `StateDir="/a"b` + "\n", want: `lwk.conf:3: StateDir: text after closing quote`},
		{name: "empty value", conf: head + "StateDir=\n", want: `lwk.conf:3: StateDir: empty value`},
		{name: "duplicate key", conf: head + prof + "oscores=2\n", want: `lwk.conf:4: oscores: already set on line 2`},
		{name: "bad backend", conf: "IHKBackend=mckernel\n", want: `lwk.conf:1: IHKBackend: unknown backend "mckernel" (want ihk or sim)`},
		{name: "no backend", conf: "OSCores=0\n" + prof, want: `lwk.conf: IHKBackend: required: name the IHK backend, IHKBackend=ihk (the real driver) or IHKBackend=sim (the simulator)`},
		{name: "no OS cores", conf: "IHKBackend=ihk\n" + prof, want: `lwk.conf: OSCores: required: the CPUs kept for the system and the mcexec proxies, e.g. OSCores=0-1`},
		{name: "bad cpu list", conf: "IHKBackend=ihk\n\n# c\nOSCores=0-x\n", want: `lwk.conf:4: OSCores: bad list "0-x"`},
		{name: "system without job nodes", conf: head + "SystemNUMANodes=0\n" + prof, want: `lwk.conf:3: SystemNUMANodes: set without JobNUMANodes: give both or neither`},
		{name: "job without system nodes", conf: head + prof + "JobNUMANodes=1-3\n", want: `lwk.conf:4: JobNUMANodes: set without SystemNUMANodes: give both or neither`},
		{name: "overlapping nodes", conf: head + "SystemNUMANodes=0-1\nJobNUMANodes=1-3\n" + prof, want: `lwk.conf:4: JobNUMANodes: nodes 1 are also SystemNUMANodes`},
		{name: "percent zero", conf: head + "ProxyCPUShare=0%\n", want: `lwk.conf:3: ProxyCPUShare: bad percentage "0%": want an integer 1-100`},
		{name: "percent too big", conf: head + "LWKMemoryShare=101%\n", want: `lwk.conf:3: LWKMemoryShare: bad percentage "101%": want an integer 1-100`},
		{name: "percent negative", conf: head + "LWKMemoryShare=-5\n", want: `lwk.conf:3: LWKMemoryShare: bad percentage "-5": want an integer 1-100`},
		{name: "headroom too big", conf: head + "LWKMemoryHeadroom=60%\n", want: `lwk.conf:3: LWKMemoryHeadroom: bad headroom "60%": want an integer percentage 0%-50%`},
		{name: "headroom without unit", conf: head + "LWKMemoryHeadroom=2\n", want: `lwk.conf:3: LWKMemoryHeadroom: bad headroom "2": want an integer percentage 0%-50%`},
		{name: "build id with a space", conf: head + "McexecBuildID=\"a b\"\n", want: `lwk.conf:3: McexecBuildID: bad build id "a b": want printable ASCII without spaces`},
		{name: "size without unit", conf: head + "ProxyMemory=128\n", want: `lwk.conf:3: ProxyMemory: bad size "128": missing unit (B, K, M, G, T)`},
		{name: "size bad unit", conf: head + "ProxyMemory=128Q\n", want: `lwk.conf:3: ProxyMemory: bad size "128Q": unknown suffix "Q"`},
		{name: "size zero", conf: head + "ProxyMemory=0M\n", want: `lwk.conf:3: ProxyMemory: bad size "0M": must be positive`},
		{name: "duration without unit", conf: head + "BootTimeout=120\n", want: `lwk.conf:3: BootTimeout: bad duration "120": want a number with a unit, e.g. 100ms, 2s, 1m`},
		{name: "duration zero", conf: head + "LockTimeout=0s\n", want: `lwk.conf:3: LockTimeout: bad duration "0s": must be positive`},
		{name: "cfs period too long", conf: head + "ProxyCPUPeriod=2s\n", want: `lwk.conf:3: ProxyCPUPeriod: 2s: the CFS period must be between 1ms and 1s`},
		{name: "relative path", conf: head + "StateDir=var/lib\n", want: `lwk.conf:3: StateDir: path "var/lib" is not absolute`},
		{name: "unclean path", conf: head + "RunDir=/run/../tmp\n", want: `lwk.conf:3: RunDir: path "/run/../tmp" is not clean (want "/tmp")`},
		{name: "trailing slash", conf: head + "DevDir=/dev/\n", want: `lwk.conf:3: DevDir: path "/dev/" is not clean (want "/dev")`},
		{name: "no profile", conf: head, want: `lwk.conf: no LWK profile: add a line like Profile=mck Image=/path/mckernel.img Kargs=hidos`},
		{name: "profile key on global line", conf: head + "Image=/a.img\n", want: `lwk.conf:3: Image: allowed only on a Profile= line`},
		{name: "unknown profile key", conf: head + "Profile=mck Image=/a.img Kargs=hidos Foo=1\n", want: `lwk.conf:3: unknown key "Foo" on a Profile= line (want Image, Kargs, AllowKargs, Defrag, DefragDropCaches, DefragBudget, DefragOnlineKernel, ProxyMemory, ProxyCPUShare, ProxyCPUPeriod, PerfEvents)`},
		{name: "global key on profile line", conf: head + "Profile=mck Image=/a.img Kargs=hidos OSCores=1\n", want: `lwk.conf:3: unknown key "OSCores" on a Profile= line (want Image, Kargs, AllowKargs, Defrag, DefragDropCaches, DefragBudget, DefragOnlineKernel, ProxyMemory, ProxyCPUShare, ProxyCPUPeriod, PerfEvents)`},
		{name: "bad profile name", conf: head + "Profile=9mck Image=/a.img Kargs=hidos\n", want: `lwk.conf:3: Profile: bad name "9mck": must start with a letter`},
		{name: "reserved profile name", conf: head + "Profile=Default Image=/a.img Kargs=hidos\n", want: `lwk.conf:3: Profile: profile name "Default" is reserved`},
		{name: "duplicate profile", conf: head + prof + "\n" + prof, want: `lwk.conf:5: Profile: profile "mck" already defined on line 3`},
		{name: "profile without image", conf: head + "Profile=mck Kargs=hidos\n", want: `lwk.conf:3: Profile: profile "mck" has no Image=`},
		{name: "relative image", conf: head + "Profile=mck Image=mck.img Kargs=hidos\n", want: `lwk.conf:3: Image: path "mck.img" is not absolute`},
		{name: "long image", conf: head + "Profile=mck Image=" + long + " Kargs=hidos\n", want: `lwk.conf:3: Image: path is 256 bytes, at most 255`},
		{name: "no hidos", conf: head + `Profile=mck Image=/a.img Kargs="dump_level=24"` + "\n", want: `lwk.conf:3: Profile: profile "mck": Kargs must include "hidos"`},
		{name: "long kargs", conf: head + `Profile=mck Image=/a.img Kargs="hidos ` + strings.Repeat("x", 250) + `"` + "\n", want: `lwk.conf:3: Kargs: kernel arguments are 256 bytes, at most 255`},
		{name: "bad allow entry", conf: head + "Profile=mck Image=/a.img Kargs=hidos AllowKargs=a,,b\n", want: `lwk.conf:3: AllowKargs: bad entry "" (a kernel argument name, NAME=VALUE, or NAME= to allow any value)`},
		{name: "cgroup prefix with a slash", conf: head + "CgroupPrefix=a/b\n" + prof, want: `lwk.conf:3: CgroupPrefix: "a/b": want one directory name`},
		{name: "test kill after no step", conf: head + "TestKillAfterStep=reboot\n" + prof, want: `lwk.conf:3: TestKillAfterStep: "reboot": not a prolog step`},
		{name: "cgroup prefix dot-dot", conf: head + "CgroupPrefix=..\n" + prof, want: `lwk.conf:3: CgroupPrefix: "..": want one directory name`},
		{name: "profile proxy memory without unit", conf: head + "Profile=mck Image=/a.img Kargs=hidos ProxyMemory=64\n", want: `lwk.conf:3: ProxyMemory: bad size "64": missing unit`},
		{name: "profile proxy share zero", conf: head + "Profile=mck Image=/a.img Kargs=hidos ProxyCPUShare=0%\n", want: `lwk.conf:3: ProxyCPUShare: bad percentage "0%"`},
		{name: "profile proxy period too long", conf: head + "Profile=mck Image=/a.img Kargs=hidos ProxyCPUPeriod=2s\n", want: `lwk.conf:3: ProxyCPUPeriod: 2s: the CFS period must be between 1ms and 1s`},
		{name: "bad failure reason field", conf: head + "FailureReasonField=SystemComment\n" + prof, want: `lwk.conf:3: FailureReasonField: "SystemComment": want AdminComment, Comment or none`},
		{name: "too many perf events", conf: head + "Profile=mck Image=/a.img Kargs=hidos PerfEvents=1,2,3,4,5,6,7,8,9\n", want: `lwk.conf:3: PerfEvents: 9 events, at most 8`},
		{name: "bad perf event code", conf: head + "Profile=mck Image=/a.img Kargs=hidos PerfEvents=0x3c,cycles\n", want: `lwk.conf:3: PerfEvents: bad event "cycles": want a raw event code`},
		{name: "bad perf event mode", conf: head + "Profile=mck Image=/a.img Kargs=hidos PerfEvents=0x3c:x\n", want: `lwk.conf:3: PerfEvents: bad event "0x3c:x": mode "x" is not u, k or uk`},
		{name: "duplicate perf event", conf: head + "Profile=mck Image=/a.img Kargs=hidos PerfEvents=0x3c,60\n", want: `lwk.conf:3: PerfEvents: event "60" given twice`},
		{name: "empty perf event", conf: head + "Profile=mck Image=/a.img Kargs=hidos PerfEvents=0x3c,,0xc0\n", want: `lwk.conf:3: PerfEvents: bad event ""`},
		{name: "undefined default profile", conf: head + "DefaultProfile=big\n" + prof, want: `lwk.conf:3: DefaultProfile: profile "big" is not defined (have mck)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.conf), "lwk.conf")
			require.Error(t, err)
			require.ErrorContains(t, err, tt.want)
			require.True(t, strings.HasPrefix(err.Error(), tt.want), "got %q", err)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "want *ParseError, got %T", err)
			require.Equal(t, "lwk.conf", pe.File)
		})
	}
}

func TestDefaultProfile(t *testing.T) {
	conf := "IHKBackend=sim\nOSCores=0\n" +
		"Profile=small Image=/s.img Kargs=hidos\n" +
		"Profile=big Image=/b.img Kargs=hidos\n" +
		"DefaultProfile=big\n"
	c, err := Parse(strings.NewReader(conf), "lwk.conf")
	require.NoError(t, err)
	p, err := c.Profile("")
	require.NoError(t, err)
	require.Equal(t, "big", p.Name)
}

func TestCheckKargs(t *testing.T) {
	p := Profile{
		Name:         "mck",
		Image:        "/a.img",
		Kargs:        []string{"hidos", "dump_level=24"},
		AllowedKargs: []string{"allow_oversubscribe", "idle_halt", "dump_level=", "ihk_ikc_irq_core=0"},
	}
	tests := []struct {
		name    string
		profile Profile
		extra   []string
		wantErr string
	}{
		{name: "none", profile: p},
		{name: "exact", profile: p, extra: []string{"idle_halt", "allow_oversubscribe"}},
		{name: "any value", profile: p, extra: []string{"dump_level=0"}},
		{name: "exact with value", profile: p, extra: []string{"ihk_ikc_irq_core=0"}},
		{name: "other value refused", profile: p, extra: []string{"ihk_ikc_irq_core=1"}, wantErr: `kernel argument "ihk_ikc_irq_core=1": not allowed by profile "mck"`},
		{name: "bare key of an any-value entry", profile: p, extra: []string{"dump_level"}, wantErr: `kernel argument "dump_level": not allowed`},
		{name: "empty value", profile: p, extra: []string{"dump_level="}, wantErr: `kernel argument "dump_level=": not allowed`},
		{name: "prefix is not a match", profile: p, extra: []string{"idle_halt2"}, wantErr: `kernel argument "idle_halt2": not allowed`},
		{name: "no allow list", profile: Profile{Name: "plain", Kargs: []string{"hidos"}}, extra: []string{"idle_halt"}, wantErr: `kernel argument "idle_halt": profile "plain" allows no extra kernel arguments`},
		{name: "too long", profile: p, extra: []string{"dump_level=" + strings.Repeat("9", 230)}, wantErr: `kernel arguments of profile "mck" plus dump_level=`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.profile.CheckKargs(tt.extra)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	require.Equal(t, "hidos dump_level=24 idle_halt", p.KernelArgs([]string{"idle_halt"}))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lwk.conf")
	require.NoError(t, os.WriteFile(path, []byte("IHKBackend=sim\nOSCores=0\nBogus=1\n"), 0o600))
	_, err := Load(path)
	require.EqualError(t, err, path+`:3: unknown key "Bogus"`)

	_, err = Load(filepath.Join(dir, "missing.conf"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestExampleFile parses the shipped lwk.conf.example: every key it
// documents must be accepted once uncommented.
func TestExampleFile(t *testing.T) {
	c, err := Load("../../lwk.conf.example")
	require.NoError(t, err)
	require.NotEmpty(t, c.ProfileNames)
}

// settingLine is a setting in lwk.conf.example, commented out or not.
var settingLine = regexp.MustCompile(`^(#?)([A-Za-z]+)=([^ ]+)$`)

// TestExampleDefaults checks lwk.conf.example against the key table: every
// key appears as a setting line, a key with a default as "#Key=default"
// exactly, and the comments say each key's doc. Then it uncomments every
// "#Key=default" line: the values it documents must be the defaults Parse
// applies.
func TestExampleDefaults(t *testing.T) {
	raw, err := os.ReadFile("../../lwk.conf.example")
	require.NoError(t, err)
	var b, comments strings.Builder
	shown := map[string]string{} // key → "#Key=Value" or "Key=Value" as shown
	uncommented := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if text, ok := strings.CutPrefix(line, "##"); ok {
			comments.WriteString(text + " ")
		}
		if m := settingLine.FindStringSubmatch(line); m != nil {
			k, known := keyIndex[strings.ToLower(m[2])]
			require.True(t, known, "lwk.conf.example shows %q, which is not a key", line)
			require.Equal(t, k.name, m[2], "lwk.conf.example spells the key as the table does")
			require.NotContains(t, shown, k.name, "lwk.conf.example shows %s twice", k.name)
			shown[k.name] = line
			if m[1] == "#" && k.def != "" {
				line = line[1:]
				uncommented++
			}
		}
		b.WriteString(line + "\n")
	}
	doc := strings.Join(strings.Fields(comments.String()), " ")
	withDefault := 0
	for _, k := range keys {
		require.Contains(t, shown, k.name, "lwk.conf.example must show every key")
		if k.def != "" {
			withDefault++
			require.Equal(t, "#"+k.name+"="+k.def, shown[k.name], "lwk.conf.example must show the default")
		}
		require.NotEmpty(t, k.doc, "key %s", k.name)
		require.True(t, strings.Contains(doc, k.doc), "lwk.conf.example's comments must say %s's doc %q", k.name, k.doc)
	}
	for _, k := range profileKeys {
		require.NotEmpty(t, k.doc, "key %s", k.name)
		require.True(t, strings.Contains(doc, k.doc), "lwk.conf.example's comments must say %s's doc %q", k.name, k.doc)
	}
	require.Positive(t, withDefault)
	require.Equal(t, withDefault, uncommented, "every defaulted key is documented")
	withDefaults, err := Parse(strings.NewReader(string(raw)), "lwk.conf.example")
	require.NoError(t, err)
	explicit, err := Parse(strings.NewReader(b.String()), "lwk.conf.example")
	require.NoError(t, err)
	require.Equal(t, withDefaults, explicit)
}

func TestProfileProxyOverrides(t *testing.T) {
	c, err := Parse(strings.NewReader(`IHKBackend=ihk
OSCores=0-1
ProxyMemory=256M
Profile=mck Image=/k.img Kargs=hidos
Profile=chatty Image=/k.img Kargs=hidos ProxyMemory=1G ProxyCPUShare=25% ProxyCPUPeriod=50ms
Profile=tight Image=/k.img Kargs=hidos ProxyCPUShare=10
`), "lwk.conf")
	require.NoError(t, err)
	for _, tc := range []struct {
		profile string
		mem     uint64
		pct     int
		period  time.Duration
	}{
		{"mck", 256 << 20, 50, 100 * time.Millisecond},
		{"chatty", 1 << 30, 25, 50 * time.Millisecond},
		{"tight", 256 << 20, 10, 100 * time.Millisecond},
	} {
		p, err := c.Profile(tc.profile)
		require.NoError(t, err)
		mem, pct, period := c.ProxyLimits(p)
		require.Equal(t, tc.mem, mem, tc.profile)
		require.Equal(t, tc.pct, pct, tc.profile)
		require.Equal(t, tc.period, period, tc.profile)
	}
}

func TestProfilePerfEvents(t *testing.T) {
	c, err := Parse(strings.NewReader(`IHKBackend=ihk
OSCores=0-1
Profile=mck Image=/k.img Kargs=hidos
Profile=counted Image=/k.img Kargs=hidos PerfEvents=0x3c,192:uk,0x2e:k,1,2,3,4,5
`), "lwk.conf")
	require.NoError(t, err)
	p, err := c.Profile("mck")
	require.NoError(t, err)
	require.Empty(t, p.PerfEvents)
	p, err = c.Profile("counted")
	require.NoError(t, err)
	require.Equal(t, []PerfEvent{
		{Code: 0x3c, User: true}, {Code: 0xc0, User: true, Kernel: true}, {Code: 0x2e, Kernel: true},
		{Code: 1, User: true}, {Code: 2, User: true}, {Code: 3, User: true}, {Code: 4, User: true}, {Code: 5, User: true},
	}, p.PerfEvents)
}

// TestKeyTable checks the key table's own consistency: names unique in any
// letter case and apart from the Profile= line's keys (but for the proxy
// limits a profile may override), and every default accepted by its own
// parser.
func TestKeyTable(t *testing.T) {
	seen := map[string]bool{"profile": true}
	for _, k := range keys {
		lower := strings.ToLower(k.name)
		require.False(t, seen[lower], "key %s registered twice", k.name)
		seen[lower] = true
		require.NotNil(t, k.set, "key %s", k.name)
		if k.def != "" {
			require.NoError(t, k.set(&Config{}, k.def), "default of %s", k.name)
		}
	}
	require.Empty(t, keyIndex["ihkbackend"].def, "the backend is never chosen silently")
	profileSeen := map[string]bool{}
	for _, k := range profileKeys {
		lower := strings.ToLower(k.name)
		require.False(t, profileSeen[lower], "profile key %s registered twice", k.name)
		profileSeen[lower] = true
		if seen[lower] {
			require.Contains(t, profileOverrides, k.name, "profile key %s is also an ordinary key", k.name)
		}
	}
}
