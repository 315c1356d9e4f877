package main

import (
	"strings"
	"testing"
)

func TestServicePrint(t *testing.T) {
	testHome(t)
	for mgr, want := range map[string]string{"systemd": "ExecStart=", "launchd": "<key>ProgramArguments</key>", "windows": "schtasks /Create"} {
		out := mustCLI(t, "service", "print", mgr)
		if !strings.Contains(out, want) || !strings.Contains(out, "run") {
			t.Errorf("service print %s lacks %q or 'run':\n%s", mgr, want, out)
		}
	}
}
