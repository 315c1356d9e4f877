package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
			dir := testHome(t)
			useQuickWaits(t)
			h := mustOpenHomeCreate(t, dir)
			ps := fillOutbox(t, h, cmp.Or(c.pad, 1000))
			c.corrupt(t, h.path(dbFileName), ps)
			out := filepath.Join(t.TempDir(), "events.jsonl")
			logs := inProcessDaemon(t, "--endpoint", fileURL(out))
			// The new event is queued once the salvage is done: an
			// enqueue that has the file open while it is moved aside can
			// still write to the wrong file (SQLite names the WAL after
			// the path, not the file), which this test does not cover.
			waitFor(t, 30*time.Second, "the gap", func() bool {
				_, _, gap := deliveredSalvage(t, out)
				return gap.Reason != ""
			})
			mustCLI(t, "enqueue", "--id", "new-after", `{"after":true}`)

			var gap gapPayload
			var saved int
			newSeen := false
			waitFor(t, 30*time.Second, "the new event and the gap", func() bool {
				saved, newSeen, gap = deliveredSalvage(t, out)
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
func deliveredSalvage(t *testing.T, out string) (saved int, newSeen bool, gap gapPayload) {
	seen := map[string]bool{}
	data, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	// The daemon may be writing the last line: read whole lines only.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		var ev struct {
			ID      string          `json:"id"`
			Kind    string          `json:"kind"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("delivered line %q: %v", line, err)
		}
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

// TestSalvageFails: a file that no page size makes a database is moved
// aside all the same, and the daemon starts empty with a gap that says so.
func TestSalvageFails(t *testing.T) {
	dir := testHome(t)
	useQuickWaits(t)
	h := mustOpenHomeCreate(t, dir)
	if err := os.WriteFile(h.path(dbFileName), bytes.Repeat([]byte("not a database at all "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "events.jsonl")
	inProcessDaemon(t, "--endpoint", fileURL(out))
	mustCLI(t, "enqueue", "--id", "new-after", `{}`)
	var gap gapPayload
	waitFor(t, 30*time.Second, "the new event and the gap", func() bool {
		_, newSeen, g := deliveredSalvage(t, out)
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
}

// TestCorruptEnqueueSpills: a hook's enqueue into an outbox that is not a
// database keeps the event in the spill folder and exits 0, and the daemon,
// salvaging the outbox, delivers it.
func TestCorruptEnqueueSpills(t *testing.T) {
	dir := testHome(t)
	useQuickWaits(t)
	h := mustOpenHomeCreate(t, dir)
	ps := fillOutbox(t, h, 1000)
	overwrite(t, h.path(dbFileName), 0, make([]byte, ps))
	_, stderr, code := cli(t, "", "enqueue", "--id", "spilled-1", `{"spilled":true}`)
	if code != 0 {
		t.Fatalf("enqueue exit %d: %s", code, stderr)
	}
	if files, _ := os.ReadDir(h.path(spillDirName)); len(files) == 0 {
		t.Fatalf("nothing spilled; enqueue said: %s", stderr)
	}
	out := filepath.Join(t.TempDir(), "events.jsonl")
	inProcessDaemon(t, "--endpoint", fileURL(out))
	waitFor(t, 30*time.Second, "the spilled event and the gap", func() bool {
		_, _, gap := deliveredSalvage(t, out)
		return gap.Reason != "" && strings.Contains(strings.Join(readLines(t, out), "\n"), `"spilled-1"`)
	})
}
