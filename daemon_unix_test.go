//go:build unix

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSighupReloads changes the endpoint in config.toml of a detached
// daemon and sends it SIGHUP, as 'systemctl reload' (ExecReload) does: the
// same process delivers the next event to the new endpoint. Its log, moved
// away as logrotate does, is reopened: a new daemon.log gets the later
// lines. A config.toml that no longer parses is refused, and the daemon
// goes on with what it had.
func TestSighupReloads(t *testing.T) {
	dir := testHome(t)
	t.Setenv(asMainEnv, "1")
	first := filepath.Join(t.TempDir(), "first.jsonl")
	second := filepath.Join(t.TempDir(), "second.jsonl")
	mustCLI(t, "config", "set", "endpoint", fileURL(first))
	mustCLI(t, "run", "--detach")
	t.Cleanup(func() { cli(t, "", "stop") })
	_, pid, _ := statusOf(t)
	mustCLI(t, "enqueue", "--id", "one", `{"n":1}`)
	waitFor(t, 20*time.Second, "the first event at the first endpoint", func() bool { return len(readLines(t, first)) == 1 })

	logPath := filepath.Join(dir, logFileName)
	if err := os.Rename(logPath, logPath+".moved"); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "config", "set", "endpoint", fileURL(second))
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a new daemon.log saying the config was reloaded", func() bool {
		return slices.ContainsFunc(readLines(t, logPath), func(l string) bool { return strings.Contains(l, "reloaded config") })
	})
	mustCLI(t, "enqueue", "--id", "two", `{"n":2}`)
	waitFor(t, 20*time.Second, "the second event at the second endpoint", func() bool { return len(readLines(t, second)) == 1 })
	if state, pid2, _ := statusOf(t); state != "running" || pid2 != pid {
		t.Fatalf("after SIGHUP: status %s pid %d, want running pid %d", state, pid2, pid)
	}
	if out := mustCLI(t, "status"); !strings.Contains(out, "second.jsonl") {
		t.Errorf("status does not show the new endpoint:\n%s", out)
	}

	// A broken file: refused, logged, and the second endpoint kept.
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte("endpoint = [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a log line refusing the broken config", func() bool {
		return slices.ContainsFunc(readLines(t, logPath), func(l string) bool { return strings.Contains(l, "keeping the settings in use") })
	})
	mustCLI(t, "enqueue", "--id", "three", `{"n":3}`)
	waitFor(t, 20*time.Second, "the third event at the second endpoint", func() bool { return len(readLines(t, second)) == 2 })
	if got := len(readLines(t, first)); got != 1 {
		t.Errorf("the first endpoint got %d events, want 1", got)
	}
	if out := mustCLI(t, "stop"); !strings.HasPrefix(out, "stopped (pid") {
		t.Errorf("stop: %q", out)
	}
}
