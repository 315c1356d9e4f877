package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// downable is an endpoint that answers 503 while down, and otherwise hands
// the request to rec.
type downable struct {
	down atomic.Bool
	rec  *recorder
}

func (d *downable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	d.rec.ServeHTTP(w, r)
}

// count is how many distinct events rec received, and how many times in
// all.
func (rec *recorder) count() (distinct, total int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen), rec.total
}

// fileIDs counts the event ids a file: sink appended.
func fileIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil {
		return seen
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ ID string }
		if line != "" && json.Unmarshal([]byte(line), &e) == nil {
			seen[e.ID]++
		}
	}
	return seen
}

// TestSinksIndependent runs a daemon with three sinks, the top-level
// endpoint (HTTP), a file: sink and an HTTP sink that answers 503 for as
// long as the others take to receive everything: they receive every
// event exactly once while it is down, and once it comes back it
// receives every event too, exactly once.
func TestSinksIndependent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	main := newRecorder(0)
	mainSrv := httptest.NewServer(main)
	defer mainSrv.Close()
	dead := &downable{rec: newRecorder(0)}
	dead.down.Store(true)
	deadSrv := httptest.NewServer(dead)
	defer deadSrv.Close()
	archive := filepath.Join(t.TempDir(), "archive.jsonl")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("endpoint = %q\n\n[[sink]]\nname = \"archive\"\nendpoint = %q\n\n[[sink]]\nname = \"backup\"\nendpoint = %q\n",
		mainSrv.URL, fileURL(archive), deadSrv.URL)
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n / 2 {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("e%02d", i), `{"i":1}`)
	}
	e.inProcessDaemon("--tick", "1h")
	for i := n / 2; i < n; i++ {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("e%02d", i), `{"i":1}`)
	}
	waitFor(t, 30*time.Second, "the live sinks to receive every event", func() bool {
		d, _ := main.count()
		return d == n && len(fileIDs(t, archive)) == n
	})
	if d, total := main.count(); d != n || total != n {
		t.Errorf("default sink: %d events, %d deliveries; want %d once each", d, total, n)
	}
	for id, k := range fileIDs(t, archive) {
		if k != 1 {
			t.Errorf("archive sink: %s appended %d times", id, k)
		}
	}
	if d, _ := dead.rec.count(); d != 0 {
		t.Fatalf("the down sink received %d events", d)
	}
	// The outbox still holds every event: the down sink waits for them.
	c := outboxCounts(t, dir)
	if c.Pending+c.Inflight+c.Dead != 0 {
		t.Logf("outbox counts as the primary sees them: %+v", c)
	}
	// status exits 4 here: the daemon runs in this process, whose PID
	// file it cannot verify; the outbox part is what is looked at.
	bySink := map[string]sinkStatus{}
	// A file: sink's lines are written before its batch is settled:
	// status counts it delivered a moment after the file holds it.
	waitFor(t, 10*time.Second, "the archive sink's last batch to be settled", func() bool {
		var rep statusReport
		statusJSON, _, _ := e.cli("", "status", "--json")
		if err := json.Unmarshal([]byte(statusJSON), &rep); err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.Sinks {
			bySink[s.Name] = s
		}
		return bySink["archive"].Delivered == n
	})
	if b := bySink["backup"]; b.Pending+b.Inflight != n || b.OldestPendingAgeSeconds <= 0 || b.Delivered != 0 {
		t.Errorf("status of the down sink: %+v, want %d pending, an age, none delivered", b, n)
	}
	if a := bySink["archive"]; a.Pending+a.Inflight != 0 || a.Delivered != n {
		t.Errorf("status of the archive sink: %+v, want nothing pending, %d delivered", a, n)
	}
	if text, _, _ := e.cli("", "status"); !strings.Contains(text, "sink backup: ") || !strings.Contains(text, "sink archive: ") {
		t.Errorf("status shows no line per sink:\n%s", text)
	}
	dead.down.Store(false)
	waitFor(t, 60*time.Second, "the sink that came back to receive every event", func() bool {
		d, _ := dead.rec.count()
		return d == n
	})
	if d, total := dead.rec.count(); d != n || total != n {
		t.Errorf("backup sink: %d events, %d deliveries; want %d once each", d, total, n)
	}
	if d, total := main.count(); total != n {
		t.Errorf("default sink got %d deliveries of %d events after the other came back; want %d", total, d, n)
	}
	// Every sink has everything: nothing is left in the outbox.
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool {
		ob := mustOutbox(t, mustOpenHome(t, dir), time.Now)
		defer ob.Close()
		var rows int64
		err := sqlitex.Execute(ob.conn, `SELECT count(*) FROM events`, &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { rows = stmt.ColumnInt64(0); return nil },
		})
		return err == nil && rows == 0
	})
}

// TestUpgradeV3OutboxDelivers opens an outbox as the release before sinks
// wrote it (schema version 3: schemaSQL alone) with events pending, one in
// flight when its daemon died and a dead letter, with the new daemon: it
// delivers the pending and the inflight ones to the configured sink, keeps
// the dead letter, and sends it too once retried.
func TestUpgradeV3OutboxDelivers(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	h := mustOpenHomeCreate(t, dir)
	conn, err := openConn(h.path(dbFileName), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.ExecuteScript(conn.Conn, schemaSQL+`
INSERT INTO events (id, kind, payload, created_at, available_at) VALUES ('p1', 'k', CAST('{"a":1}' AS BLOB), 1, 1);
INSERT INTO events (id, kind, payload, created_at, available_at) VALUES ('p2', 'k', CAST('{"a":2}' AS BLOB), 2, 2);
INSERT INTO events (id, kind, payload, created_at, available_at, state, attempts, claim) VALUES ('f1', 'k', CAST('{"a":3}' AS BLOB), 3, 99999999999999, 1, 1, 'tok');
INSERT INTO events (id, kind, payload, created_at, available_at, state, attempts, last_error) VALUES ('d1', 'k', CAST('{"a":4}' AS BLOB), 4, 4, 2, 3, 'rejected');
`, nil)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(fmt.Sprintf("endpoint = %q\n", fileURL(out))), 0o600); err != nil {
		t.Fatal(err)
	}
	e.inProcessDaemon("--tick", "1h")
	waitFor(t, 20*time.Second, "the pending and inflight events", func() bool { return len(fileIDs(t, out)) == 3 })
	if dl := e.deadLetters(); len(dl) != 1 || dl[0].ID != "d1" {
		t.Fatalf("dead letters after the upgrade: %+v, want d1", dl)
	}
	e.mustCLI("outbox", "retry", "--all")
	waitFor(t, 20*time.Second, "the retried dead letter", func() bool { return len(fileIDs(t, out)) == 4 })
	for id, k := range fileIDs(t, out) {
		if k != 1 {
			t.Errorf("%s delivered %d times", id, k)
		}
	}
}

// sinkHome writes config.toml with the top-level endpoint and [[sink]]
// tables (name, endpoint) in a data home of the test's own, and returns
// the environment that names it (testEnv).
func sinkHome(t *testing.T, endpoint string, sinks ...[2]string) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	dir := e.home
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("endpoint = %q\n", endpoint)
	for _, s := range sinks {
		conf += fmt.Sprintf("\n[[sink]]\nname = %q\nendpoint = %q\n", s[0], s[1])
	}
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// gapsOf are the gaps rec received.
func (rec *recorder) gapsOf() []gap {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []gap
	for _, n := range rec.gaps {
		out = append(out, gap{Evicted: int64(n)})
	}
	return out
}

// TestSinkBehindEvictsOnlyItsOwn fills an outbox past max_size while one
// sink of two is down: what goes is what only that sink waits for, the
// other receives everything and no gap, and the one that comes back
// receives the rest and a gap that accounts exactly for what it missed.
func TestSinkBehindEvictsOnlyItsOwn(t *testing.T) {
	t.Parallel()
	live := newRecorder(0)
	liveSrv := httptest.NewServer(live)
	defer liveSrv.Close()
	dead := &downable{rec: newRecorder(0)}
	dead.down.Store(true)
	deadSrv := httptest.NewServer(dead)
	defer deadSrv.Close()
	e := sinkHome(t, liveSrv.URL, [2]string{"backup", deadSrv.URL})
	e.inProcessDaemon("--tick", "1h", "--max-size", "1MiB")
	const n = 600 // 4 KB each: more than twice max_size
	payload := `{"pad":"` + strings.Repeat("x", 4000) + `"}`
	for i := range n {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("e%03d", i), payload)
	}
	waitFor(t, 60*time.Second, "the live sink to receive every event", func() bool {
		d, _ := live.count()
		return d == n
	})
	waitFor(t, 30*time.Second, "an eviction for the down sink", func() bool {
		var rep statusReport
		out, _, _ := e.cli("", "status", "--json")
		return json.Unmarshal([]byte(out), &rep) == nil && len(rep.Sinks) == 1 && rep.Sinks[0].Evicted > 0
	})
	dead.down.Store(false)
	waitFor(t, 60*time.Second, "the sink that came back to receive the rest and a gap", func() bool {
		d, _ := dead.rec.count()
		gaps := dead.rec.gapsOf()
		var evicted int
		for _, g := range gaps {
			evicted += int(g.Evicted)
		}
		return len(gaps) > 0 && d-len(gaps)+evicted == n
	})
	if d, total := live.count(); d != n || total != n || len(live.gapsOf()) != 0 {
		t.Errorf("live sink: %d events, %d deliveries, %d gaps; want %d once each and no gap", d, total, len(live.gapsOf()), n)
	}
	d, total := dead.rec.count()
	if total != d {
		t.Errorf("the sink that came back got %d deliveries of %d events", total, d)
	}
	checkAccounting(t, n, int64(d-len(dead.rec.gapsOf())), 0, dead.rec.gapsOf())
	t.Logf("the sink that came back: %d events delivered, %d in %d gaps", d-len(dead.rec.gapsOf()), n-(d-len(dead.rec.gapsOf())), len(dead.rec.gapsOf()))
}

// TestSinkFlag dead-letters every event for one sink of two (it answers
// 422), and looks at, retries and drains that sink alone with --sink:
// the other sink's progress is never touched.
func TestSinkFlag(t *testing.T) {
	t.Parallel()
	var refuse atomic.Bool
	refuse.Store(true)
	rec := newRecorder(0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			http.Error(w, "no", http.StatusUnprocessableEntity)
			return
		}
		rec.ServeHTTP(w, r)
	}))
	defer srv.Close()
	archive := filepath.Join(t.TempDir(), "a.jsonl")
	e := sinkHome(t, fileURL(archive), [2]string{"picky", srv.URL})
	const n = 5
	for i := range n {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("e%d", i), `{"i":1}`)
	}
	if _, errOut, code := e.cli("", "drain"); code != 1 || !strings.Contains(errOut, "5 events dead-lettered") {
		t.Fatalf("drain: exit %d, %s; want 1 and the dead letters", code, errOut)
	}
	if got := fileIDs(t, archive); len(got) != n {
		t.Fatalf("the default sink got %d events, want %d", len(got), n)
	}
	var list struct {
		Counts      counts       `json:"counts"`
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(e.mustCLI("outbox", "list", "--json", "--sink", "picky")), &list); err != nil {
		t.Fatal(err)
	}
	if list.Counts.Dead != n || len(list.DeadLetters) != n || list.DeadLetters[0].Sink != "picky" {
		t.Fatalf("outbox list --sink picky: %+v", list)
	}
	if err := json.Unmarshal([]byte(e.mustCLI("outbox", "list", "--json", "--sink", "default")), &list); err != nil || list.Counts.Dead != 0 || len(list.DeadLetters) != 0 {
		t.Fatalf("outbox list --sink default: %+v, %v; want no dead letter", list, err)
	}
	if _, _, code := e.cli("", "outbox", "list", "--sink", "nope"); code != 2 {
		t.Errorf("outbox list --sink nope: exit %d, want 2", code)
	}
	refuse.Store(false)
	if out := e.mustCLI("outbox", "retry", "--sink", "picky", "--all"); !strings.HasPrefix(out, "5 dead letters back") {
		t.Errorf("outbox retry --sink picky: %q", out)
	}
	if out := e.mustCLI("drain", "--sink", "picky"); !strings.Contains(out, "delivered 5 events") {
		t.Errorf("drain --sink picky: %q", out)
	}
	if d, total := rec.count(); d != n || total != n {
		t.Errorf("picky got %d events in %d deliveries, want %d once each", d, total, n)
	}
	if got := fileIDs(t, archive); len(got) != n {
		t.Errorf("the default sink has %d events after picky's drain, want %d", len(got), n)
	}
	if out := e.mustCLI("outbox", "purge", "--dead", "--yes", "--sink", "picky"); out != "purged 0 dead letters\n" {
		t.Errorf("purge: %q", out)
	}
}

// TestDoctorChecksEachSink runs doctor with a sink that answers and one
// whose folder cannot be written: each has its own line, and the broken
// one fails the check.
func TestDoctorChecksEachSink(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newRecorder(0))
	defer srv.Close()
	e := sinkHome(t, srv.URL, [2]string{"archive", fileURL(filepath.Join(t.TempDir(), "no", "such", "dir", "a.jsonl"))})
	out, _, _ := e.cli("", "doctor")
	if !regexpMatch(`(?m)^ok +endpoint http://127\.0\.0\.1:\d+: reachable`, out) {
		t.Errorf("no line for the default sink:\n%s", out)
	}
	if !regexpMatch(`(?m)^FAIL +sink archive .*folder not writable`, out) {
		t.Errorf("no failing line for the archive sink:\n%s", out)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// TestSinkSeesEventsAfterOutboxEmptied empties the outbox through every
// sink, then queues more: SQLite gives a new row the rowid one above the
// largest left, so without care the new events would get seqs a
// secondary's hwm already passed, and it would never receive them.
func TestSinkSeesEventsAfterOutboxEmptied(t *testing.T) {
	t.Parallel()
	h := home{dir: t.TempDir()}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	q := &sinkQueue{ob: ob, name: "second"}
	drainBoth := func(want int) {
		t.Helper()
		for _, qu := range []queue{ob, q} {
			tok, evs, err := qu.claim(100, maxBatchBytes, claimLease)
			if err != nil || len(evs) != want {
				t.Fatalf("%T claimed %d events, %v; want %d", qu, len(evs), err, want)
			}
			if err := qu.immediate(func() error { return qu.ack(tok, evs) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := range 2 {
		for i := range 3 {
			if err := ob.insert(fmt.Sprintf("r%d-%d", round, i), "event", []byte(`{}`), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		drainBoth(3)
	}
}

// TestUpgradeFromMainsOutbox opens an outbox that main's binary wrote
// before sinks (testdata/upgrade-v3: outbox.db and outbox.id as 'difflore
// enqueue' and 'drain' left them: p1 and p2 pending, d1 dead-lettered by
// a 422, r1 a hook's payload that is not JSON) with a daemon of this
// release: p1 and p2 reach the configured sink, the dead letters stay, and
// d1 goes too once retried; r1 can never be sent.
func TestUpgradeFromMainsOutbox(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{dbFileName, "outbox.id"} {
		b, err := os.ReadFile(filepath.Join("testdata", "upgrade-v3", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(fmt.Sprintf("endpoint = %q\n", fileURL(out))), 0o600); err != nil {
		t.Fatal(err)
	}
	e.inProcessDaemon("--tick", "1h")
	waitFor(t, 20*time.Second, "p1 and p2", func() bool { return len(fileIDs(t, out)) == 2 })
	dead := map[string]bool{}
	for _, d := range e.deadLetters() {
		dead[d.ID] = true
	}
	if len(dead) != 2 || !dead["d1"] || !dead["r1"] {
		t.Fatalf("dead letters after the upgrade: %v, want d1 and r1", dead)
	}
	e.mustCLI("outbox", "retry", "--all")
	waitFor(t, 20*time.Second, "d1, retried", func() bool { return fileIDs(t, out)["d1"] == 1 })
	got := fileIDs(t, out)
	if len(got) != 3 || got["p1"] != 1 || got["p2"] != 1 {
		t.Errorf("delivered %v, want p1, p2 and d1 once each", got)
	}
	ob := mustOutbox(t, mustOpenHome(t, dir), time.Now)
	defer ob.Close()
	if v, err := userVersion(ob.conn); err != nil || v != schemaVersion {
		t.Errorf("schema version %d, %v; want %d", v, err, schemaVersion)
	}
}

// TestSinkStatusWhenStopped: with no daemon running, status does not call
// a sink that delivered once "delivering" (nothing delivers), prints no
// empty endpoint, and writes the sink's last delivery as the first sink's.
func TestSinkStatusWhenStopped(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	files := t.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("endpoint = %q\n\n[[sink]]\nname = \"archive\"\nendpoint = %q\n",
		fileURL(filepath.Join(files, "a.jsonl")), fileURL(filepath.Join(files, "b.jsonl")))
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustCLI("enqueue", `{"a":1}`)
	e.mustCLI("drain")
	out, _, _ := e.cli("", "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Sinks) != 1 {
		t.Fatalf("status --json: %v, %d sinks\n%s", err, len(rep.Sinks), out)
	}
	if rep.Sinks[0].State != "stopped" {
		t.Errorf("sink archive with no daemon: state %q, want stopped", rep.Sinks[0].State)
	}
	text, _, _ := e.cli("", "status")
	line := regexp.MustCompile(`(?m)^sink archive: .*$`).FindString(text)
	if !strings.HasPrefix(line, "sink archive: stopped,") || strings.Contains(line, "; ;") || regexp.MustCompile(`\.\d{4,}Z`).MatchString(line) {
		t.Errorf("status, sink line: %q", line)
	}
}

// TestStatusListsConfiguredSinks: a sink in config.toml that no daemon has
// taken up yet (none ran, or it was added since the daemon started) is
// listed by status, as not started, beside those the outbox knows; a new
// user who adds one sees it at once.
func TestStatusListsConfiguredSinks(t *testing.T) {
	t.Parallel()
	e := sinkHome(t, "http://127.0.0.1:9/ingest", [2]string{"backup", "http://127.0.0.1:9/other"})
	e.mustCLI("enqueue", `{"n":1}`)
	out, _, _ := e.cli("", "status")
	if !regexpMatch(`(?m)^sink backup: not started .*127\.0\.0\.1:9/other`, out) {
		t.Errorf("status does not list the configured sink backup as not started:\n%s", out)
	}
	js, _, _ := e.cli("", "status", "--json")
	var rep struct {
		Sinks []sinkStatus `json:"sinks"`
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	if len(rep.Sinks) != 1 || rep.Sinks[0].Name != "backup" || rep.Sinks[0].State != "not_started" {
		t.Errorf("status --json sinks %+v, want backup, not_started", rep.Sinks)
	}
}

// TestStatusFirstSinkTableBeforeAnyDaemon: with no endpoint key, the first
// [[sink]] table is the first sink. Before any daemon ran, status shows
// its endpoint as the one a daemon started now would use, not "(none)",
// and lists the other table as not started.
func TestStatusFirstSinkTableBeforeAnyDaemon(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	archive := fileURL(filepath.Join(t.TempDir(), "archive.jsonl"))
	conf := fmt.Sprintf("[[sink]]\nname = \"live\"\nendpoint = \"http://127.0.0.1:9/ingest\"\n\n[[sink]]\nname = \"archive\"\nendpoint = %q\n", archive)
	if err := os.WriteFile(filepath.Join(e.home, configFileName), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustCLI("enqueue", `{"n":1}`)
	out, _, _ := e.cli("", "status")
	if !regexpMatch(`(?m)^endpoint: http://127\.0\.0\.1:9/ingest \(from config\)$`, out) {
		t.Errorf("status does not show the first [[sink]] table's endpoint:\n%s", out)
	}
	if !regexpMatch(`(?m)^sink archive: not started`, out) {
		t.Errorf("status does not list the second table as not started:\n%s", out)
	}
	js, _, _ := e.cli("", "status", "--json")
	var rep struct {
		Endpoint       *string `json:"endpoint"`
		EndpointSource string  `json:"endpoint_source"`
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	if rep.Endpoint == nil || *rep.Endpoint != "http://127.0.0.1:9/ingest" || rep.EndpointSource != "config" {
		t.Errorf("status --json endpoint %v from %q, want the first table's, from config\n%s", rep.Endpoint, rep.EndpointSource, js)
	}
}

// TestSecondaryCommitsAreNoNews: an event for a daemon with two sinks
// costs its loop two drain passes, as with one sink: the one its wake-up
// starts, which delivers it, and one that finds nothing more. The second
// sink's drainer commits its claim and its settlement on a connection of
// its own while that pass runs; those commits are the daemon's own, not
// news that the loop must make another pass for (and housekeep again),
// which took CPU from the sinks delivering the event
// (BenchmarkSinksLatency).
func TestSecondaryCommitsAreNoNews(t *testing.T) {
	t.Parallel()
	first, second := newArrivals(), newArrivals()
	epFirst, epSecond := newEndpoint(t, first.script(200)), newEndpoint(t, second.script(200))
	e := sinkHome(t, epFirst.URL, [2]string{"second", epSecond.URL})
	logs := e.inProcessDaemon("--tick", "1h", "--log-level", "debug")
	// idle says whether the daemon's last word is that it sleeps until
	// news: it makes no pass until a wake-up comes.
	idle := func() bool {
		s := logs.String()
		return strings.LastIndex(s, idleLine) > strings.LastIndex(s, "drain pass")
	}
	waitFor(t, 10*time.Second, "the daemon to go idle after its start", idle)
	for i := range 3 {
		before := strings.Count(logs.String(), "drain pass")
		id := fmt.Sprintf("one-pass-%d", i)
		e.mustCLI("enqueue", "--id", id, `{"n":1}`)
		first.await(t, id, 10*time.Second)
		second.await(t, id, 10*time.Second)
		waitFor(t, 10*time.Second, "the daemon to go idle after the event", func() bool {
			return strings.Count(logs.String(), "drain pass") > before && idle()
		})
		if n := strings.Count(logs.String(), "drain pass") - before; n != 2 {
			t.Errorf("event %d: %d drain passes, want 2: the one its wake-up started and the one after a delivery", i, n)
		}
	}
}
