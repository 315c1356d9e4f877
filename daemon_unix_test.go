//go:build unix

package main

import (
	"fmt"
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
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	firstArr, secondArr := newArrivals(), newArrivals()
	first, second := newEndpoint(t, firstArr.script(200)), newEndpoint(t, secondArr.script(200))
	e.mustCLI("config", "set", "endpoint", first.URL)
	e.mustCLI("run", "--detach")
	t.Cleanup(func() { e.cli("", "stop") })
	_, pid, _ := e.statusOf()
	e.mustCLI("enqueue", "--id", "one", `{"n":1}`)
	firstArr.await(t, "one", 20*time.Second)

	logPath := filepath.Join(dir, logFileName)
	if err := os.Rename(logPath, logPath+".moved"); err != nil {
		t.Fatal(err)
	}
	e.mustCLI("config", "set", "endpoint", second.URL)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The daemon is detached and writes only to daemon.log: no pipe signals the line.
	waitFor(t, 20*time.Second, "a new daemon.log saying the config was reloaded", func() bool {
		return slices.ContainsFunc(readLines(t, logPath), func(l string) bool { return strings.Contains(l, "reloaded config") })
	})
	e.mustCLI("enqueue", "--id", "two", `{"n":2}`)
	secondArr.await(t, "two", 20*time.Second)
	if state, pid2, _ := e.statusOf(); state != "running" || pid2 != pid {
		t.Fatalf("after SIGHUP: status %s pid %d, want running pid %d", state, pid2, pid)
	}
	if out := e.mustCLI("status"); !strings.Contains(out, second.URL) {
		t.Errorf("status does not show the new endpoint:\n%s", out)
	}

	// A broken file: refused, logged, and the second endpoint kept.
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte("endpoint = [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// As above, daemon.log is the only place the daemon says so.
	waitFor(t, 20*time.Second, "a log line refusing the broken config", func() bool {
		return slices.ContainsFunc(readLines(t, logPath), func(l string) bool { return strings.Contains(l, "keeping the settings in use") })
	})
	e.mustCLI("enqueue", "--id", "three", `{"n":3}`)
	secondArr.await(t, "three", 20*time.Second)
	if got := firstArr.counts(); len(got) != 1 {
		t.Errorf("the first endpoint got %v, want the first event only", got)
	}
	if got := secondArr.counts(); len(got) != 2 {
		t.Errorf("the second endpoint got %v, want the second and third events", got)
	}
	if out := e.mustCLI("stop"); !strings.HasPrefix(out, "stopped (pid") {
		t.Errorf("stop: %q", out)
	}
}

// TestSighupReloadsLimits changes max_size and max_age in config.toml of a
// detached daemon started with --max-age and sends it SIGHUP: it takes the
// file's max_size from then on (status says so, and it evicts by it), and
// keeps the max_age its flag gave.
func TestSighupReloadsLimits(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	e.mustCLI("run", "--detach", "--max-age", "12h")
	t.Cleanup(func() { e.cli("", "stop") })
	_, pid, _ := e.statusOf()
	if st := e.statusStore(); st.MaxSize != defaultMaxSize || st.MaxSizeSource != fromDefault || st.MaxAgeSeconds != 12*3600 || st.MaxAgeSource != fromFlag {
		t.Fatalf("status before the reload: %+v; want the default max_size and the flag's 12h max_age", st)
	}
	// 3 MiB queued while the daemon has no endpoint: under the default
	// limit, over the one the file is about to give.
	payload := `{"blob":"` + strings.Repeat("x", 16<<10) + `"}`
	const n = 192
	for i := range n {
		if _, stderr, code := e.cli(payload, "enqueue", "--id", fmt.Sprintf("e%03d", i)); code != 0 {
			t.Fatalf("enqueue: exit %d: %s", code, stderr)
		}
	}
	e.mustCLI("config", "set", "max_size", "1MiB")
	e.mustCLI("config", "set", "max_age", "30d")
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var st storeStatus
	// The detached daemon announces a reload only in status and daemon.log: poll status.
	waitFor(t, 20*time.Second, "status to show the file's max_size and the outbox under it", func() bool {
		st = e.statusStore()
		return st.MaxSize == 1<<20 && st.MaxSizeSource == fromConfig && st.SizeBytes <= 1<<20
	})
	if st.MaxAgeSeconds != 12*3600 || st.MaxAgeSource != fromFlag {
		t.Errorf("after the reload max_age is %vs from %s, want the flag's 12h", st.MaxAgeSeconds, st.MaxAgeSource)
	}
	h := mustOpenHome(t, home)
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	gaps := gapsInOutbox(t, ob)
	c, err := ob.counts()
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) == 0 {
		t.Fatal("nothing evicted after the reload")
	}
	checkAccounting(t, n, c.Pending-int64(len(gaps)), c.Dead, gaps)
}
