package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDeadLetterSpilled: when the outbox cannot be written, a dead letter is
// spilled like any event, its bytes exact, and replayed as a dead letter.
func TestDeadLetterSpilled(t *testing.T) {
	home := testHome(t)
	mustCLI(t, "enqueue", `{"n":0}`)
	db := filepath.Join(home, dbFileName)
	if err := os.Rename(db, db+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(db, 0o700); err != nil { // a folder where the outbox should be
		t.Fatal(err)
	}
	payload := "{\"a\":\"\xff\xfe\"}\n"
	out, errOut, code := cli(t, payload, "enqueue", "--id", "raw-1", "--kind", "hook.x")
	if code != 0 || out != "" {
		t.Fatalf("enqueue on an unwritable outbox: exit %d, %q %q", code, out, errOut)
	}
	if spills, _ := filepath.Glob(filepath.Join(home, spillDirName, "*.json")); len(spills) != 1 {
		t.Fatalf("%d spill files, want 1", len(spills))
	}
	os.Remove(db)
	if err := os.Rename(db+".away", db); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(t.TempDir(), "out.jsonl")
	mustCLI(t, "drain", "--endpoint", fileURL(outFile))
	if lines := readLines(t, outFile); len(lines) != 1 {
		t.Errorf("the endpoint got %q, want the good event alone", lines)
	}
	dead := deadLetters(t)
	if len(dead) != 1 || dead[0].ID != "raw-1" || dead[0].Kind != "hook.x" || !strings.Contains(dead[0].LastError, "UTF-8") {
		t.Fatalf("dead letters %+v, want raw-1 with its reason", dead)
	}
	if got, _, _ := cli(t, "", "outbox", "show", "raw-1"); got != payload {
		t.Errorf("outbox show raw-1 = %q, want %q", got, payload)
	}
}

func countSpillFiles(t *testing.T, h home) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(h.path(spillDirName), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return len(files)
}

// TestSpillReplayInterleavesAndStops gives the daemon a large spill backlog:
// it must deliver between bounded chunks of replay rather than read every
// file first, and stop promptly when asked, leaving the rest in spill/.
func TestSpillReplayInterleavesAndStops(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	h := mustOpenHomeCreate(t, e.home)
	const n = 2000
	writeSpillFiles(t, h, "s", n, `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leftAtFirst := make(chan int, 1)
	ep := newEndpoint(t, func(i int, _ recorded) answer {
		if i == 0 {
			leftAtFirst <- countSpillFiles(t, h)
			cancel() // SIGTERM, as far as the daemon can tell
		}
		return answer{status: 200}
	})
	done := make(chan error, 1)
	go func() {
		done <- runTestEnv(ctx, []string{"run", "--endpoint", ep.URL}, strings.NewReader(""), io.Discard, io.Discard, e.getenv)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("daemon did not stop within 2 minutes")
	}
	select {
	case left := <-leftAtFirst:
		if left == 0 {
			t.Errorf("the first delivery came only after all %d spill files were replayed", n)
		}
	default:
		t.Fatal("the daemon delivered nothing")
	}
	if left := countSpillFiles(t, h); left == 0 {
		t.Errorf("asked to stop at the first delivery, the daemon still replayed all %d spill files", n)
	}
}

// TestSpillReplayCancelled: a round of replay asked to stop moves nothing
// more and says that files are left.
func TestSpillReplayCancelled(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	writeSpillFiles(t, h, "s", 10, `{}`)
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := replaySpill(ctx, h, ob)
	if err != nil || r.moved != 0 || !r.more {
		t.Errorf("replaySpill on a cancelled context = %+v, %v; want nothing moved and more left", r, err)
	}
	if n := countSpillFiles(t, h); n != 10 {
		t.Errorf("%d spill files left, want 10", n)
	}
}

// TestOversizedSpillFile: a spill file larger than enqueue ever writes (a
// sparse 1 GiB one here) becomes a dead letter without being read, and a
// spill file whose payload enqueue would not have queued (over 1 MiB, not
// JSON) becomes a dead letter rather than an event.
func TestOversizedSpillFile(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	writeSpillFiles(t, h, "big", 1, `{"big":"`+strings.Repeat("x", maxPayload)+`"}`)
	writeSpillFiles(t, h, "broken", 1, `{"broken":`)
	huge := filepath.Join(h.path(spillDirName), newEventID(time.Now())+".json")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	outFile := filepath.Join(t.TempDir(), "out.jsonl")
	mustCLI(t, "drain", "--endpoint", fileURL(outFile))
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Errorf("replay allocated %d MiB: the 1 GiB spill file was read", grew>>20)
	}
	if lines := readLines(t, outFile); len(lines) != 0 {
		t.Errorf("the endpoint got %d events, want none", len(lines))
	}
	dead := deadLetters(t)
	if len(dead) != 3 {
		t.Fatalf("dead letters %+v, want 3", dead)
	}
	var reasons []string
	for _, d := range dead {
		reasons = append(reasons, d.LastError)
		payload, _, _ := cli(t, "", "outbox", "show", d.ID)
		if strings.Contains(d.LastError, "spill file") && len(payload) > 0 {
			t.Errorf("the dead letter of the huge spill file holds %d bytes of it", len(payload))
		}
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"larger than 1 MiB", "not one valid JSON value", "1.0 GiB"} {
		if !strings.Contains(all, want) {
			t.Errorf("no dead letter says %q:\n%s", want, all)
		}
	}
	// The huge file is kept aside, whole, for a person to look at.
	if fi, err := os.Stat(huge + ".toobig"); err != nil || fi.Size() != 1<<30 {
		t.Errorf("the huge spill file was not set aside whole: %v", err)
	}
	if n := countSpillFiles(t, h); n != 0 {
		t.Errorf("%d spill files left", n)
	}
}

// TestStaleSpillTempRemoved: a temporary file left in spill/ by an enqueue
// killed mid-write is removed when the daemon starts, once it is old enough
// that no live enqueue can be writing it; a fresh one is left alone.
func TestStaleSpillTempRemoved(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	dir := h.path(spillDirName)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "."+newEventID(time.Now())+".json.tmp123")
	fresh := filepath.Join(dir, "."+newEventID(time.Now())+".json.tmp456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte(`{"id":`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * spillTempStale)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	inProcessDaemon(t)
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file still there after the daemon started (%v)", err)
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Errorf("fresh temp file removed: %v", err)
	}
}

// spillStatus reads what status says of the outbox and the spill folder.
func spillStatus(t *testing.T) (state string, dead int64, spilled, unreadable int, why string) {
	t.Helper()
	out, _, _ := cli(t, "", "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	o := rep.Outbox
	return rep.Daemon.State, o.Dead, o.Spilled, o.SpillUnreadable, o.SpillError
}

// TestSpillUnreadableKept: a spill file that cannot be read now (here a
// folder under a spill file's name, which reads as an error even as root)
// stays where it is, is counted by status and doctor, and is delivered
// once it can be read; a spill file that holds no event becomes a dead
// letter of its bytes, visible in 'outbox list' and status. Once both are
// settled, every event handed over is delivered or a dead letter.
func TestSpillUnreadableKept(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	dir := h.path(spillDirName)
	stuck := filepath.Join(dir, newEventID(time.Now())+".json")
	if err := os.MkdirAll(stuck, 0o700); err != nil {
		t.Fatal(err)
	}
	garbage := []byte("not an event \x00\xff")
	if err := os.WriteFile(filepath.Join(dir, "garbage.json"), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	ep := newEndpoint(t, nil)
	startDaemon(t, "--endpoint", ep.URL)

	// Status counts what no endpoint receives: poll it.
	waitFor(t, 30*time.Second, "status to count the unreadable spill file and the dead letter", func() bool {
		_, dead, _, unreadable, _ := spillStatus(t)
		return unreadable == 1 && dead == 1
	})
	if fi, err := os.Stat(stuck); err != nil || !fi.IsDir() {
		t.Fatalf("the spill file that could not be read was moved: %v", err)
	}
	state, _, waiting, _, why := spillStatus(t)
	if state != "running" || waiting != 1 || why == "" {
		t.Errorf("status: daemon %s, %d spilled, error %q; want running, 1 spilled and why", state, waiting, why)
	}
	if out, _, _ := cli(t, "", "doctor"); !strings.Contains(out, "warn spill: 1 of 1 file") {
		t.Errorf("doctor does not warn of the unreadable spill file:\n%s", out)
	}
	dead := deadLetters(t)
	if len(dead) != 1 || dead[0].ID != "spill-garbage" || !strings.Contains(dead[0].LastError, "holds no event") {
		t.Fatalf("dead letters %+v, want spill-garbage, which holds no event", dead)
	}
	if got, _, _ := cli(t, "", "outbox", "show", "spill-garbage"); got != string(garbage) {
		t.Errorf("outbox show spill-garbage = %q, want the file's bytes %q", got, garbage)
	}
	if _, err := os.Stat(filepath.Join(dir, "garbage.json")); !os.IsNotExist(err) {
		t.Errorf("garbage.json is still in the spill folder (%v)", err)
	}

	// The fault passes: the spill file is there to read. An enqueue wakes
	// the daemon.
	if err := os.Remove(stuck); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(spilled{ID: "kept-1", Kind: "event", CreatedAt: time.Now(), Payload: `{"kept":1}`})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(stuck, data); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "enqueue", "--id", "wake-1", `{"wake":1}`)
	got := ep.awaitIDs(t, 30*time.Second, "kept-1", "wake-1")
	// Nothing signals a change in what status reports: poll it.
	waitFor(t, 30*time.Second, "status to count no unreadable spill file", func() bool {
		_, _, waiting, unreadable, _ := spillStatus(t)
		return unreadable == 0 && waiting == 0
	})
	// Handed over: kept-1, wake-1 and garbage.json.
	if c := outboxCounts(t, h.dir); len(got)+int(c.Dead) != 3 || c.Pending != 0 {
		t.Errorf("accounting: 3 handed over, %d delivered + %d dead letters, %d pending", len(got), c.Dead, c.Pending)
	}
}

// TestOldBadSpillFilesReplayed: spill files an older release set aside as
// .bad (for any error, a passing one too) are read again: an event goes
// into the outbox, and bytes that hold no event become a dead letter.
func TestOldBadSpillFilesReplayed(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	dir := h.path(spillDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(spilled{ID: "was-bad", Kind: "event", CreatedAt: time.Now(), Payload: `{"ok":1}`})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"a.json.bad": good, "b.json.bad": []byte(`{"id":`)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	if n := replayAll(t, h, ob); n != 2 {
		t.Errorf("replayed %d, want both .bad files", n)
	}
	if e, ok, err := ob.event("was-bad"); err != nil || !ok || e.State != statePending {
		t.Errorf("event of a.json.bad: %+v, %v, %v; want it pending", e, ok, err)
	}
	if e, ok, err := ob.event("spill-b"); err != nil || !ok || e.State != stateDead || string(e.Payload) != `{"id":` {
		t.Errorf("dead letter of b.json.bad: %+v, %v, %v; want its bytes, dead", e, ok, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spill folder still holds %d files", len(left))
	}
}

// awaitIDs waits, up to timeout, until the endpoint has received every one
// of ids, and returns the ids it received meanwhile.
func (ep *endpoint) awaitIDs(t *testing.T, timeout time.Duration, ids ...string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	deadline := time.After(timeout)
	for _, id := range ids {
		for !got[id] {
			select {
			case r := <-ep.got:
				for _, id := range r.ids() {
					got[id] = true
				}
			case <-deadline:
				t.Fatalf("after %s the endpoint got %v, want %v", timeout, got, ids)
			}
		}
	}
	return got
}
