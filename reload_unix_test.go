//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReloadBeforeClaim aims SIGHUP at the moment a drain pass is about to
// claim a batch, past the top of the daemon's turn where it looks for a
// reload: the endpoint changes in config.toml, SIGHUP comes, an event is
// queued, and only then does the pass claim. The event was queued after
// the daemon had the signal, so it must go to the new endpoint. (Under
// load the moment is long: housekeeping, or a claim that waits for the
// outbox's write lock, can take seconds.)
func TestReloadBeforeClaim(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	oldArr, newArr := newArrivals(), newArrivals()
	oldEP, newEP := newEndpoint(t, oldArr.script(200)), newEndpoint(t, newArr.script(200))
	e.mustCLI("config", "set", "endpoint", oldEP.URL)
	release := filepath.Join(t.TempDir(), "release")
	if err := unix.Mkfifo(release, 0o600); err != nil {
		t.Fatal(err)
	}
	e.setenv(pauseEnv, pauseClaim)
	e.setenv(pauseReleaseEnv, release)
	d := e.startDaemon()
	select {
	case <-d.paused:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not reach the claim step in 30s")
	}
	e.mustCLI("config", "set", "endpoint", newEP.URL)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The signal crosses the runtime and a goroutine or two before the
	// daemon has it: the event is queued once the daemon says it does.
	d.awaitLog(t, 10*time.Second, "the daemon to take the SIGHUP", func(log string) bool {
		return strings.Contains(log, "reload asked (SIGHUP)")
	})
	e.mustCLI("enqueue", "--id", "after-hup", `{"n":1}`)
	releasePause(t, release)
	if missing := newArr.awaitAll([]string{"after-hup"}, 10*time.Second); len(missing) > 0 {
		d.mu.Lock()
		defer d.mu.Unlock()
		t.Fatalf("event after-hup did not reach the new endpoint within 10s; the old one had %d requests\n%s", len(oldEP.requests()), d.log)
	}
	if n := len(oldEP.requests()); n != 0 {
		t.Errorf("the old endpoint got %d requests after SIGHUP", n)
	}
	d.awaitLog(t, 10*time.Second, "the reload's log line", func(log string) bool {
		return strings.Contains(log, "reloaded config.toml") && strings.Contains(log, "generation=1")
	})
}

// TestReloadStress changes the endpoint in config.toml and sends SIGHUP
// round after round while hooks keep the daemon busy, and waits each time
// for the daemon to acknowledge that reload (its generation, in the log):
// every event queued after the acknowledgement must reach the new
// endpoint, never the old one.
func TestReloadStress(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	arrs := []*arrivals{newArrivals(), newArrivals()}
	eps := []*endpoint{newEndpoint(t, arrs[0].script(200)), newEndpoint(t, arrs[1].script(200))}
	e.mustCLI("config", "set", "endpoint", eps[0].URL)
	d := e.startDaemon()
	stop := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		// The load: filler events, enqueued by a process of their own each.
		defer close(busy)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.command("enqueue", "--id", fmt.Sprintf("filler-%05d", i), `{"filler":true}`).Run()
		}
	}()
	defer func() { close(stop); <-busy }()
	for r := 1; r <= rounds; r++ {
		to, from := arrs[r%2], arrs[(r+1)%2]
		e.mustCLI("config", "set", "endpoint", eps[r%2].URL)
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.awaitLog(t, 30*time.Second, fmt.Sprintf("reload %d", r), func(log string) bool {
			return strings.Count(log, "reloaded config.toml") >= r
		})
		id := fmt.Sprintf("round-%03d", r)
		e.mustCLI("enqueue", "--id", id, `{"round":true}`)
		to.await(t, id, 30*time.Second)
		from.mu.Lock()
		n := from.n[id]
		from.mu.Unlock()
		if n != 0 {
			t.Fatalf("round %d: %s went to the old endpoint", r, id)
		}
	}
}

// TestReloadAddsAndRemovesSink adds a [[sink]] to config.toml and sends
// SIGHUP: an event queued after the reload reaches both sinks. Then it
// removes the table and sends SIGHUP again: the next event reaches the
// first sink alone, and nothing is left waiting for the removed one.
func TestReloadAddsAndRemovesSink(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	first, second := newArrivals(), newArrivals()
	epFirst, epSecond := newEndpoint(t, first.script(200)), newEndpoint(t, second.script(200))
	e.mustCLI("config", "set", "endpoint", epFirst.URL)
	d := e.startDaemon()
	e.mustCLI("enqueue", "--id", "before", `{"n":1}`)
	first.await(t, "before", 10*time.Second)
	conf := filepath.Join(dir, configFileName)
	hup := func(generation int, text string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.awaitLog(t, 10*time.Second, "the reload", func(log string) bool {
			return strings.Contains(log, fmt.Sprintf("generation=%d", generation)) && strings.Contains(log, "reloaded config.toml")
		})
	}
	hup(1, fmt.Sprintf("endpoint = %q\n\n[[sink]]\nname = \"second\"\nendpoint = %q\n", epFirst.URL, epSecond.URL))
	e.mustCLI("enqueue", "--id", "added", `{"n":2}`)
	first.await(t, "added", 10*time.Second)
	second.await(t, "added", 10*time.Second)
	hup(2, fmt.Sprintf("endpoint = %q\n", epFirst.URL))
	e.mustCLI("enqueue", "--id", "removed", `{"n":3}`)
	first.await(t, "removed", 10*time.Second)
	waitFor(t, 10*time.Second, "an empty outbox with no sink but the first", func() bool {
		out, _, _ := e.cli("", "outbox", "list")
		return out == "0 pending, 0 inflight, 0 dead\n"
	})
	if n := second.count("removed"); n != 0 {
		t.Errorf("the removed sink got the event queued after its removal %d times", n)
	}
	if n := second.count("before"); n != 0 {
		t.Errorf("the added sink got an event delivered and gone before it was added")
	}
}

// TestReloadFirstSinkTable changes the endpoint of the first sink when it
// is a [[sink]] table (no top-level endpoint) and sends SIGHUP: the next
// event goes to the new endpoint.
func TestReloadFirstSinkTable(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	oldArr, newArr := newArrivals(), newArrivals()
	oldEP, newEP := newEndpoint(t, oldArr.script(200)), newEndpoint(t, newArr.script(200))
	conf := filepath.Join(dir, configFileName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	table := "[[sink]]\nname = \"only\"\nendpoint = %q\n"
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(table, oldEP.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := e.startDaemon()
	e.mustCLI("enqueue", "--id", "e1", `{"n":1}`)
	oldArr.await(t, "e1", 10*time.Second)
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(table, newEP.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.awaitLog(t, 10*time.Second, "the reload", func(log string) bool { return strings.Contains(log, "reloaded config.toml") })
	e.mustCLI("enqueue", "--id", "e2", `{"n":2}`)
	if missing := newArr.awaitAll([]string{"e2"}, 10*time.Second); len(missing) > 0 {
		t.Fatalf("e2 did not reach the new endpoint; the old one got it %d times", oldArr.count("e2"))
	}
}
