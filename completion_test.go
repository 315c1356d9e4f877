package main

import (
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
		for _, f := range commandFlags[c] {
			name := strings.TrimLeft(f, "-")
			if !strings.Contains(help, "-"+name) && !strings.Contains(help, name) {
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
