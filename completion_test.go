package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestCompletionFlags keeps the completion table honest: every flag it
// offers is one the command's -h lists.
func TestCompletionFlags(t *testing.T) {
	testHome(t)
	for _, c := range commandNames() {
		help, _, code := cli(t, "", c, "-h")
		if code != 0 {
			t.Errorf("%s -h: exit %d", c, code)
			continue
		}
		for _, f := range commandWords()[c] {
			// A flag must appear as a flag (-x or --x, as PrintDefaults and
			// the usage text write it), a word as a whole word: a bare
			// substring test passed any short flag whose letter appears
			// somewhere in the help.
			re := `\b` + regexp.QuoteMeta(f) + `\b`
			if name, ok := strings.CutPrefix(f, "-"); ok {
				name = strings.TrimPrefix(name, "-")
				re = `(^|[^-\w])--?` + regexp.QuoteMeta(name) + `\b`
			}
			if !regexp.MustCompile(re).MatchString(help) {
				t.Errorf("completion offers %q for %s, but '%s -h' does not mention it", f, c, c)
			}
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out := mustCLI(t, "completion", shell)
		for _, c := range commandNames() {
			if !regexp.MustCompile(`\b` + c + `\b`).MatchString(out) {
				t.Errorf("%s completion lacks the command %s:\n%s", shell, c, out)
			}
		}
	}
}

// TestCompletionPowerShell: the PowerShell script registers a native
// completer for difflore and offers every command, and every command's
// words after it.
func TestCompletionPowerShell(t *testing.T) {
	testHome(t)
	out := mustCLI(t, "completion", "powershell")
	if !strings.Contains(out, "Register-ArgumentCompleter -Native -CommandName difflore") {
		t.Errorf("powershell completion registers no native completer:\n%s", out)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "'"+c.name+"'") {
			t.Errorf("powershell completion lacks the command %s", c.name)
		}
		for _, w := range c.words {
			if !strings.Contains(out, "'"+w+"'") {
				t.Errorf("powershell completion lacks %s after %s", w, c.name)
			}
		}
	}
}
