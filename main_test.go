package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cliForms returns the ways to call each command of the table and each of its
// subcommands: words, the leading words that name what is called; args, valid
// positional arguments after them, if it takes any; and exit, the exit code
// of bad usage (2, but for enqueue, which never exits 2). Every command of
// commands() must be here, so that a new one is checked too.
func cliForms() map[string][]cliForm {
	return map[string][]cliForm{
		"enqueue":    {{nil, []string{"{}"}, 1}},
		"run":        {{nil, nil, 2}},
		"stop":       {{nil, nil, 2}},
		"status":     {{nil, nil, 2}},
		"outbox":     {{nil, nil, 2}, {[]string{"list"}, nil, 2}, {[]string{"show"}, []string{"evt-1"}, 2}, {[]string{"retry"}, []string{"--all"}, 2}, {[]string{"purge"}, []string{"--dead", "--yes"}, 2}},
		"drain":      {{nil, nil, 2}},
		"doctor":     {{nil, nil, 2}},
		"redact":     {{nil, []string{"-"}, 2}},
		"logs":       {{nil, nil, 2}},
		"hooks":      {{[]string{"print"}, []string{"claude"}, 2}, {[]string{"install"}, []string{"claude"}, 2}, {[]string{"uninstall"}, []string{"claude"}, 2}, {[]string{"status"}, []string{"claude"}, 2}},
		"service":    {{[]string{"print"}, []string{"systemd"}, 2}},
		"config":     {{[]string{"get"}, []string{"batch"}, 2}, {[]string{"set"}, []string{"batch", "5"}, 2}, {[]string{"unset"}, []string{"batch"}, 2}, {[]string{"list"}, nil, 2}, {[]string{"path"}, nil, 2}},
		"completion": {{nil, []string{"bash"}, 2}, {nil, []string{"zsh"}, 2}, {nil, []string{"fish"}, 2}, {nil, []string{"powershell"}, 2}},
		"version":    {{nil, nil, 2}},
	}
}

// cliForm is one way to call a command: see cliForms.
type cliForm struct {
	words, args []string
	exit        int
}

// TestCommandsTable checks every command and subcommand for the rules of
// the CLI: -h prints the usage once on stdout and nothing on stderr, exit
// 0, wherever it stands; an unknown flag, wherever it stands, and an extra
// argument print one line and a hint on stderr and nothing on stdout (where
// a hook's output is read as context by the agent), exit 2 (1 for enqueue).
func TestCommandsTable(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, c := range commands() {
		forms, ok := cliForms()[c.name]
		if !ok {
			t.Errorf("command %s is missing from cliForms", c.name)
			continue
		}
		help, _, _ := e.cli("", c.name, "-h")
		for _, f := range forms {
			call := append([]string{c.name}, f.words...)
			with := func(more ...string) []string { return append(slices.Clone(call), more...) }
			// Help, before and after the arguments, short and long.
			for _, args := range [][]string{with("-h"), with("--help"), with(append(slices.Clone(f.args), "-h")...), with(append(slices.Clone(f.args), "--help")...)} {
				out, stderr, code := e.cli("", args...)
				if code != 0 || strings.Count(out, "Usage") != 1 || stderr != "" {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want the usage once, on stdout, exit 0", strings.Join(args, " "), code, out, stderr)
				}
				if len(f.words) == 0 && out != help {
					t.Errorf("%s printed another usage than %s -h", strings.Join(args, " "), c.name)
				}
			}
			// Bad usage: an unknown flag before or after the arguments,
			// and an argument too many.
			bad := [][]string{with("--no-such-flag"), with(append(slices.Clone(f.args), "--no-such-flag")...)}
			for _, args := range bad {
				out, stderr, code := e.cli("", args...)
				lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
				if code != f.exit || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "difflore: ") ||
					!strings.Contains(lines[0], "no-such-flag") || !strings.HasPrefix(lines[1], "hint: ") {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, nothing on stdout, one line and a hint on stderr",
						strings.Join(args, " "), code, out, stderr, f.exit)
				}
			}
			extra := with(append(slices.Clone(f.args), "bogus1", "bogus2")...)
			if out, stderr, code := e.cli("", extra...); code != f.exit || out != "" || !strings.HasPrefix(stderr, "difflore: ") {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, nothing on stdout, the error on stderr",
					strings.Join(extra, " "), code, out, stderr, f.exit)
			}
		}
	}
}

// TestHelpAndVersionFlags: 'help' takes one known command at most, and
// --version prints what version prints.
func TestHelpAndVersionFlags(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, args := range [][]string{{"help", "--bogus"}, {"help", "bogus"}, {"help", "run", "stop"}} {
		if out, stderr, code := e.cli("", args...); code != 2 || out != "" || !strings.HasPrefix(stderr, "difflore: ") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and an error on stderr", strings.Join(args, " "), code, out, stderr)
		}
	}
	if out := e.mustCLI("help", "-h"); out != mainUsage() {
		t.Errorf("help -h printed %q, want the usage", out)
	}
	want := e.mustCLI("version")
	for _, flag := range []string{"--version", "-version"} {
		if out := e.mustCLI(flag); out != want {
			t.Errorf("difflore %s printed %q, want what version prints, %q", flag, out, want)
		}
	}
}

// TestHelpCommand checks that 'help CMD' prints what 'CMD -h' does, for
// every command in the table, and that 'help' alone prints the usage with
// every command listed.
func TestHelpCommand(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	usage := e.mustCLI("help")
	for _, c := range commandNames() {
		if !strings.Contains(usage, "\n  "+c+" ") {
			t.Errorf("usage does not list %s:\n%s", c, usage)
		}
		want, _, _ := e.cli("", c, "-h")
		if got := e.mustCLI("help", c); got != want {
			t.Errorf("help %s printed %q, want what '%s -h' prints, %q", c, got, c, want)
		}
	}
}

// TestManualListsEveryCommand checks the two lists of commands written by
// hand, the usage in doc.go and the table in the README, against the table
// of commands: each lists every command, and no other.
func TestManualListsEveryCommand(t *testing.T) {
	t.Parallel()
	lists := []struct {
		file string
		re   *regexp.Regexp
	}{
		{"doc.go", regexp.MustCompile(`(?m)^//\tdifflore ([a-z]+)`)},
		{"README.md", regexp.MustCompile("(?m)^\\| `difflore ([a-z]+)")},
	}
	for _, l := range lists {
		data, err := os.ReadFile(l.file)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, m := range l.re.FindAllStringSubmatch(string(data), -1) {
			listed = append(listed, m[1])
		}
		slices.Sort(listed)
		if want := commandNames(); !slices.Equal(listed, want) {
			t.Errorf("%s lists the commands %v, want %v", l.file, listed, want)
		}
	}
}

// TestPlural: "1 event", never "1 events".
func TestPlural(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 events"}, {1, "1 event"}, {2, "2 events"}} {
		if got := plural(c.n, "event"); got != c.want {
			t.Errorf("plural(%d, event) = %q, want %q", c.n, got, c.want)
		}
	}
}

// TestOneOfSomething: outputs that count say "1 event", not "1 events".
func TestOneOfSomething(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.mustCLI("enqueue", "--id", "a", `1`)
	if got, stderr, _ := e.cli("", "outbox", "show", "a"); got != "1" || !strings.Contains(stderr, "size:     1 byte\n") {
		t.Errorf("outbox show of a one-byte payload: stdout %q, stderr %q", got, stderr)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	if got := e.mustCLI("drain", "--endpoint", fileURL(out)); !strings.HasPrefix(got, "delivered 1 event in ") {
		t.Errorf("drain of one event: %q, want 'delivered 1 event in …'", got)
	}
	// Times shown to a person are RFC 3339 to the millisecond.
	if got, _, _ := e.cli("", "status"); !regexp.MustCompile(`\ndelivery: last 1 event at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n`).MatchString(got) {
		t.Errorf("status after one event delivered:\n%s", got)
	}
}

// TestParseFlagsAnywhere: flags count wherever they stand among the
// arguments, and -- ends them (also when it is a flag's value).
func TestParseFlagsAnywhere(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args       []string
		kind, rest string
		strict     bool
	}{
		{[]string{"{}", "--kind", "x"}, "x", "{}", false},
		{[]string{"--kind", "x", "{}"}, "x", "{}", false},
		{[]string{"a", "--strict", "b", "-kind=y", "c"}, "y", "a b c", true},
		{[]string{"a", "--", "--kind", "x"}, "event", "a --kind x", false},
		{[]string{"--kind", "--", "a", "--strict"}, "--", "a", true},
		{[]string{"--strict", "--", "-"}, "event", "-", true},
		{[]string{"-", "--strict"}, "event", "-", true},
	} {
		cfg := loadConfig(func(string) string { return "" }, nil, io.Discard, io.Discard)
		fs := newFlagSet(cfg, "test", "Usage: test\n")
		kind := fs.String("kind", "event", "")
		strict := fs.Bool("strict", false, "")
		if err := parseFlags(fs, c.args); err != nil {
			t.Errorf("parseFlags(%q): %v", c.args, err)
			continue
		}
		if got := strings.Join(fs.Args(), " "); *kind != c.kind || got != c.rest || *strict != c.strict {
			t.Errorf("parseFlags(%q): kind %q, strict %v, args %q; want %q, %v, %q", c.args, *kind, *strict, got, c.kind, c.strict, c.rest)
		}
	}
}

// TestGoModLanguageVersion: go.mod declares the language version the code
// needs, not a patch release, which would make every older toolchain of
// that language version download another before it builds anything. 1.26.0
// is the language version as go mod tidy writes it when dependencies
// declare it so: every 1.26 release satisfies it.
func TestGoModLanguageVersion(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if !regexp.MustCompile(`^1\.\d+(\.0)?$`).Match(m[1]) {
		t.Errorf("go.mod declares go %s, want a language version like 1.26", m[1])
	}
}
