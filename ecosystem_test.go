package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHooksPrint(t *testing.T) {
	testHome(t)
	for _, a := range agents {
		t.Run(a.name, func(t *testing.T) {
			out := mustCLI(t, "hooks", "print", "--autostart", "--command", "/opt/difflore/difflore", a.name)
			doc, err := parseJSON([]byte(out))
			if err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			events, programs := a.wiredEvents(doc)
			if !slices.Equal(events, a.events) || !slices.Equal(programs, []string{"/opt/difflore/difflore"}) {
				t.Errorf("print wires %v running %v, want %v running /opt/difflore/difflore", events, programs, a.events)
			}
			for _, e := range a.events {
				if want := "/opt/difflore/difflore enqueue --kind " + a.name + "." + e + " --ensure-daemon"; !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	if _, _, code := cli(t, "", "hooks", "print", "vim"); code != 2 {
		t.Errorf("unknown agent: exit %d, want 2", code)
	}
}

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

func TestEveryCommandHasHelp(t *testing.T) {
	testHome(t)
	for _, c := range append(commandNames(), "outbox list", "outbox show", "outbox retry", "outbox purge") {
		out, stderr, code := cli(t, "", append(strings.Fields(c), "-h")...)
		if code != 0 || strings.Count(out, "Usage") != 1 || stderr != "" {
			t.Errorf("%s -h: exit %d, stdout %q, stderr %q; want the usage once, on stdout", c, code, out, stderr)
		}
	}
}

func TestServicePrint(t *testing.T) {
	testHome(t)
	for mgr, want := range map[string]string{"systemd": "ExecStart=", "launchd": "<key>ProgramArguments</key>", "windows": "schtasks /Create"} {
		out := mustCLI(t, "service", "print", mgr)
		if !strings.Contains(out, want) || !strings.Contains(out, "run") {
			t.Errorf("service print %s lacks %q or 'run':\n%s", mgr, want, out)
		}
	}
}

// TestEnsureDaemonStartsOne enqueues with --ensure-daemon: the first call
// starts a daemon, which delivers; later calls find it running.
func TestEnsureDaemonStartsOne(t *testing.T) {
	dir := testHome(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	t.Setenv("DIFFLORE_CLOUD_URL", fileURL(out))
	// The daemon is a re-exec of the test binary, which acts as difflore
	// when asMainEnv is set in its environment.
	t.Setenv(asMainEnv, "1")
	mustCLI(t, "enqueue", "--ensure-daemon", `{"n":1}`)
	t.Cleanup(func() { cli(t, "", "stop") })
	waitFor(t, 20*time.Second, "the auto-started daemon to deliver", func() bool { return len(readLines(t, out)) == 1 })
	state, pid, _ := statusOf(t)
	if state != "running" {
		t.Fatalf("status %s after --ensure-daemon, want running", state)
	}
	mustCLI(t, "enqueue", "--ensure-daemon", `{"n":2}`)
	waitFor(t, 20*time.Second, "the second event", func() bool { return len(readLines(t, out)) == 2 })
	if _, pid2, _ := statusOf(t); pid2 != pid {
		t.Errorf("daemon pid changed from %d to %d: a second daemon was started", pid, pid2)
	}
	if got := mustCLI(t, "stop"); !strings.HasPrefix(got, "stopped") {
		t.Errorf("stop: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, logFileName)); err != nil {
		t.Errorf("auto-started daemon wrote no log: %v", err)
	}
}

func TestDrain(t *testing.T) {
	testHome(t)
	for range 250 {
		mustCLI(t, "enqueue", `{"x":1}`)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	got := mustCLI(t, "drain", "--endpoint", fileURL(out), "--json")
	var sum drainSummary
	if err := json.Unmarshal([]byte(got), &sum); err != nil {
		t.Fatalf("drain --json: %v\n%s", err, got)
	}
	if sum.Delivered != 250 || sum.Pending != 0 {
		t.Errorf("drain summary %+v, want 250 delivered, 0 pending", sum)
	}
	if n := len(readLines(t, out)); n != 250 {
		t.Errorf("endpoint got %d events, want 250", n)
	}
	// A running daemon owns delivery: drain refuses.
	d := startDaemon(t)
	_, stderr, code := cli(t, "", "drain", "--endpoint", fileURL(out))
	if code != 1 || !strings.Contains(stderr, "daemon is delivering") {
		t.Errorf("drain beside a daemon: exit %d, stderr %q", code, stderr)
	}
	mustCLI(t, "stop")
	d.wait(t, 10*time.Second)
}

func TestLogsTail(t *testing.T) {
	dir := testHome(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 100 {
		lines = append(lines, `{"n":`+strings.Repeat("9", i%7)+`0}`)
	}
	if err := os.WriteFile(filepath.Join(dir, logFileName), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := mustCLI(t, "logs", "-n", "3")
	if want := strings.Join(lines[97:], "\n") + "\n"; got != want {
		t.Errorf("logs -n 3 = %q, want %q", got, want)
	}
}

func TestRotatingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	r, err := openRotatingFile(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	line := []byte(strings.Repeat("x", 39) + "\n")
	for range 10 {
		if _, err := r.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi.Size() > 100 {
			t.Errorf("%s is %d bytes, over the 100-byte limit", p, fi.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("kept more than 2 old files")
	}
}

// BenchmarkEnsureDaemonProbe measures what --ensure-daemon adds to a hook
// when the daemon runs: one lock probe. The target is well under a
// millisecond; the baseline is a bare stat of the same file, the cheapest
// look at it there is.
func BenchmarkEnsureDaemonProbe(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "home")
	h, err := openHome(dir, true)
	if err != nil {
		b.Fatal(err)
	}
	held := newLock(h) // Stands for the running daemon.
	if ok, err := held.TryLock(); !ok || err != nil {
		b.Fatal(ok, err)
	}
	defer held.Unlock()
	b.Run("stat", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.Stat(h.path(lockFileName)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/probe")
	})
	b.Run("probe", func(b *testing.B) {
		for b.Loop() {
			if ok, err := lockHeld(h); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/probe")
	})
}
