package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWakePipeRemovedUnderIdleDaemon removes the wake pipe under an idle
// daemon whose safety net is an hour away (the default tick): the daemon
// must notice and make it again, so that the next event still arrives in
// moments. Something else put under the pipe's name is refused, and status
// and doctor say so while the daemon polls instead.
func TestWakePipeRemovedUnderIdleDaemon(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	d := e.startDaemon("--endpoint", ep.URL, "--log-level", "debug")
	e.mustCLI("enqueue", "--id", "before", `{"n":0}`)
	arr.await(t, "before", 10*time.Second)
	// Idle: waiting for wake-ups after the delivery, nothing left to do.
	d.awaitLog(t, 10*time.Second, "the daemon to go idle", func(log string) bool {
		_, after, ok := strings.Cut(log, "msg=delivered")
		return ok && strings.Contains(after, idleLine)
	})

	pipe := filepath.Join(dir, wakeFileName)
	if err := os.Remove(pipe); err != nil {
		t.Fatal(err)
	}
	e.mustCLI("enqueue", "--id", "after-remove", `{"n":1}`)
	arr.await(t, "after-remove", 10*time.Second)
	if fi, err := os.Lstat(pipe); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the daemon did not make the wake pipe again: %v", err)
	}
	if state, _, _ := e.statusOf(); state != "running" {
		t.Fatalf("daemon %s", state)
	}
	if out := e.mustCLI("status"); strings.Contains(out, "wake pipe") {
		t.Errorf("status reports a wake pipe problem after the daemon made it again:\n%s", out)
	}

	// A regular file renamed over the pipe: never written into. The
	// daemon polls instead, and status and doctor say so.
	planted := filepath.Join(dir, "planted")
	if err := os.WriteFile(planted, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(planted, pipe); err != nil {
		t.Fatal(err)
	}
	e.mustCLI("enqueue", "--id", "after-plant", `{"n":2}`)
	arr.await(t, "after-plant", 10*time.Second)
	// Nothing signals a change in what status reports: poll it.
	waitFor(t, 10*time.Second, "status to report the wake pipe", func() bool {
		out, _, _ := e.cli("", "status")
		return strings.Contains(out, "wake pipe") && strings.Contains(out, "not a named pipe")
	})
	if out, _, _ := e.cli("", "doctor"); !strings.Contains(out, "wake pipe") {
		t.Errorf("doctor does not report the wake pipe:\n%s", out)
	}
	if fi, err := os.Lstat(pipe); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the planted file was replaced: %v", err)
	}
	e.mustCLI("stop")
	d.wait(t, 15*time.Second)
	if !strings.Contains(d.log.String(), "wake pipe") {
		t.Errorf("the daemon logged nothing of the wake pipe:\n%s", d.log)
	}
}
