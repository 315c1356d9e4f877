package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// salvageEvents is how many events the corruption tests queue: of 1 KiB
// each, they span hundreds of pages.
const salvageEvents = 2000

// fillOutbox queues salvageEvents events of about pad bytes in a closed
// outbox of h, all in its main file, and returns the page size.
func fillOutbox(t *testing.T, h home, pad int) int64 {
	t.Helper()
	ob := mustOutbox(t, h, time.Now)
	padding := strings.Repeat("x", pad)
	created := time.Now().Add(-time.Hour)
	err := ob.immediate(func() error {
		for i := range salvageEvents {
			p := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, padding)
			if err := ob.insert(fmt.Sprintf("old-%04d", i), "event", []byte(p), created.Add(time.Duration(i)*time.Millisecond)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	size, err := ob.pragmaInt("page_size")
	if err != nil {
		t.Fatal(err)
	}
	// Closing the only connection checkpoints the WAL into the file.
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	return size
}

// overwrite writes b at off in the file at path.
func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// rootPage is the first page of a table's b-tree.
func rootPage(t *testing.T, db, table string) int64 {
	t.Helper()
	conn, err := sqlite.OpenConn(db, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var root int64
	err = sqlitex.ExecuteTransient(conn, "SELECT rootpage FROM sqlite_schema WHERE name = ?", &sqlitex.ExecOptions{
		Args:       []any{table},
		ResultFunc: func(stmt *sqlite.Stmt) error { root = stmt.ColumnInt64(0); return nil },
	})
	if err != nil || root == 0 {
		t.Fatalf("root page of %s: %d, %v", table, root, err)
	}
	return root
}

func garbage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + 7)
	}
	return b
}

func TestSalvageCorrupt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		corrupt  func(t *testing.T, db string, pageSize int64)
		minSaved int  // readable events that must be delivered
		lost     bool // some events are lost
		counted  bool // and the gap can count them all
		pad      int  // bytes of padding in each event, 1000 when 0
	}{
		{"middle pages garbage", func(t *testing.T, db string, ps int64) {
			fi, _ := os.Stat(db)
			mid := fi.Size() / ps / 2
			overwrite(t, db, mid*ps, garbage(int(4*ps)))
		}, salvageEvents - 100, true, true, 0},
		{"header zeroed", func(t *testing.T, db string, ps int64) {
			overwrite(t, db, 0, make([]byte, 100))
		}, salvageEvents, false, true, 0},
		{"truncated", func(t *testing.T, db string, ps int64) {
			// Cut at a page boundary, as a crash of the disk or the file
			// system leaves a file. The cut takes inner pages of the
			// b-tree, written last, and with them the way to leaves that
			// are still whole: only reading the file page by page finds
			// them.
			fi, _ := os.Stat(db)
			if err := os.Truncate(db, fi.Size()/ps*2/3*ps); err != nil {
				t.Fatal(err)
			}
		}, salvageEvents / 2, true, false, 0},
		{"root page garbage, events over a page", func(t *testing.T, db string, ps int64) {
			// No leaf can be reached through the b-tree: every event is
			// found by reading the file page by page, its payload
			// following overflow pages.
			overwrite(t, db, (rootPage(t, db, "events")-1)*ps, garbage(int(ps)))
		}, salvageEvents, false, true, 6000},
		{"wal garbage", func(t *testing.T, db string, ps int64) {
			if err := os.WriteFile(db+"-wal", garbage(int(3*ps)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, salvageEvents, false, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			dir := e.home
			e.useQuickWaits()
			h := mustOpenHomeCreate(t, dir)
			ps := fillOutbox(t, h, cmp.Or(c.pad, 1000))
			c.corrupt(t, h.path(dbFileName), ps)
			arr := newArrivals()
			ep := newEndpoint(t, arr.script(200))
			logs := e.inProcessDaemon("--endpoint", ep.URL)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("daemon log:\n%s", logs)
				}
			})
			// The new event comes while the daemon salvages, or around
			// then: wherever it lands, it must be delivered.
			e.mustCLI("enqueue", "--id", "new-after", `{"after":true}`)

			var gap gapPayload
			var saved int
			newSeen := false
			arr.awaitEvents(t, 30*time.Second, "the new event and the gap", func(evs []wireEvent) bool {
				saved, newSeen, gap = deliveredSalvage(t, evs)
				return newSeen && gap.Reason != ""
			})
			if saved < c.minSaved {
				t.Errorf("%d old events delivered, want at least %d\n%s", saved, c.minSaved, logs)
			}
			if gap.Reason != "corrupt" {
				t.Errorf("gap reason %q, want corrupt", gap.Reason)
			}
			if c.lost && gap.Evicted == 0 {
				t.Errorf("gap reports nothing lost, but %d of %d were delivered", saved, salvageEvents)
			}
			if c.counted && int(gap.Evicted) < salvageEvents-saved {
				t.Errorf("gap reports %d lost, but %d of %d were delivered", gap.Evicted, saved, salvageEvents)
			}
			aside, _ := filepath.Glob(filepath.Join(dir, "outbox.corrupt-*.db"))
			if len(aside) != 1 {
				t.Errorf("corrupt files kept aside: %q, want one", aside)
			}
			if !strings.Contains(logs.String(), "daemon ready") {
				t.Errorf("daemon not running:\n%s", logs)
			}
		})
	}
}

// deliveredSalvage reads what a salvage test delivered: how many of the
// old events, whether the new one, and the gap.
func deliveredSalvage(t *testing.T, evs []wireEvent) (saved int, newSeen bool, gap gapPayload) {
	seen := map[string]bool{}
	for _, ev := range evs {
		switch {
		case ev.Kind == gapKind:
			if err := json.Unmarshal(ev.Payload, &gap); err != nil {
				t.Fatal(err)
			}
		case ev.ID == "new-after":
			newSeen = true
		case strings.HasPrefix(ev.ID, "old-") && !seen[ev.ID]:
			seen[ev.ID] = true
			saved++
		}
	}
	return saved, newSeen, gap
}

// TestSalvageKeepsCounts salvages an outbox from which events had been
// delivered: the fresh outbox counts what it holds, not that less what
// the old file had delivered (its seq_offset), and the evictions and gaps
// the old file had counted carry over.
func TestSalvageKeepsCounts(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	fillOutbox(t, h, 100)
	ob := mustOutbox(t, h, time.Now)
	token, evs, err := ob.claim(500, 1<<30, time.Minute)
	if err != nil || len(evs) != 500 {
		t.Fatalf("claim: %d events, %v", len(evs), err)
	}
	if err := ob.ack(token, evs); err != nil {
		t.Fatal(err)
	}
	if err := ob.setMeta(map[string]string{"evicted_events": "7"}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if err := healOutbox(context.Background(), h, time.Now(), healGateWait, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	fresh := mustOutbox(t, h, time.Now)
	defer fresh.Close()
	c, err := fresh.counts()
	if err != nil {
		t.Fatal(err)
	}
	// What was left, and the corrupt gap.
	if want := int64(salvageEvents - 500 + 1); c.Pending != want {
		t.Errorf("pending after the salvage = %d, want %d", c.Pending, want)
	}
	m, err := fresh.meta()
	if err != nil || m["evicted_events"] != "7" {
		t.Errorf("evicted_events after the salvage = %q, %v; want 7", m["evicted_events"], err)
	}
	// status says that the outbox was salvaged, and where the old file is.
	var st storeStatus
	if err := fillStoreStatus(fresh, m, &st); err != nil {
		t.Fatal(err)
	}
	if st.Salvages != 1 || st.SalvageLost != 0 || !strings.HasPrefix(st.LastAside, "outbox.corrupt-") {
		t.Errorf("status after the salvage: salvages %d, lost %d, aside %q; want 1, 0, outbox.corrupt-…", st.Salvages, st.SalvageLost, st.LastAside)
	}
	var b strings.Builder
	printLimits(&b, st, func(_, s string) string { return s })
	if !strings.Contains(b.String(), "corrupt:  salvaged 1 time, lost 0 events; the last corrupt file is kept as outbox.corrupt-") {
		t.Errorf("status text does not say the outbox was salvaged:\n%s", b.String())
	}
}

// TestSalvageFails: a file that no page size makes a database is moved
// aside all the same, and the daemon starts empty with a gap that says so.
func TestSalvageFails(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	h := mustOpenHomeCreate(t, dir)
	if err := os.WriteFile(h.path(dbFileName), bytes.Repeat([]byte("not a database at all "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	e.inProcessDaemon("--endpoint", ep.URL)
	e.mustCLI("enqueue", "--id", "new-after", `{}`)
	var gap gapPayload
	arr.awaitEvents(t, 30*time.Second, "the new event and the gap", func(evs []wireEvent) bool {
		_, newSeen, g := deliveredSalvage(t, evs)
		gap = g
		return newSeen && g.Reason != ""
	})
	if gap.Bytes == 0 {
		t.Errorf("gap %+v: want the bytes of the file lost", gap)
	}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	if err := sqlitex.ExecuteTransient(ob.conn, "PRAGMA quick_check", nil); err != nil {
		t.Errorf("fresh outbox: %v", err)
	}
	// status cannot count what was lost, and must not say it lost none.
	m, err := ob.meta()
	if err != nil {
		t.Fatal(err)
	}
	var st storeStatus
	if err := fillStoreStatus(ob, m, &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printLimits(&b, st, func(_, s string) string { return s })
	if !st.SalvageLostAtLeast || !strings.Contains(b.String(), "lost at least 0 events") {
		t.Errorf("status after a salvage that read nothing does not say the count is a lower bound (%+v):\n%s", st, b.String())
	}
}

// TestCorruptEnqueueSpills: a hook's enqueue into an outbox that is not a
// database keeps the event in the spill folder and exits 0, and the daemon,
// salvaging the outbox, delivers it.
func TestCorruptEnqueueSpills(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	h := mustOpenHomeCreate(t, dir)
	ps := fillOutbox(t, h, 1000)
	overwrite(t, h.path(dbFileName), 0, make([]byte, ps))
	_, stderr, code := e.cli("", "enqueue", "--id", "spilled-1", `{"spilled":true}`)
	if code != 0 {
		t.Fatalf("enqueue exit %d: %s", code, stderr)
	}
	if files, _ := os.ReadDir(h.path(spillDirName)); len(files) == 0 {
		t.Fatalf("nothing spilled; enqueue said: %s", stderr)
	}
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	e.inProcessDaemon("--endpoint", ep.URL)
	arr.awaitEvents(t, 30*time.Second, "the spilled event and the gap", func(evs []wireEvent) bool {
		_, _, gap := deliveredSalvage(t, evs)
		spilled := false
		for _, e := range evs {
			spilled = spilled || e.ID == "spilled-1"
		}
		return gap.Reason != "" && spilled
	})
}

// lineWatch is a log writer that keeps everything written and closes seen
// at the first write that contains want; an empty want watches for nothing.
type lineWatch struct {
	want string
	seen chan struct{}
	once sync.Once
	mu   sync.Mutex
	b    strings.Builder
}

func newLineWatch(want string) *lineWatch {
	return &lineWatch{want: want, seen: make(chan struct{})}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	// Look at what p adds together with the bytes before it, so that want
	// is found even when a pipe's reads split it.
	if s := w.b.String(); w.want != "" && strings.Contains(s[max(0, len(s)-len(p)-len(w.want)):], w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// eventIDsIn lists the ids of the events in the outbox of h, and checks
// that SQLite finds the file whole.
func eventIDsIn(t *testing.T, h home) (ids map[string]bool, integrity string) {
	t.Helper()
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	err := sqlitex.ExecuteTransient(ob.conn, "PRAGMA integrity_check", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { integrity += stmt.ColumnText(0); return nil },
	})
	if err != nil {
		return nil, err.Error()
	}
	ids = map[string]bool{}
	err = sqlitex.ExecuteTransient(ob.conn, "SELECT id, kind FROM events", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			ids[stmt.ColumnText(0)] = true
			if stmt.ColumnText(1) == gapKind {
				ids[gapKind] = true
			}
			return nil
		},
	})
	if err != nil {
		return nil, err.Error()
	}
	return ids, integrity
}

// TestHealWaitsForOpenConnections: a connection that opened the outbox
// before a salvage moved it aside (an enqueue, status, doctor…) must never
// write into the fresh outbox through the old file. SQLite opens the -wal
// and -shm files by the database's name, which after the move is the fresh
// outbox's, and deletes the WAL by that name when its last connection
// closes: the fresh outbox was damaged, or the event written lost. The
// salvage must wait for such a connection to close.
func TestHealWaitsForOpenConnections(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		open func(path string) (insert func(id string) error, close func() error, err error)
	}{
		{"enqueue connection", func(path string) (func(string) error, func() error, error) {
			conn, err := openEnqueueConn(path, enqueueBusy)
			if err != nil {
				return nil, nil, err
			}
			insert := func(id string) error {
				return insertEvent(conn.Conn, id, "event", []byte(`{"held":true}`), time.Now())
			}
			return insert, conn.Close, nil
		}},
		{"connection not yet read", func(path string) (func(string) error, func() error, error) {
			conn, err := openConn(path, enqueueBusy)
			if err != nil {
				return nil, nil, err
			}
			insert := func(id string) error {
				return insertEvent(conn.Conn, id, "event", []byte(`{"held":true}`), time.Now())
			}
			return insert, conn.Close, nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := mustOpenHomeCreate(t, ownHome(t))
			fillOutbox(t, h, 100)
			insert, closeConn, err := c.open(h.path(dbFileName))
			if err != nil {
				t.Fatal(err)
			}
			closeConn = sync.OnceValue(closeConn)
			t.Cleanup(func() { closeConn() })
			logs := newLineWatch(healWaitMsg)
			healed := make(chan error, 1)
			go func() {
				healed <- healOutbox(context.Background(), h, time.Now(), healGateWait, slog.New(slog.NewTextHandler(logs, nil)))
			}()
			// The connection writes once the salvage either is done (it
			// did not wait for the connection) or says that it waits.
			var healErr error
			done := false
			select {
			case healErr = <-healed:
				done = true
			case <-logs.seen:
			case <-time.After(30 * time.Second):
				t.Fatalf("salvage neither done nor waiting after 30s\n%s", logs.String())
			}
			// The daemon works in the fresh outbox as soon as it is there.
			var daemonOb *outbox
			daemonWrites := func() {
				daemonOb = mustOutbox(t, h, time.Now)
				if err := daemonOb.insert("daemon-1", "event", []byte(`{}`), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if done && healErr == nil {
				daemonWrites()
			}
			insErr := insert("held-open")
			if err := closeConn(); err != nil {
				t.Errorf("close the connection: %v", err)
			}
			if !done {
				select {
				case healErr = <-healed:
				case <-time.After(30 * time.Second):
					t.Fatalf("salvage not done 30s after the connection closed\n%s", logs.String())
				}
				if healErr == nil {
					daemonWrites()
				}
			}
			if healErr != nil {
				t.Fatalf("salvage: %v\n%s", healErr, logs.String())
			}
			defer daemonOb.Close()
			ids, integrity := eventIDsIn(t, h)
			if integrity != "ok" {
				t.Fatalf("fresh outbox: integrity_check says %q", integrity)
			}
			if insErr == nil && !ids["held-open"] {
				t.Errorf("the event the open connection wrote (insert returned nil) is neither in the fresh outbox nor salvaged into it")
			}
			if !ids[gapKind] || !ids["daemon-1"] {
				t.Errorf("fresh outbox: gap event %v, the daemon's event %v; want both", ids[gapKind], ids["daemon-1"])
			}
			for i := range salvageEvents {
				if id := fmt.Sprintf("old-%04d", i); !ids[id] {
					t.Errorf("event %s not salvaged", id)
					break
				}
			}
		})
	}
}

// TestHealWhileHooksEnqueue: a daemon salvages a corrupt outbox while
// hooks keep calling enqueue, as processes of their own, before, during
// and after the salvage. Every enqueue exits 0 and prints nothing, and
// every event one handed over reaches the endpoint.
func TestHealWhileHooksEnqueue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		corrupt func(t *testing.T, db string, pageSize int64)
	}{
		// The daemon finds it at its first claim, and enqueues cannot
		// write into it: they spill.
		{"root page garbage", func(t *testing.T, db string, ps int64) {
			overwrite(t, db, (rootPage(t, db, "events")-1)*ps, garbage(int(ps)))
		}},
		// The daemon finds it halfway through the old events; until it
		// is moved aside, enqueues write into it, or spill where they
		// meet the damage.
		{"middle pages garbage", func(t *testing.T, db string, ps int64) {
			fi, _ := os.Stat(db)
			mid := fi.Size() / ps / 2
			overwrite(t, db, mid*ps, garbage(int(4*ps)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			dir := e.home
			e.useQuickWaits()
			h := mustOpenHomeCreate(t, dir)
			ps := fillOutbox(t, h, 1000)
			c.corrupt(t, h.path(dbFileName), ps)
			arr := newArrivals()
			ep := newEndpoint(t, arr.script(200))

			const hooks, workers = 60, 4
			type result struct {
				id, stdout, stderr string
				code               int
			}
			results := make(chan result, hooks)
			next := make(chan int)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(next)
				for i := range hooks {
					select {
					case next <- i:
					case <-stop:
						return
					}
				}
			}()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						id := fmt.Sprintf("hook-%03d", i)
						cmd := e.command("enqueue", "--id", id, fmt.Sprintf(`{"hook":%d}`, i))
						out, errOut, code := runProc(t, cmd, time.Minute)
						results <- result{id, out, errOut, code}
					}
				}()
			}
			// Whatever ends the test, no enqueue is left running after it.
			t.Cleanup(func() {
				close(stop)
				wg.Wait()
			})

			// The daemon starts once the first hooks have found the
			// outbox corrupt; the rest come while it salvages and after.
			var got []result
			collect := func(n int) {
				deadline := time.After(5 * time.Minute)
				for len(got) < n {
					select {
					case r := <-results:
						got = append(got, r)
					case <-deadline:
						t.Fatalf("%d of %d enqueues done after 5 minutes", len(got), n)
					}
				}
			}
			collect(2 * workers)
			logs := e.inProcessDaemon("--endpoint", ep.URL)
			collect(hooks)

			var ids []string
			for _, r := range got {
				if r.code != 0 || r.stdout != "" {
					t.Errorf("enqueue %s: exit %d, stdout %q, stderr %q; want exit 0 and nothing on stdout", r.id, r.code, r.stdout, r.stderr)
				}
				ids = append(ids, r.id)
			}
			if missing := arr.awaitAll(ids, time.Minute); len(missing) > 0 {
				t.Errorf("%d of %d events never reached the endpoint: %q\n%s", len(missing), hooks, missing, logs)
			}
			// A hook spills quietly (no terminal); the daemon says what
			// it replayed.
			spilled := 0
			for _, m := range replayedRE.FindAllStringSubmatch(logs.String(), -1) {
				n, _ := strconv.Atoi(m[1])
				spilled += n
			}
			t.Logf("%d of %d enqueues spilled; the salvage waited for connections to close: %v",
				spilled, hooks, strings.Contains(logs.String(), healWaitMsg))
			if !strings.Contains(logs.String(), "outbox was corrupt: moved it aside") {
				t.Errorf("the daemon did not salvage the outbox:\n%s", logs)
			}
			if aside, _ := filepath.Glob(filepath.Join(dir, "outbox.corrupt-*.db")); len(aside) != 1 {
				t.Errorf("corrupt files kept aside: %q, want one", aside)
			}
		})
	}
}

// replayedRE finds the number of events in the daemon's log line for a
// replay of spilled events.
var replayedRE = regexp.MustCompile(`msg="replayed spilled events" events=(\d+)`)

// newHousekeeper is a daemon of h with no endpoint, on the fake clock clk,
// whose steps a test runs one at a time, and what it logs.
func newHousekeeper(t *testing.T, h home, clk *fakeClock) (*daemon, *lineWatch) {
	t.Helper()
	logs := newLineWatch("")
	log := slog.New(slog.NewTextHandler(logs, nil))
	ob := mustOutbox(t, h, clk.now)
	dm := &daemon{h: h, ob: ob, d: newDrainer(ob, nil, defaultBatch, log, clk.now), log: log,
		waits: quickWaits(), now: clk.now, lim: newLimiter(limits{maxSize: defaultMaxSize}, h, clk.now, log)}
	t.Cleanup(func() { dm.ob.Close() })
	return dm, logs
}

// corruptRoot writes garbage over the first page of the events table of
// the outbox of h, which no connection has open.
func corruptRoot(t *testing.T, h home, pageSize int64) {
	t.Helper()
	db := h.path(dbFileName)
	overwrite(t, db, (rootPage(t, db, "events")-1)*pageSize, garbage(int(pageSize)))
}

// asideFiles lists the corrupt outboxes kept aside in h.
func asideFiles(t *testing.T, h home) []string {
	t.Helper()
	aside, err := filepath.Glob(h.path("outbox.corrupt-*.db"))
	if err != nil {
		t.Fatal(err)
	}
	return aside
}

// TestHealFromHousekeeping: the daemon's housekeeping, replaying a spill
// file into an outbox that turns out corrupt, salvages the outbox, and the
// next round replays the file into the fresh one.
func TestHealFromHousekeeping(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	corruptRoot(t, h, fillOutbox(t, h, 100))
	writeSpillFiles(t, h, "spilled", 1, `{"spilled":1}`)
	dm, logs := newHousekeeper(t, h, newFakeClock())

	dm.housekeep(context.Background())
	if aside := asideFiles(t, h); len(aside) != 1 {
		t.Fatalf("corrupt outboxes kept aside: %q, want one\n%s", aside, logs.String())
	}
	dm.housekeep(context.Background())
	ids, integrity := eventIDsIn(t, h)
	if integrity != "ok" {
		t.Fatalf("fresh outbox: integrity_check says %q", integrity)
	}
	if !ids["spilled-00000"] || !ids[gapKind] || !ids["old-0000"] {
		t.Errorf("fresh outbox: spilled event %v, gap %v, salvaged events %v; want all\n%s",
			ids["spilled-00000"], ids[gapKind], ids["old-0000"], logs.String())
	}
}

// breakEventsTable makes the events table of the outbox of h corrupt
// through a connection of its own, which other connections notice at
// once: its root page becomes that of an index.
func breakEventsTable(t *testing.T, h home) {
	t.Helper()
	conn, err := sqlite.OpenConn(h.path(dbFileName), sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var version int64
	err = sqlitex.ExecuteTransient(conn, "PRAGMA schema_version", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { version = stmt.ColumnInt64(0); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	// A new schema version makes the other connections read the schema
	// again.
	err = sqlitex.ExecuteScript(conn, fmt.Sprintf(`PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 'events_by_state') WHERE name = 'events';
PRAGMA schema_version = %d;`, version+1), nil)
	if err != nil {
		t.Fatal(err)
	}
}

// TestHealPace: an outbox found corrupt again within healPace of a
// salvage is not salvaged again at once (a disk that corrupts every fresh
// outbox would get one moved aside per turn of the loop), but once
// healPace has passed.
func TestHealPace(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	corruptRoot(t, h, fillOutbox(t, h, 100))
	writeSpillFiles(t, h, "first", 1, `{}`)
	clk := newFakeClock()
	dm, logs := newHousekeeper(t, h, clk)
	dm.housekeep(context.Background())
	if aside := asideFiles(t, h); len(aside) != 1 {
		t.Fatalf("corrupt outboxes kept aside: %q, want one\n%s", aside, logs.String())
	}

	clk.advance(healPace / 2)
	breakEventsTable(t, h)
	writeSpillFiles(t, h, "second", 1, `{}`)
	dm.housekeep(context.Background())
	if n := strings.Count(logs.String(), "outbox is corrupt; salvaging it"); n != 1 {
		t.Errorf("%d salvages within healPace, want 1\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), `msg="replay spilled events"`); n != 2 {
		t.Errorf("%d replays failed, want 2: the second corruption went unnoticed\n%s", n, logs.String())
	}
	if aside := asideFiles(t, h); len(aside) != 1 {
		t.Fatalf("corrupt outboxes kept aside within healPace: %q, want one", aside)
	}

	clk.advance(healPace / 2)
	dm.housekeep(context.Background())
	if aside := asideFiles(t, h); len(aside) != 2 {
		t.Fatalf("corrupt outboxes kept aside after healPace: %q, want two\n%s", aside, logs.String())
	}
	dm.housekeep(context.Background())
	if ids, integrity := eventIDsIn(t, h); integrity != "ok" || !ids["second-00000"] {
		t.Errorf("fresh outbox: integrity_check %q, spilled event %v; want ok and the event\n%s", integrity, ids["second-00000"], logs.String())
	}
}

// TestHealWaitsOutOpenConnection: a salvage that cannot move the outbox
// because a connection keeps it open for longer than the salvage waits
// moves nothing; the daemon goes on with the outbox as it is, and salvages
// it after healPace once the connection is gone.
func TestHealWaitsOutOpenConnection(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	corruptRoot(t, h, fillOutbox(t, h, 100))
	writeSpillFiles(t, h, "spilled", 1, `{}`)
	clk := newFakeClock()
	dm, logs := newHousekeeper(t, h, clk)
	dm.waits.healGate = 0 // one look at the gate: the connection below holds it
	conn, err := openConn(h.path(dbFileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dm.housekeep(context.Background())
	if !strings.Contains(logs.String(), errOutboxInUse.Error()) {
		t.Errorf("the salvage did not say that the outbox stayed in use\n%s", logs.String())
	}
	if aside := asideFiles(t, h); len(aside) != 0 {
		t.Fatalf("the outbox was moved aside under an open connection: %q", aside)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	dm.housekeep(context.Background())
	if aside := asideFiles(t, h); len(aside) != 0 {
		t.Fatalf("salvaged again within healPace: %q", aside)
	}
	clk.advance(healPace)
	dm.housekeep(context.Background())
	if aside := asideFiles(t, h); len(aside) != 1 {
		t.Fatalf("corrupt outboxes kept aside after healPace: %q, want one\n%s", aside, logs.String())
	}
	dm.housekeep(context.Background())
	if ids, integrity := eventIDsIn(t, h); integrity != "ok" || !ids["spilled-00000"] || !ids[gapKind] {
		t.Errorf("fresh outbox: integrity_check %q, spilled event %v, gap %v; want ok and both\n%s",
			integrity, ids["spilled-00000"], ids[gapKind], logs.String())
	}
}

// killedOutbox makes the outbox of h as a daemon killed in the middle of
// its work leaves it: fillOutbox's events ("old-…") in the main file and
// walEvents more ("wal-…") in its WAL alone. The closing of the last
// connection would checkpoint the WAL into the file, so the files are
// copied while the connection that wrote them still has them open. It
// returns the page size.
func killedOutbox(t *testing.T, h home, pad, walEvents int) int64 {
	t.Helper()
	ps := fillOutbox(t, h, pad)
	ob := mustOutbox(t, h, time.Now)
	if err := sqlitex.ExecuteTransient(ob.conn, "PRAGMA wal_autocheckpoint = 0", nil); err != nil {
		t.Fatal(err)
	}
	err := ob.immediate(func() error {
		for i := range walEvents {
			if err := ob.insert(fmt.Sprintf("wal-%04d", i), "event", []byte(fmt.Sprintf(`{"wal":%d}`, i)), time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	saved := t.TempDir()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(h.path(dbFileName) + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(saved, "db"+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ob.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(h.path(dbFileName) + suffix)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(saved, "db"+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.path(dbFileName)+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ps
}

// received is what a file endpoint received: the distinct ids of the
// events handed over ("old-…", "wal-…"), and every gap.
type received struct {
	ids  map[string]bool
	gaps []gapPayload
}

// readDelivered sorts the events an endpoint received into ids and gaps.
func readDelivered(t *testing.T, evs []wireEvent) received {
	t.Helper()
	d := received{ids: map[string]bool{}}
	for _, ev := range evs {
		if ev.Kind == gapKind {
			var g gapPayload
			if err := json.Unmarshal(ev.Payload, &g); err != nil {
				t.Fatal(err)
			}
			d.gaps = append(d.gaps, g)
			continue
		}
		d.ids[ev.ID] = true
	}
	return d
}

// accounted checks the accounting invariant: of handed events handed
// over, every one was delivered, is a dead letter, or is counted by a gap,
// exactly; or, where the gap says it is a lower bound, it counts no more
// than were lost. It reports whether the count was exact.
func accounted(t *testing.T, d received, handed int, dead int) (exact bool) {
	t.Helper()
	var evicted int64
	exact = true
	for _, g := range d.gaps {
		evicted += g.Evicted
		exact = exact && g.Exact
	}
	lost := int64(handed - len(d.ids) - dead)
	switch {
	case exact && evicted != lost:
		t.Errorf("handed over %d = delivered %d + dead letters %d + gaps %d does not hold (%d lost, gaps %+v)", handed, len(d.ids), dead, evicted, lost, d.gaps)
	case !exact && evicted > lost:
		t.Errorf("gaps say at least %d were lost, but %d were (handed over %d, delivered %d, dead letters %d; gaps %+v)", evicted, lost, handed, len(d.ids), dead, d.gaps)
	}
	return exact
}

// pausedDaemon starts 'difflore run args…' as a child that pauses at the
// salvage step step (salvagePauseEnv), and waits until it says it has.
func pausedDaemon(e *testEnv, step string, args ...string) (*exec.Cmd, *lineWatch, chan error) {
	t := e.t
	t.Helper()
	cmd := e.command(append([]string{"run"}, args...)...)
	cmd.Env = append(cmd.Env, salvagePauseEnv+"="+step)
	logs := newLineWatch(salvagePausedMsg + step + "\n")
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	select {
	case <-logs.seen:
	case err := <-done:
		done <- err
		t.Fatalf("daemon exited (%v) before it paused at %s:\n%s", err, step, logs)
	case <-time.After(time.Minute):
		t.Fatalf("the daemon did not pause at salvage step %s within a minute:\n%s", step, logs)
	}
	return cmd, logs, done
}

// salvageWALEvents is how many events the kill tests leave in the WAL.
const salvageWALEvents = 500

// corruptKilledOutbox makes a killed daemon's outbox (killedOutbox) and
// damages four pages in the middle of its main file.
func corruptKilledOutbox(t *testing.T, h home) {
	t.Helper()
	ps := killedOutbox(t, h, 200, salvageWALEvents)
	db := h.path(dbFileName)
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	overwrite(t, db, fi.Size()/ps/2*ps, garbage(int(4*ps)))
}

// finishAfterRestart starts the daemon again, with no pause, and waits
// until everything handed over is delivered or counted by the gap; then it
// checks the invariant, that one gap alone was sent, and that the salvage
// left nothing under way.
func finishAfterRestart(e *testEnv, h home, ep *endpoint, arr *arrivals, handed int, wantLost bool) {
	t := e.t
	t.Helper()
	d := e.startDaemon("--endpoint", ep.URL)
	var got received
	arr.awaitEvents(t, time.Minute, "every event delivered or counted", func(evs []wireEvent) bool {
		got = readDelivered(t, evs)
		var evicted int64
		for _, g := range got.gaps {
			evicted += g.Evicted
		}
		return len(got.gaps) > 0 && len(got.ids)+int(evicted) >= handed
	})
	if !accounted(t, got, handed, len(e.deadLetters())) {
		t.Errorf("gap not exact: %+v", got.gaps)
	}
	if len(got.gaps) != 1 || got.gaps[0].Reason != "corrupt" || (got.gaps[0].Evicted > 0) != wantLost {
		t.Errorf("gaps %+v, want one corrupt gap (that counts lost events: %v)", got.gaps, wantLost)
	}
	if _, err := os.Lstat(h.path(salvageIntentName)); err == nil {
		t.Errorf("salvage intent %s left behind", salvageIntentName)
	}
	if aside := asideFiles(t, h); len(aside) != 1 {
		t.Errorf("corrupt files kept aside: %q, want one", aside)
	}
	if st := e.mustCLI("status"); strings.Contains(st, "under way") {
		t.Errorf("status says a salvage is still under way:\n%s", st)
	}
	e.mustCLI("stop")
	d.wait(t, 30*time.Second)
}

// TestSalvageKilled kills the daemon (kill -9) at each step of a salvage,
// from the move of the corrupt files aside to the end, and starts it
// again: every event handed over is then delivered or counted by the one
// gap, exactly. Damaged pages are found by the running daemon, whose
// closed connection leaves no WAL to move; a WAL whose header is garbled
// is found at the start, and moved aside before the database.
func TestSalvageKilled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		damage string
		steps  []string
	}{
		{"pages", []string{"intent", "aside-wal", "aside", "fresh", "chunk-1", "chunk-4", "copied", "finished"}},
		{"wal", []string{"intent", "aside-wal", "aside", "chunk-2"}},
	}
	for _, c := range cases {
		for _, step := range c.steps {
			t.Run(c.damage+"/"+step, func(t *testing.T) {
				testSalvageKilled(t, c.damage, step)
			})
		}
	}
}

func testSalvageKilled(t *testing.T, damage, step string) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	h := mustOpenHomeCreate(t, dir)
	if damage == "wal" {
		killedOutbox(t, h, 200, salvageWALEvents)
		overwrite(t, h.path(dbFileName)+"-wal", 0, garbage(walHeaderSize))
	} else {
		corruptKilledOutbox(t, h)
	}
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	cmd, logs, done := pausedDaemon(e, step, "--endpoint", ep.URL)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatalf("daemon paused at %s exited cleanly, not killed:\n%s", step, logs)
	}
	done <- nil
	handed := salvageEvents + salvageWALEvents
	if damage == "wal" && step == "aside-wal" {
		// The WAL is moved, the database not yet: no connection may
		// open the database without its WAL.
		if _, err := os.Stat(h.path(dbFileName)); err != nil {
			t.Errorf("killed after the WAL moved: the database should still be in place: %v", err)
		}
		if _, _, code := e.cli("", "enqueue", "--id", "meanwhile", `{}`); code != 0 {
			t.Errorf("enqueue while the move aside is half done: exit %d", code)
		}
		handed++
	}
	finishAfterRestart(e, h, ep, arr, handed, damage == "pages")
}

// TestSalvageStops: 'stop' during a salvage stops the daemon promptly,
// between two chunks ("stopped", not a hard kill), with the salvage under
// way in status; the next start finishes it.
func TestSalvageStops(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	h := mustOpenHomeCreate(t, dir)
	corruptKilledOutbox(t, h)
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	_, logs, done := pausedDaemon(e, "chunk-2", "--endpoint", ep.URL)
	if got := e.mustCLI("stop"); !strings.HasPrefix(got, "stopped (pid ") {
		t.Fatalf("stop during a salvage: %q, want stopped\n%s", got, logs)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("daemon stopped during a salvage exited with %v:\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon still running 30s after stop")
	}
	if !strings.Contains(logs.String(), "the next start finishes it") {
		t.Errorf("daemon log does not say the salvage stopped:\n%s", logs)
	}
	if st, _, _ := e.cli("", "status"); !strings.Contains(st, "salvage of outbox.corrupt-") || !strings.Contains(st, "under way") {
		t.Errorf("status does not show the salvage under way:\n%s", st)
	}
	finishAfterRestart(e, h, ep, arr, salvageEvents+salvageWALEvents, true)
}

// manyEvents queues n events of about 100 bytes ("ev-…") in a closed
// outbox of h, delivers (claims and acknowledges) the first acked of them,
// as a daemon would have, which leaves free pages holding their rows, and
// returns the page size.
func manyEvents(t *testing.T, h home, n, acked int) int64 {
	t.Helper()
	ob := mustOutbox(t, h, time.Now)
	created := time.Now().Add(-time.Hour)
	err := ob.immediate(func() error {
		for i := range n {
			p := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("y", 80))
			if err := ob.insert(fmt.Sprintf("ev-%06d", i), "event", []byte(p), created.Add(time.Duration(i)*time.Millisecond)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for acked > 0 {
		token, evs, err := ob.claim(min(acked, 1000), 1<<30, time.Minute)
		if err != nil || len(evs) == 0 {
			t.Fatalf("claim: %d events, %v", len(evs), err)
		}
		if err := ob.ack(token, evs); err != nil {
			t.Fatal(err)
		}
		acked -= len(evs)
	}
	ps, err := ob.pragmaInt("page_size")
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	return ps
}

// manyAcked is how many events TestSalvageGapCounts delivers before it
// damages the outbox.
const manyAcked = 5000

// TestSalvageGapCounts: the corrupt gap counts exactly what was lost, or
// says with "exact": false that it counts no more than was lost.
func TestSalvageGapCounts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		fill   func(t *testing.T, h home) (handed int)
		damage func(t *testing.T, db string)
		exact  bool // the count must be exact
	}{
		{"truncated to half", func(t *testing.T, h home) int {
			fillOutbox(t, h, 200)
			return salvageEvents
		}, func(t *testing.T, db string) {
			fi, _ := os.Stat(db)
			if err := os.Truncate(db, fi.Size()/4096/2*4096); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"wal header garbled after a kill", func(t *testing.T, h home) int {
			killedOutbox(t, h, 200, 100)
			return salvageEvents + 100
		}, func(t *testing.T, db string) {
			overwrite(t, db+"-wal", 0, garbage(walHeaderSize))
		}, true},
		{"many damaged pages", func(t *testing.T, h home) int {
			manyEvents(t, h, 40000, manyAcked)
			return 40000 - manyAcked
		}, func(t *testing.T, db string) {
			// Every fourth page, from the third on: leaves, inner pages,
			// index pages and free pages alike.
			fi, _ := os.Stat(db)
			for pg := int64(2); pg < fi.Size()/4096; pg += 4 {
				overwrite(t, db, pg*4096, garbage(4096))
			}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			dir := e.home
			e.useQuickWaits()
			h := mustOpenHomeCreate(t, dir)
			handed := c.fill(t, h)
			c.damage(t, h.path(dbFileName))
			arr := newArrivals()
			ep := newEndpoint(t, arr.script(200))
			d := e.startDaemon("--endpoint", ep.URL)
			arr.awaitEvents(t, 2*time.Minute, "the gap", func(evs []wireEvent) bool {
				return len(readDelivered(t, evs).gaps) > 0
			})
			// The acknowledgement after the endpoint's answer signals
			// nothing a test can wait on: poll the outbox until it drains.
			waitFor(t, 2*time.Minute, "the outbox drained", func() bool {
				cnt := outboxCounts(t, dir)
				return cnt.Pending == 0 && cnt.Inflight == 0
			})
			got := readDelivered(t, arr.events())
			// Events delivered before the damage may go again, for the
			// receiver to deduplicate; they are not counted.
			for i := range manyAcked {
				delete(got.ids, fmt.Sprintf("ev-%06d", i))
			}
			exact := accounted(t, got, handed, len(e.deadLetters()))
			if c.exact && !exact {
				t.Errorf("gap %+v says it is a lower bound; the count can be exact", got.gaps)
			}
			if !exact && got.gaps[0].Evicted == 0 && len(got.ids) < handed {
				t.Errorf("gap %+v: says no more than that nothing was lost; %d of %d were", got.gaps, handed-len(got.ids), handed)
			}
			t.Logf("handed %d, delivered %d, gaps %+v", handed, len(got.ids), got.gaps)
			e.mustCLI("stop")
			d.wait(t, 30*time.Second)
		})
	}
}

// salvageCorrupted closes ob, corrupts its root page, and has a daemon's
// housekeeping find that by replaying a spill file and salvage it; it
// checks that one corrupt outbox was kept aside and returns the fresh
// outbox, for the caller to close, and the housekeeper's log.
func salvageCorrupted(t *testing.T, h home, ob *outbox) (*outbox, *lineWatch) {
	t.Helper()
	size, err := ob.pragmaInt("page_size")
	if err != nil {
		t.Fatal(err)
	}
	ob.Close()
	corruptRoot(t, h, size)
	writeSpillFiles(t, h, "spilled", 1, `{"spilled":1}`)
	dm, logs := newHousekeeper(t, h, newFakeClock())
	dm.housekeep(context.Background())
	if aside := asideFiles(t, h); len(aside) != 1 {
		t.Fatalf("corrupt outboxes kept aside: %q, want one\n%s", aside, logs.String())
	}
	return mustOutbox(t, h, time.Now), logs
}

// TestSalvageKeepsSinkProgress: a salvage carries over the progress of
// the sinks beyond the first (their sinks and deliveries rows, the seqs
// numbered afresh): a secondary that had acknowledged events does not
// receive them again, one retry waiting keeps its attempts, and the
// events it had not reached, the corrupt gap and what is queued after
// still reach it once each.
func TestSalvageKeepsSinkProgress(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	ob := mustOutbox(t, h, time.Now)
	ob.primary = defaultSinkName
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	ids := queueSinkProgressEvents(t, ob, 200)
	q := &sinkQueue{ob: ob, name: "second"}
	token, acked, err := q.claim(50, math.MaxInt, claimLease)
	if err != nil || len(acked) != 50 {
		t.Fatalf("claim: %d events, %v", len(acked), err)
	}
	if err := q.immediate(func() error { return q.ack(token, acked) }); err != nil {
		t.Fatal(err)
	}
	token, retry, err := q.claim(1, math.MaxInt, claimLease)
	if err != nil || len(retry) != 1 {
		t.Fatalf("claim: %d events, %v", len(retry), err)
	}
	if err := q.immediate(func() error { return q.release(token, retry, time.Now(), true, "503") }); err != nil {
		t.Fatal(err)
	}

	fresh, logs := salvageCorrupted(t, h, ob)
	defer fresh.Close()
	fresh.primary = defaultSinkName
	if _, err := fresh.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	insertN(t, fresh, time.Now(), "after-0")
	checkSinkTotals(t, fresh, "second", 50, 1)
	got, attempts := drainSecondary(t, &sinkQueue{ob: fresh, name: "second"})
	for _, e := range acked {
		if got[e.ID] > 0 {
			t.Errorf("event %s, acknowledged by the sink before the salvage, went to it again", e.ID)
		}
	}
	for _, id := range append(ids[51:], "after-0") {
		if got[id] != 1 {
			t.Errorf("event %s reached the sink %d times after the salvage, want once", id, got[id])
		}
	}
	if got[retry[0].ID] != 1 || attempts[retry[0].ID] != 2 {
		t.Errorf("the retry %s reached the sink %d times, as attempt %d; want once, as attempt 2", retry[0].ID, got[retry[0].ID], attempts[retry[0].ID])
	}
	gaps := 0
	for id := range got {
		if !slices.Contains(ids, id) && id != "after-0" {
			gaps++
		}
	}
	if gaps != 1 {
		t.Errorf("%d other events reached the sink, want the corrupt gap alone\n%s", gaps, logs.String())
	}
}

// queueSinkProgressEvents queues n padded events sk-0000… in one
// transaction and returns their ids.
func queueSinkProgressEvents(t *testing.T, ob *outbox, n int) []string {
	t.Helper()
	var ids []string
	err := ob.immediate(func() error {
		for i := range n {
			ids = append(ids, fmt.Sprintf("sk-%04d", i))
			p := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 100))
			if err := insertEvent(ob.conn, ids[i], "event", []byte(p), time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkSinkTotals checks a secondary sink's delivered and failed totals.
func checkSinkTotals(t *testing.T, ob *outbox, name string, wantDelivered, wantFailed int64) {
	t.Helper()
	var delivered, failed int64
	err := sqlitex.Execute(ob.conn, `SELECT delivered, failed FROM sinks WHERE name = ?`, &sqlitex.ExecOptions{
		Args: []any{name},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			delivered, failed = stmt.ColumnInt64(0), stmt.ColumnInt64(1)
			return nil
		},
	})
	if err != nil || delivered != wantDelivered || failed != wantFailed {
		t.Errorf("the sink's totals after the salvage: delivered %d, failed %d (%v), want %d and %d", delivered, failed, err, wantDelivered, wantFailed)
	}
}

// drainSecondary claims and acknowledges everything a secondary sink has
// ready, at most 20 batches, and returns how often each event came and
// its last attempt number.
func drainSecondary(t *testing.T, q *sinkQueue) (got, attempts map[string]int) {
	t.Helper()
	got, attempts = map[string]int{}, map[string]int{}
	for range 20 {
		token, evs, err := q.claim(defaultBatch, math.MaxInt, claimLease)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			got[e.ID]++
			attempts[e.ID] = e.Attempt
		}
		if err := q.immediate(func() error { return q.ack(token, evs) }); err != nil {
			t.Fatal(err)
		}
	}
	return got, attempts
}

// TestSalvageKeepsSinkProgressOfEventsQueuedMeanwhile: an event a hook
// queues into the fresh outbox while the salvage copies gets a seq among
// the copied ones, below the new hwm of a secondary that had acknowledged
// the events around it: it still reaches that sink, once.
func TestSalvageKeepsSinkProgressOfEventsQueuedMeanwhile(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	ob := mustOutbox(t, h, time.Now)
	ob.primary = defaultSinkName
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	err := ob.immediate(func() error {
		for i := range 2*salvageChunk + 50 {
			if err := insertEvent(ob.conn, fmt.Sprintf("qm-%04d", i), "event", []byte(`{}`), time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	q := &sinkQueue{ob: ob, name: "second"}
	token, acked, err := q.claim(salvageChunk+40, math.MaxInt, claimLease)
	if err != nil || len(acked) != salvageChunk+40 {
		t.Fatalf("claim: %d events, %v", len(acked), err)
	}
	if err := q.immediate(func() error { return q.ack(token, acked) }); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	opts := healOpts{gateWait: healGateWait, pause: func(_ context.Context, step string) {
		if step != "chunk-1" {
			return
		}
		hook := mustOutbox(t, h, time.Now)
		defer hook.Close()
		insertN(t, hook, time.Now(), "meanwhile")
	}}
	if err := healWith(context.Background(), h, time.Now(), opts, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	fresh := mustOutbox(t, h, time.Now)
	defer fresh.Close()
	fresh.primary = defaultSinkName
	if _, err := fresh.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	got, _ := drainSecondary(t, &sinkQueue{ob: fresh, name: "second"})
	if got["meanwhile"] != 1 {
		t.Errorf("the event queued during the salvage reached the sink %d times, want once", got["meanwhile"])
	}
	for _, e := range acked {
		if got[e.ID] > 0 {
			t.Errorf("event %s, acknowledged by the sink before the salvage, went to it again", e.ID)
		}
	}
	if n, want := len(got), 2*salvageChunk+50-len(acked)+2; n != want {
		t.Errorf("%d events reached the sink after the salvage, want %d: those it had not reached, the one queued meanwhile and the gap", n, want)
	}
}
