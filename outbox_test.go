package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// testOutbox opens a fresh outbox in a test home, on a fake clock.
func testOutbox(t *testing.T) (*outbox, *fakeClock, home) {
	t.Helper()
	h, err := openHome(testHome(t), true)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	ob, err := openOutbox(h, time.Second, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob, clk, h
}

func insertN(t *testing.T, ob *outbox, at time.Time, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := ob.insert(id, "k", []byte(`{"id":"`+id+`"}`), at); err != nil {
			t.Fatal(err)
		}
	}
}

func mustCounts(t *testing.T, ob *outbox) counts {
	t.Helper()
	c, err := ob.counts()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClaimOrderLimitAndAttempts(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	insertN(t, ob, clk.now(), "a", "b", "c")
	insertN(t, ob, clk.now().Add(time.Minute), "later") // created in the future: not ready yet
	if err := ob.insert("a", "k", []byte(`{"dup":1}`), clk.now()); err != nil {
		t.Fatal(err)
	}
	tok, evs, err := ob.claim(2, maxBatchBytes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(eventIDs(evs), []string{"a", "b"}) || tok == "" {
		t.Fatalf("claim(2) = %v, want [a b]", eventIDs(evs))
	}
	if string(evs[0].Payload) != `{"id":"a"}` || evs[0].Attempt != 1 || evs[0].Kind != "k" || !evs[0].CreatedAt.Equal(clk.now()) {
		t.Errorf("claimed %+v; a repeated id must not replace the first", evs[0])
	}
	_, evs, _ = ob.claim(10, maxBatchBytes, time.Minute)
	if !slices.Equal(eventIDs(evs), []string{"c"}) {
		t.Errorf("second claim = %v, want [c]: claimed and future events are not ready", eventIDs(evs))
	}
	if c := mustCounts(t, ob); c.Pending != 1 || c.Inflight != 3 {
		t.Errorf("counts %+v", c)
	}
	if at, ok, err := ob.nextAvailable(); err != nil || !ok || !at.Equal(clk.now().Add(time.Minute)) {
		t.Errorf("nextAvailable = %v %v %v, want the future event's time", at, ok, err)
	}
}

func TestClaimTokenGuards(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	insertN(t, ob, clk.now(), "a", "b")
	tok1, evs1, err := ob.claim(10, maxBatchBytes, time.Minute)
	if err != nil || len(evs1) != 2 {
		t.Fatal(evs1, err)
	}
	// The lease runs out (a stuck request): the next claim takes the
	// events again under a new token.
	clk.advance(2 * time.Minute)
	tok2, evs2, err := ob.claim(10, maxBatchBytes, time.Minute)
	if err != nil || len(evs2) != 2 || tok2 == tok1 || evs2[0].Attempt != 2 {
		t.Fatalf("reclaim: %v %v", evs2, err)
	}
	// Whatever the old claim now says about them is ignored.
	if err := ob.ack(tok1, evs1); err != nil {
		t.Fatal(err)
	}
	if err := ob.bury(tok1, evs1, "late"); err != nil {
		t.Fatal(err)
	}
	if err := ob.release(tok1, evs1, clk.now(), true, "late"); err != nil {
		t.Fatal(err)
	}
	if c := mustCounts(t, ob); c.Inflight != 2 || c.Dead != 0 || c.Pending != 0 {
		t.Fatalf("a stale token changed events: %+v", c)
	}
	if err := ob.ack(tok2, evs2[:1]); err != nil {
		t.Fatal(err)
	}
	if err := ob.release(tok2, evs2[1:], clk.now().Add(time.Second), false, ""); err != nil {
		t.Fatal(err)
	}
	if c := mustCounts(t, ob); c.Pending != 1 || c.Inflight != 0 {
		t.Errorf("after ack and release: %+v", c)
	}
	if got := rowOf(t, ob.conn, "b"); got.attempts != 1 || got.lastError != "" || !got.availableAt.Equal(clk.now().Add(time.Second)) {
		t.Errorf("uncounted release: %+v, want the attempt given back", got)
	}
}

func TestReleaseKeepsLastError(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	insertN(t, ob, clk.now(), "a")
	tok, evs, _ := ob.claim(1, maxBatchBytes, time.Minute)
	ob.release(tok, evs, clk.now(), true, "500 first")
	tok, evs, _ = ob.claim(1, maxBatchBytes, time.Minute)
	ob.release(tok, evs, clk.now(), false, "")
	if got := rowOf(t, ob.conn, "a"); got.lastError != "500 first" || got.attempts != 1 {
		t.Errorf("%+v, want the first error kept and one attempt", got)
	}
}

func TestResetInflight(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	insertN(t, ob, clk.now(), "a", "b")
	if _, _, err := ob.claim(10, maxBatchBytes, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := ob.resetInflight(); err != nil {
		t.Fatal(err)
	}
	_, evs, err := ob.claim(10, maxBatchBytes, time.Hour)
	if err != nil || !slices.Equal(eventIDs(evs), []string{"a", "b"}) || evs[0].Attempt != 2 {
		t.Errorf("after a restart: %v %v, want both again at attempt 2", evs, err)
	}
}

func TestClaimByteBudget(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	payload := []byte(`"` + strings.Repeat("p", 1000) + `"`)
	for i := range 10 {
		if err := ob.insert(string(rune('a'+i)), "k", payload, clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	per := len(payload) + 1 + 1 + eventOverhead
	tests := []struct{ budget, want int }{
		{per * 3, 3},
		{per*3 - 1, 2},
		{1, 1}, // one event always goes, however large
		{per * 100, 10},
	}
	for _, tt := range tests {
		tok, evs, err := ob.claim(100, tt.budget, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != tt.want {
			t.Errorf("budget %d: %d events, want %d", tt.budget, len(evs), tt.want)
		}
		if body := encodeBatch(evs); len(evs) > 1 && len(body) > tt.budget+batchFrame {
			t.Errorf("budget %d: body %d bytes", tt.budget, len(body))
		}
		ob.release(tok, evs, clk.now(), false, "")
	}
}

func buryAll(t *testing.T, ob *outbox, errMsg string) {
	t.Helper()
	tok, evs, err := ob.claim(100, maxBatchBytes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.bury(tok, evs, errMsg); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxCommands(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	clk.set(time.Now().Add(-time.Hour))
	insertN(t, ob, clk.now(), "d-1", "d-2", "d-3")
	buryAll(t, ob, "422 Unprocessable Entity: bad field\nsecond line")
	insertN(t, ob, clk.now(), "p-1")

	checkOutboxList(t)

	// An unknown id is an error, and retries nothing.
	if out, stderr, code := cli(t, "", "outbox", "retry", "d-2", "nope"); code != 1 || out != "" || !strings.Contains(stderr, `no event "nope"`) {
		t.Errorf("retry d-2 nope: exit %d, stdout %q, stderr %q; want exit 1 naming nope", code, out, stderr)
	}
	if got := rowOf(t, ob.conn, "d-2"); got.state != stateDead {
		t.Errorf("retry with an unknown id retried d-2: %+v", got)
	}
	if out := mustCLI(t, "outbox", "retry", "d-2"); out != "1 dead letter back in the queue, 0 waiting events ready now\n" {
		t.Errorf("retry d-2: %q", out)
	}
	if got := rowOf(t, ob.conn, "d-2"); got.state != statePending || got.attempts != 0 {
		t.Errorf("retried dead letter: %+v, want pending with attempts reset", got)
	}
	if _, _, code := cli(t, "", "outbox", "retry"); code != 2 {
		t.Errorf("retry with neither --all nor ids: exit %d, want 2", code)
	}
	if _, _, code := cli(t, "", "outbox", "purge", "--dead"); code != 2 {
		t.Errorf("purge without --yes: exit %d, want 2", code)
	}
	if c := mustCounts(t, ob); c.Dead != 2 {
		t.Errorf("purge without --yes deleted something: %+v", c)
	}
	if out := mustCLI(t, "outbox", "retry", "--all"); out != "2 dead letters back in the queue, 0 waiting events ready now\n" {
		t.Errorf("retry --all: %q", out)
	}
	clk.set(time.Now().Add(time.Second)) // retry made them available from the real now
	buryAll(t, ob, "dead again")
	if out := mustCLI(t, "outbox", "purge", "--dead", "--yes"); out != "purged 4 dead letters\n" {
		t.Errorf("purge: %q", out)
	}
	if c := mustCounts(t, ob); c.Dead != 0 || c.Pending != 0 {
		t.Errorf("after purge: %+v", c)
	}
}

// checkOutboxList checks 'outbox list' in JSON and as text over the outbox
// TestOutboxCommands fills: dead letters d-1 to d-3 of kind k, an hour old,
// and one pending event.
func checkOutboxList(t *testing.T) {
	t.Helper()
	var list struct {
		Counts      counts             `json:"counts"`
		Kinds       map[string]*counts `json:"kinds"`
		DeadLetters []deadLetter       `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "outbox", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if list.Counts.Dead != 3 || list.Counts.Pending != 1 || list.Kinds["k"] == nil || list.Kinds["k"].Dead != 3 || len(list.DeadLetters) != 3 {
		t.Fatalf("outbox list --json: %+v", list)
	}
	if dl := list.DeadLetters[0]; dl.ID != "d-1" || dl.Attempts != 1 || !strings.HasPrefix(dl.LastError, "422") || dl.Kind != "k" {
		t.Errorf("dead letter %+v", dl)
	}
	text := mustCLI(t, "outbox")
	for _, want := range []string{"1 pending, 0 inflight, 3 dead", "dead letters:", "d-2  k  1 attempt  1h0m0s old  422 Unprocessable Entity: bad field\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("outbox list does not show %q:\n%s", want, text)
		}
	}

}

func TestReplaySpill(t *testing.T) {
	ob, clk, h := testOutbox(t)
	insertN(t, ob, clk.now(), "already")
	created := clk.now().Add(-time.Minute)
	for _, ev := range []spilled{
		{ID: "s-1", Kind: "hook", CreatedAt: created, Payload: `{"a": 1}`},
		{ID: "already", Kind: "k", CreatedAt: created, Payload: `{"other":true}`},
	} {
		if _, err := spillEvent(h, ev); err != nil {
			t.Fatal(err)
		}
	}
	dir := h.path(spillDirName)
	for name, data := range map[string]string{
		"broken.json":   `{"id":"x"`,
		"badid.json":    `{"id":"../x","kind":"k","payload":"{}"}`,
		"badjson.json":  `{"id":"y","kind":"k","payload":"{nope"}`,
		"old.json":      `{"id":"old","kind":"k","created_at":"2026-11-25T17:00:00Z","payload":"{\"v\":1}"}`,
		"notes.txt":     `ignored`,
		".partial.json": `ignored: a temp file being written`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// s-1, already (stored once), old (as older versions wrote it),
	// badjson (a dead letter, as enqueue would have made it), and broken
	// and badid, which hold no event: dead letters of their bytes.
	if n := replayAll(t, h, ob); n != 6 {
		t.Fatalf("replayed %d, want 6", n)
	}
	// A crash between insert and remove replays a file twice: stored once.
	if _, err := spillEvent(h, spilled{ID: "s-1", Kind: "hook", CreatedAt: created, Payload: `{"a": 1}`}); err != nil {
		t.Fatal(err)
	}
	replayAll(t, h, ob)
	_, evs, err := ob.claim(100, maxBatchBytes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Replay takes the files in the folder's order; delivery goes by
	// creation time whatever the order of insertion.
	slices.SortFunc(evs, func(a, b event) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(eventIDs(evs), []string{"already", "old", "s-1"}) {
		t.Fatalf("outbox holds %v, want [already old s-1]", eventIDs(evs))
	}
	if s := evs[2]; string(s.Payload) != `{"a": 1}` || s.Kind != "hook" || !s.CreatedAt.Equal(created) {
		t.Errorf("replayed event %+v, want the spilled bytes, kind and time", s)
	}
	if string(evs[0].Payload) != `{"id":"already"}` {
		t.Errorf("a spilled duplicate replaced the queued event: %s", evs[0].Payload)
	}
	dead, err := ob.deadLetters(10)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, d := range dead {
		reasons[d.ID] = d.LastError
	}
	if len(dead) != 3 || !strings.Contains(reasons["y"], "not one valid JSON value") ||
		!strings.Contains(reasons["spill-broken"], "holds no event") || !strings.Contains(reasons["spill-badid"], "holds no event") {
		t.Errorf("dead letters %+v; want y (its payload not JSON), spill-broken and spill-badid (no event)", dead)
	}
	if e, _, err := ob.event("spill-broken"); err != nil || string(e.Payload) != `{"id":"x"` || !e.Raw {
		t.Errorf("dead letter of broken.json: %+v, %v; want its bytes, raw", e, err)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	want := []string{".partial.json", "notes.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("spill folder holds %v, want %v", names, want)
	}
}

// TestCrashingBatchIsBuried claims the same batch maxAttempts times with no
// answer, as a daemon that dies while sending it would: the next start
// dead-letters it instead of sending it first again for ever.
func TestCrashingBatchIsBuried(t *testing.T) {
	h, err := openHome(testHome(t), true)
	if err != nil {
		t.Fatal(err)
	}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	for _, id := range []string{"poison", "other"} {
		if err := ob.insert(id, "k", []byte(`{}`), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= maxAttempts; i++ {
		_, events, err := ob.claim(1, maxBatchBytes, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].ID != "poison" || events[0].Attempt != i {
			t.Fatalf("claim %d: %+v, want poison at attempt %d", i, events, i)
		}
		if err := ob.resetInflight(); err != nil { // The daemon died; the next one starts.
			t.Fatal(err)
		}
	}
	c, err := ob.counts()
	if err != nil {
		t.Fatal(err)
	}
	if c.Dead != 1 || c.Pending != 1 {
		t.Fatalf("counts %+v, want the poison batch dead and the other event pending", c)
	}
	_, events, err := ob.claim(10, maxBatchBytes, time.Hour)
	if err != nil || len(events) != 1 || events[0].ID != "other" {
		t.Fatalf("next claim: %+v, %v; want the other event", events, err)
	}
	dead, err := ob.deadLetters(10)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].LastError, "20 times") {
		t.Errorf("dead letters %+v, %v; want poison with a reason", dead, err)
	}
}

// schemaV1SQL is the outbox as difflore made it before dead letters could
// hold bytes that are not JSON (schema version 1).
const schemaV1SQL = `
CREATE TABLE events (
	seq          INTEGER PRIMARY KEY,
	id           TEXT    NOT NULL UNIQUE,
	kind         TEXT    NOT NULL,
	payload      BLOB    NOT NULL,
	created_at   INTEGER NOT NULL,
	state        INTEGER NOT NULL DEFAULT 0,
	attempts     INTEGER NOT NULL DEFAULT 0,
	available_at INTEGER NOT NULL,
	claim        TEXT,
	last_error   TEXT
) STRICT;
CREATE INDEX events_by_state ON events (state, available_at, seq);
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO events (id, kind, payload, created_at, available_at) VALUES ('old-pending', 'k', CAST('{"old":1}' AS BLOB), 1, 1);
INSERT INTO events (id, kind, payload, created_at, available_at, state, last_error) VALUES ('old-dead', 'k', CAST('{"old":2}' AS BLOB), 2, 2, 2, 'rejected');
PRAGMA user_version = 1;
`

// TestMigrateV1Outbox opens an outbox of schema version 1, as a hook meets
// it first after an upgrade: enqueue migrates it, its events are kept, and
// a dead letter that is not JSON can be stored in it and is never sent.
func TestMigrateV1Outbox(t *testing.T) {
	home := testHome(t)
	h := mustOpenHomeCreate(t, home)
	conn, err := openConn(h.path(dbFileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteTransient(conn.Conn, "PRAGMA journal_mode = WAL", nil); err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(conn.Conn, schemaV1SQL, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	if _, errOut, code := cli(t, "{", "enqueue", "--id", "raw"); code != 0 {
		t.Fatalf("enqueue into a v1 outbox: exit %d: %s", code, errOut)
	}
	mustCLI(t, "enqueue", "--id", "new", `{"new":true}`)
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	if v, err := userVersion(ob.conn); err != nil || v != schemaVersion {
		t.Errorf("schema version %d (%v), want %d", v, err, schemaVersion)
	}
	if out := mustCLI(t, "outbox", "retry", "old-dead"); out != "1 dead letter back in the queue, 0 waiting events ready now\n" {
		t.Errorf("retry of a v1 dead letter: %q", out)
	}
	_, evs, err := ob.claim(10, maxBatchBytes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(evs); !slices.Equal(got, []string{"old-pending", "old-dead", "new"}) {
		t.Errorf("claimed %v, want the v1 events and the new one, not the raw dead letter", got)
	}
	// The raw dead letter cannot be made pending, whatever the SQL.
	err = sqlitex.ExecuteTransient(ob.conn, `UPDATE events SET state = 0 WHERE id = 'raw'`, nil)
	if err == nil {
		t.Error("a dead letter that is not JSON was made pending")
	}
}

// TestOutboxRetryMovesWaiting: 'outbox retry' makes events that wait for a
// retry ready now, as well as dead letters, and says how many of each.
func TestOutboxRetryMovesWaiting(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	clk.set(time.Now())
	insertN(t, ob, clk.now(), "d-1")
	buryAll(t, ob, "dead")
	insertN(t, ob, clk.now(), "w-1", "w-2", "w-3")
	setAvailableAt(t, ob.conn, time.Now().Add(24*time.Hour))
	if out := mustCLI(t, "outbox", "retry", "w-2"); out != "0 dead letters back in the queue, 1 waiting event ready now\n" {
		t.Errorf("retry w-2: %q", out)
	}
	if out := mustCLI(t, "outbox", "retry", "--all"); out != "1 dead letter back in the queue, 2 waiting events ready now\n" {
		t.Errorf("retry --all: %q", out)
	}
	for _, id := range []string{"d-1", "w-1", "w-2", "w-3"} {
		if got := rowOf(t, ob.conn, id); got.state != statePending || got.availableAt.After(time.Now()) {
			t.Errorf("%s after retry: %+v, want pending and ready now", id, got)
		}
	}
}

// TestCountsMatchRows checks the counts (max(seq) less seq_offset, see
// countsSQL) against a count of the rows, through every way events come and
// go: a repeated id, a queue drained to empty and filled again (SQLite then
// reuses the rowids of the deleted rows), evictions, purges, and across the
// migration from version 2, which counts the rows once.
func TestCountsMatchRows(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	clk := newFakeClock()
	ob := mustOutbox(t, h, clk.now)
	defer func() { ob.Close() }()
	check := func(when string) {
		t.Helper()
		c, err := ob.counts()
		if err != nil {
			t.Fatal(err)
		}
		var scan counts
		err = sqlitex.Execute(ob.conn, `SELECT state, count(*) FROM events GROUP BY state`, &sqlitex.ExecOptions{
			ResultFunc: func(s *sqlite.Stmt) error {
				*[]*int64{&scan.Pending, &scan.Inflight, &scan.Dead}[s.ColumnInt(0)] = s.ColumnInt64(1)
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if c.Pending != scan.Pending || c.Inflight != scan.Inflight || c.Dead != scan.Dead {
			t.Errorf("%s: counted %+v, rows %+v", when, c, scan)
		}
	}
	add := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if err := ob.insert(fmt.Sprintf("%s%02d", prefix, i), "event", []byte(`{}`), clk.now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	immediate := func(fn func() error) {
		t.Helper()
		if err := ob.immediate(fn); err != nil {
			t.Fatal(err)
		}
	}
	add("e", 30)
	ob.insert("e00", "event", []byte(`{}`), clk.now()) // a repeated id, stored once
	ob.insertDead("d0", "event", []byte(`x`), clk.now(), "bad", true)
	check("inserted")
	tok, evs, err := ob.claim(10, maxBatchBytes, claimLease)
	if err != nil {
		t.Fatal(err)
	}
	check("claimed")
	immediate(func() error { return ob.ack(tok, evs[:3]) })
	immediate(func() error { return ob.ack(tok, evs[:3]) }) // a late ack deletes nothing
	ob.bury(tok, evs[3:5], "refused")
	ob.release(tok, evs[5:8], clk.now(), true, "later")
	ob.giveBack(tok, evs[8:])
	check("settled")
	if _, _, err := ob.retryDead(true, nil); err != nil {
		t.Fatal(err)
	}
	check("retried")
	ob.claim(5, maxBatchBytes, claimLease)
	ob.resetInflight()
	check("reset")
	ob.purgeDead()
	check("purged")

	// Drained to empty, newest last: the next rows reuse the seqs.
	for {
		tok, evs, err := ob.claim(100, maxBatchBytes, claimLease)
		if err != nil || len(evs) == 0 {
			break
		}
		immediate(func() error { return ob.ack(tok, evs) })
	}
	check("drained")
	add("f", 5)
	check("filled again")

	g, _, err := ob.evict(evictPlan{state: statePending, reason: reasonMaxSize,
		over: func() (int64, error) { return 1, nil }, cost: func(int64, int64) int64 { return 0 }})
	if err != nil || g.Evicted != 5 {
		t.Fatalf("evict: %+v, %v", g, err)
	}
	check("evicted")
	ob.insertDead("d1", "event", []byte(`x`), clk.now(), "bad", true)
	add("g", 3)

	// Back to version 2: no seq_offset. Reopening migrates.
	err = sqlitex.ExecuteScript(ob.conn, `DELETE FROM meta WHERE key = 'seq_offset'; DROP TABLE spans; ALTER TABLE events DROP COLUMN traceparent; DROP TABLE deliveries; DROP TABLE sinks; ALTER TABLE events DROP COLUMN sink; PRAGMA user_version = 2;`, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob.Close()
	ob = mustOutbox(t, h, clk.now)
	check("migrated from version 2")
	if c, _ := ob.counts(); c.Pending != 4 || c.Dead != 1 {
		t.Errorf("migrated counts %+v: want 4 pending (3 and the gap), 1 dead", c)
	}
}
