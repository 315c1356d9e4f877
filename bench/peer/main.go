// Command peer runs goqite (maragu.dev/goqite), a small SQLite-backed Go
// queue, through send → receive → delete one message at a time, on the same
// SQLite engine as difflore (modernc.org/sqlite, which zombiezen.com/go/sqlite
// wraps), in WAL mode with synchronous=NORMAL like difflore's outbox. It
// prints one JSON line with its rate; bench/run.sh sets it beside
// BenchmarkEnqueueClaimAck from the same run. It has its own go.mod so that
// difflore never depends on it.
//
// Usage: peer [-n N] [-dir DIR]
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"maragu.dev/goqite"
	_ "modernc.org/sqlite"
)

// schema is goqite v0.4.0's schema_sqlite.sql.
const schema = `
create table goqite (
  id text primary key default ('m_' || lower(hex(randomblob(16)))),
  created text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  updated text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  queue text not null,
  body blob not null,
  timeout text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  received integer not null default 0,
  priority integer not null default 0
) strict;

create trigger goqite_updated_timestamp after update on goqite begin
  update goqite set updated = strftime('%Y-%m-%dT%H:%M:%fZ') where id = old.id;
end;

create index goqite_queue_priority_created_idx on goqite (queue, priority desc, created);
`

// payload is the same event as difflore's benchmarks queue.
const payload = `{"session_id":"6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162","hook_event_name":"PostToolUse",` +
	`"tool_name":"Bash","tool_input":{"command":"go test ./...","description":"Run the tests"},` +
	`"tool_response":{"stdout":"ok  \tgithub.com/difflore/difflore\t0.135s\n","stderr":"","interrupted":false},` +
	`"cwd":"/home/dev/src/difflore","transcript_path":"/home/dev/.claude/projects/difflore/6f1c2a9e.jsonl"}`

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "peer: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 3000, "messages")
	dir := flag.String("dir", "", "folder for the database (default: a new temporary one, removed after)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "difflore-peer-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	dsn := "file:" + filepath.Join(*dir, "goqite.db") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // SQLite has one writer; this is what goqite's docs advise
	if _, err := db.Exec(schema); err != nil {
		return err
	}
	q := goqite.New(goqite.NewOpts{DB: db, Name: "bench"})
	ctx := context.Background()
	body := []byte(payload)
	for range 100 { // warm up
		if err := cycle(ctx, q, body); err != nil {
			return err
		}
	}
	cpu0 := processCPU()
	t0 := time.Now()
	for range *n {
		if err := cycle(ctx, q, body); err != nil {
			return err
		}
	}
	took := time.Since(t0)
	cpu := processCPU() - cpu0
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"peer": "goqite v0.4.0", "messages": *n, "seconds": took.Seconds(), "msgs_per_s": float64(*n) / took.Seconds(),
		"cpu_us_per_msg": float64(cpu.Microseconds()) / float64(*n),
	})
}

// processCPU is the user + system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cycle sends one message, receives it and deletes it.
func cycle(ctx context.Context, q *goqite.Queue, body []byte) error {
	if err := q.Send(ctx, goqite.Message{Body: body}); err != nil {
		return err
	}
	m, err := q.Receive(ctx)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("received nothing after a send")
	}
	return q.Delete(ctx, m.ID)
}
