package man

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// build compiles ./cmd/NAME into dir and returns the binary's path.
func build(t *testing.T, dir, name string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		// go test does not put its own go on PATH; GOROOT is in its environment.
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(goTool, "build", "-o", out, "../cmd/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

// help runs bin with args (ending in --help) and returns what it printed.
// pflag writes a flag set's usage to stderr and the binaries exit 0 on
// --help; anything else is a failure.
func help(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no LWK_MODE: not the Linux-job fast path anyway (args given)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// flagRE matches a long flag at the start of a pflag usage line:
// "      --config string   ..." or "  -h, --help".
var flagRE = regexp.MustCompile(`^\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9.-]*)`)

// flags returns the long flags of a pflag usage text, without --help.
func flags(t *testing.T, usage string) []string {
	t.Helper()
	var fs []string
	for _, line := range strings.Split(usage, "\n") {
		if m := flagRE.FindStringSubmatch(line); m != nil && m[1] != "help" {
			fs = append(fs, m[1])
		}
	}
	if len(fs) == 0 {
		t.Fatalf("no flags found in usage:\n%s", usage)
	}
	return fs
}

// subFlags is flags without the requirement that there be any.
func subFlags(usage string) []string {
	var fs []string
	for _, line := range strings.Split(usage, "\n") {
		if m := flagRE.FindStringSubmatch(line); m != nil && m[1] != "help" {
			fs = append(fs, m[1])
		}
	}
	return fs
}

// page reads man page NAME.SECTION.md.
func page(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name + ".md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// documented reports whether text has a definition of flag: a line that
// starts with it in bold ("**--flag** *ARG*", followed by ":   meaning"),
// not a mere mention in a synopsis.
func documented(text, flag string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "**--"+flag+"**") {
			return true
		}
	}
	return false
}

// section returns the text of the markdown section headed exactly "### NAME"
// (go-md2man: a .SS subsection), up to the next heading, and whether it
// exists.
func section(text, name string) (string, bool) {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "### "+name {
			continue
		}
		j := i + 1
		for j < len(lines) && !strings.HasPrefix(lines[j], "#") {
			j++
		}
		return strings.Join(lines[i+1:j], "\n"), true
	}
	return "", false
}

// subcommands parses the command list of "lwkctl --help": lines indented by
// exactly two blanks under "commands:", up to the next unindented line.
func subcommands(t *testing.T, usage string) []string {
	t.Helper()
	var cmds []string
	in := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case line == "commands:":
			in = true
		case in && line != "" && !strings.HasPrefix(line, " "):
			in = false
		case in && strings.HasPrefix(line, "  ") && len(line) > 2 && line[2] != ' ':
			cmds = append(cmds, strings.Fields(line)[0])
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("no commands found in lwkctl --help:\n%s", usage)
	}
	return cmds
}

func TestLwkctlPageCoversEverySubcommandAndFlag(t *testing.T) {
	bin := build(t, t.TempDir(), "lwkctl")
	text := page(t, "lwkctl.1")
	cmds := subcommands(t, help(t, bin, "--help"))
	for _, c := range cmds {
		sec, ok := section(text, c)
		if !ok {
			t.Errorf("lwkctl.1.md: no \"### %s\" section for subcommand %s", c, c)
			continue
		}
		// A command with commands of its own (lwkctl node) prints its own
		// usage, not a flag set: its section must exist; its page text says the rest.
		for _, f := range subFlags(help(t, bin, c, "--help")) {
			// --config is common to every subcommand and documented once.
			if f == "config" {
				if !documented(text, f) {
					t.Errorf("lwkctl.1.md: --config not documented")
				}
				continue
			}
			if !documented(sec, f) {
				t.Errorf("lwkctl.1.md: section %q does not document lwkctl %s --%s", c, c, f)
			}
		}
	}
	// And no section for a subcommand that is gone.
	commands, _ := sectionOfLevel1(text, "COMMANDS")
	for _, line := range strings.Split(commands, "\n") {
		if name, ok := strings.CutPrefix(line, "### "); ok && !slices.Contains(cmds, name) {
			t.Errorf("lwkctl.1.md documents %q, which lwkctl --help does not list", name)
		}
	}
}

// sectionOfLevel1 returns the text under "# NAME" up to the next "# ".
func sectionOfLevel1(text, name string) (string, bool) {
	_, rest, ok := strings.Cut(text, "\n# "+name+"\n")
	if !ok {
		return "", false
	}
	if i := strings.Index(rest, "\n# "); i >= 0 {
		rest = rest[:i]
	}
	return rest, true
}

func TestDaemonPagesCoverEveryFlag(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ cmd, page string }{
		{"lwk-prolog", "lwk-prolog.8"},
		{"lwk-epilog", "lwk-epilog.8"},
		{"lwk-monitor", "lwk-monitor.8"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			bin := build(t, dir, tc.cmd)
			text := page(t, tc.page)
			opts, ok := sectionOfLevel1(text, "OPTIONS")
			if !ok {
				t.Fatalf("%s.md: no OPTIONS section", tc.page)
			}
			for _, f := range flags(t, help(t, bin, "--help")) {
				if !documented(opts, f) {
					t.Errorf("%s.md: OPTIONS does not document %s --%s", tc.page, tc.cmd, f)
				}
			}
		})
	}
}

// pluginArgRE matches an entry of the plugin's argument table in spank/lwk.c:
// { "prolog=", offsetof(struct lwk_args, prolog) },
var pluginArgRE = regexp.MustCompile(`\{\s*"([a-z]+)=",\s*offsetof\(struct lwk_args,`)

func TestPluginPageCoversEveryArgument(t *testing.T) {
	src, err := os.ReadFile("../spank/lwk.c")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, m := range pluginArgRE.FindAllStringSubmatch(string(src), -1) {
		args = append(args, m[1])
	}
	if len(args) == 0 {
		t.Fatal("spank/lwk.c: argument table not found (its shape changed: update pluginArgRE)")
	}
	text := page(t, "spank_lwk.8")
	sec, ok := sectionOfLevel1(text, "ARGUMENTS")
	if !ok {
		t.Fatal("spank_lwk.8.md: no ARGUMENTS section")
	}
	for _, a := range args {
		if !strings.Contains(sec, "**"+a+"=**") {
			t.Errorf("spank_lwk.8.md: ARGUMENTS does not document %s=", a)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^\*\*([a-z]+)=\*\*`).FindAllStringSubmatch(sec, -1) {
		if !slices.Contains(args, m[1]) {
			t.Errorf("spank_lwk.8.md documents %s=, which spank/lwk.c does not accept", m[1])
		}
	}
}

// TestEveryPageIsPackaged: a page written but not packaged is drift too.
func TestEveryPageIsPackaged(t *testing.T) {
	cfg, err := os.ReadFile("../dist/nfpm/slurm-lwk.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := filepath.Glob("*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no man page sources: %v", err)
	}
	for _, p := range pages {
		name := strings.TrimSuffix(p, ".md")
		sec := name[strings.LastIndexByte(name, '.')+1:]
		dst := "dst: /usr/share/man/man" + sec + "/" + name + ".gz"
		if !strings.Contains(string(cfg), dst) {
			t.Errorf("dist/nfpm/slurm-lwk.yaml does not package %s (want %q)", p, dst)
		}
	}
}
