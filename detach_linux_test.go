package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDetachKeepsEndpointOffCommandLine starts a detached daemon with an
// endpoint that carries a key: the key must not be on the daemon's command
// line, where any user's ps shows it, nor in what status prints.
func TestDetachKeepsEndpointOffCommandLine(t *testing.T) {
	testHome(t)
	t.Setenv(asMainEnv, "1") // The detached child is this test binary.
	const endpoint = "http://127.0.0.1:9/ingest?api_key=sekrit-key"
	out := mustCLI(t, "run", "--detach", "--endpoint", endpoint, "--batch", "7")
	t.Cleanup(func() { cli(t, "", "stop") })
	var pid int
	if _, err := fmt.Sscanf(out, "started (pid %d)", &pid); err != nil {
		t.Fatalf("run --detach said %q: %v", out, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if strings.Contains(string(cmdline), "sekrit") {
		t.Errorf("the endpoint's key is on the daemon's command line: %q", args)
	}
	if !strings.Contains(string(cmdline), "--batch\x007") {
		t.Errorf("the daemon did not get the other options: %q", args)
	}
	status := mustCLI(t, "status")
	if strings.Contains(status, "sekrit") || !strings.Contains(status, "api_key=redacted") {
		t.Errorf("status shows the endpoint as:\n%s", status)
	}
	if got := mustCLI(t, "stop"); !strings.HasPrefix(got, "stopped") {
		t.Errorf("stop: %q", got)
	}
}
