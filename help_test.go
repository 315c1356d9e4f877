package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestHelpAgrees checks that every place that lists a command's flags lists
// the same ones as the flag set the command parses with (its -h, which the
// flag package prints from the flag set itself): the usage line at the top
// of that -h, the synopsis in doc.go (the manual), and the words completion
// offers. And that the top-level help names every environment variable
// that difflore's source reads.
func TestHelpAgrees(t *testing.T) {
	testHome(t)
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	flagLine := regexp.MustCompile(`(?m)^  (--?[a-z][a-z-]*)`)
	for _, c := range commands() {
		help, _, code := cli(t, "", c.name, "-h")
		if code != 0 {
			t.Errorf("%s -h: exit %d", c.name, code)
			continue
		}
		synopsis, _, _ := strings.Cut(help, "\n\n")
		docLines := synopsisInDoc(string(doc), c.name)
		if docLines == "" {
			t.Errorf("doc.go's synopsis has no line for %s", c.name)
		}
		for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
			f := m[1]
			word := regexp.MustCompile(`(^|[^-\w])` + regexp.QuoteMeta(f) + `\b`)
			if !word.MatchString(synopsis) {
				t.Errorf("%s: -h lists %s, but its usage line does not:\n%s", c.name, f, synopsis)
			}
			if !word.MatchString(docLines) {
				t.Errorf("%s: -h lists %s, but doc.go's synopsis does not: %s", c.name, f, docLines)
			}
			if !slices.Contains(c.words, f) {
				t.Errorf("%s: -h lists %s, but completion does not offer it", c.name, f)
			}
		}
	}

	top := mustCLI(t, "-h")
	for _, name := range readEnvNames(t) {
		if !strings.Contains(top, name) {
			t.Errorf("difflore -h does not name %s, which difflore reads", name)
		}
	}
}

// synopsisInDoc is the lines of doc.go's synopsis for the command name.
func synopsisInDoc(doc, name string) string {
	var lines []string
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(l, "//\tdifflore "+name+" ") || l == "//\tdifflore "+name {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// internalEnv are the variables difflore reads that are not for users: a
// daemon started in the background learns through them that it is.
var internalEnv = []string{"DIFFLORE_DETACHED", "DIFFLORE_DETACHED_ENDPOINT"}

// readEnvNames are the environment variables named in difflore's own
// source (not its tests), but the internal ones.
func readEnvNames(t *testing.T) []string {
	t.Helper()
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile(`"(DIFFLORE_[A-Z_]+|NO_COLOR)"`)
	var names []string
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		src, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			if !slices.Contains(names, m[1]) && !slices.Contains(internalEnv, m[1]) {
				names = append(names, m[1])
			}
		}
	}
	if len(names) < 5 {
		t.Fatalf("found only %q in the source: the search is broken", names)
	}
	return names
}

// TestSubcommandHelp checks that each subcommand's -h is its own: it starts
// with the subcommand's usage line, which is one of its parent's, says
// nothing of the other subcommands, and lists only flags that its usage line
// and its parent's -h name; and that the parent's -h lists every flag a
// subcommand's does.
func TestSubcommandHelp(t *testing.T) {
	testHome(t)
	flagLine := regexp.MustCompile(`(?m)^  (--?[a-z][a-z-]*)`)
	for _, s := range subcommands() {
		parentName, _, _ := strings.Cut(s.name, " ")
		parent := mustCLI(t, parentName, "-h")
		help, _, code := cli(t, "", append(strings.Fields(s.name), "-h")...)
		if code != 0 {
			t.Errorf("%s -h: exit %d", s.name, code)
			continue
		}
		synopsis, _, _ := strings.Cut(help, "\n\n")
		if !strings.HasPrefix(synopsis, "Usage: difflore "+s.name) && !strings.HasPrefix(synopsis, "Usage:\n  difflore "+s.name) {
			t.Errorf("%s -h does not start with its usage:\n%s", s.name, help)
		}
		for _, l := range strings.Split(strings.TrimPrefix(synopsis, "Usage:"), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.Contains(parent, l) {
				t.Errorf("%s -h: the usage line %q is not in %s -h", s.name, l, parentName)
			}
		}
		for _, other := range subcommands() {
			if strings.HasPrefix(other.name, parentName+" ") && other.name != s.name && strings.Contains(help, "difflore "+other.name+" ") {
				t.Errorf("%s -h speaks of %s:\n%s", s.name, other.name, help)
			}
		}
		for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
			word := regexp.MustCompile(`(^|[^-\w])` + regexp.QuoteMeta(m[1]) + `\b`)
			if !word.MatchString(synopsis) {
				t.Errorf("%s -h lists %s, but its usage line does not:\n%s", s.name, m[1], synopsis)
			}
			if !regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(m[1])+`\b`).MatchString(parent) && parentName != "outbox" {
				t.Errorf("%s -h lists %s, but %s -h's flags do not", s.name, m[1], parentName)
			}
		}
	}
}

// TestFlagArgNamedOnce checks that a flag's help names its argument once,
// beside the flag, and not again in parentheses in the text ("--grace DUR
// … (DUR)"), where the flag package's back-quoted placeholder leaves it.
func TestFlagArgNamedOnce(t *testing.T) {
	testHome(t)
	flagLine := regexp.MustCompile(`(?m)^  --?[a-z][a-z-]* ([A-Z][A-Z_]*)\n    \t(.*)$`)
	names := [][]string{}
	for _, c := range commands() {
		names = append(names, []string{c.name})
	}
	for _, s := range subcommands() {
		names = append(names, strings.Fields(s.name))
	}
	for _, n := range names {
		help, _, _ := cli(t, "", append(n, "-h")...)
		for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
			if strings.Contains(m[2], "("+m[1]+")") || strings.Contains(m[2], "("+m[1]+",") {
				t.Errorf("%s -h names %s twice: %q", strings.Join(n, " "), m[1], m[0])
			}
		}
	}
}

// TestConfigSetHelpNamesKeys checks that 'config set -h' names every key
// that set handles, from the same table set checks against.
func TestConfigSetHelpNamesKeys(t *testing.T) {
	testHome(t)
	help := mustCLI(t, "config", "set", "-h")
	for _, k := range configKeys() {
		if k.literal != nil && !regexp.MustCompile(`\b`+regexp.QuoteMeta(k.name)+`\b`).MatchString(help) {
			t.Errorf("config set -h does not name the key %s:\n%s", k.name, help)
		}
	}
}
