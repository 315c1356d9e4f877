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
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := mustCLI(t, "completion", shell); !strings.Contains(out, "enqueue") {
			t.Errorf("%s completion lacks the commands:\n%s", shell, out)
		}
	}
}
