//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServiceInstallUser installs and uninstalls the systemd user unit and
// the launchd agent with fake systemctl and launchctl on PATH that record
// their arguments: there is no systemd user session (nor launchd) where
// the tests run. The definition is written where the manager looks, the
// manager's commands run in order, and uninstall undoes both.
func TestServiceInstallUser(t *testing.T) {
	testHome(t)
	userHome := t.TempDir()
	t.Setenv("HOME", userHome)
	t.Setenv("XDG_CONFIG_HOME", "")
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	for _, name := range []string{"systemctl", "launchctl"} {
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >> %q\n[ -z \"$FAKE_FAIL\" ]\n", name, calls)
		writeExecutable(t, filepath.Join(bin, name), []byte(script))
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	unit := filepath.Join(userHome, ".config", "systemd", "user", "difflore.service")
	plist := filepath.Join(userHome, "Library", "LaunchAgents", "dev.difflore.daemon.plist")
	domain := fmt.Sprintf("gui/%d", os.Getuid())
	for _, tc := range []struct {
		mgr, path, want    string
		install, uninstall []string
	}{
		{"systemd", unit, "run --takeover",
			[]string{"systemctl --user daemon-reload", "systemctl --user enable --now difflore.service"},
			[]string{"systemctl --user disable --now difflore.service", "systemctl --user daemon-reload"}},
		{"launchd", plist, "<string>--takeover</string>",
			[]string{"launchctl bootout " + domain + " " + plist, "launchctl bootstrap " + domain + " " + plist},
			[]string{"launchctl bootout " + domain + " " + plist}},
	} {
		t.Run(tc.mgr, func(t *testing.T) {
			os.Remove(calls)
			mustCLI(t, "service", "install", tc.mgr)
			data, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatalf("install wrote no definition: %v", err)
			}
			if !strings.Contains(string(data), tc.want) {
				t.Errorf("%s lacks %q:\n%s", tc.path, tc.want, data)
			}
			if got := readLines(t, calls); !slices.Equal(got, tc.install) {
				t.Errorf("install ran %q, want %q", got, tc.install)
			}
			os.Remove(calls)
			mustCLI(t, "service", "uninstall", tc.mgr)
			if _, err := os.Stat(tc.path); !os.IsNotExist(err) {
				t.Errorf("uninstall left %s: %v", tc.path, err)
			}
			if got := readLines(t, calls); !slices.Equal(got, tc.uninstall) {
				t.Errorf("uninstall ran %q, want %q", got, tc.uninstall)
			}
		})
	}

	// A manager that refuses the unit: install fails and says so.
	t.Setenv("FAKE_FAIL", "1")
	if _, stderr, code := cli(t, "", "service", "install", "systemd"); code != 1 || !strings.Contains(stderr, "systemctl --user daemon-reload") {
		t.Errorf("install with a failing systemctl: exit %d, stderr %q; want exit 1 naming the command", code, stderr)
	}
}
