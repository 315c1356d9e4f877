package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFlagErrorIsOneLine: a flag error prints one line and a hint on
// stderr, never the usage on stdout, where a hook's output is read as
// context by the agent.
func TestFlagErrorIsOneLine(t *testing.T) {
	testHome(t)
	// hooks and service take words, not flags: they have no flag set.
	for _, c := range []string{"enqueue", "run", "stop", "status", "outbox", "outbox list", "outbox show", "outbox retry", "outbox purge", "drain", "logs", "version"} {
		out, stderr, code := cli(t, "", append(strings.Fields(c), "--no-such-flag")...)
		if c == "enqueue" {
			if code != 1 {
				t.Errorf("enqueue --no-such-flag: exit %d, want 1 (never 2: agents read it as a block)", code)
			}
		} else if code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2", c, code)
		}
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "difflore: ") || !strings.Contains(lines[0], "no-such-flag") ||
			!strings.HasPrefix(lines[1], "hint: ") {
			t.Errorf("%s --no-such-flag: stdout %q, stderr %q; want nothing on stdout and one line and a hint on stderr", c, out, stderr)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	testHome(t)
	for _, c := range append(commandNames(), "outbox list", "outbox show", "outbox retry", "outbox purge") {
		out, stderr, code := cli(t, "", append(strings.Fields(c), "-h")...)
		if code != 0 || strings.Count(out, "Usage") != 1 || stderr != "" {
			t.Errorf("%s -h: exit %d, stdout %q, stderr %q; want the usage once, on stdout", c, code, out, stderr)
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
