package main

import (
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// schemaVersion is stored in PRAGMA user_version. enqueue compares it and
// does no migration work when it matches. Version 2 added the raw column;
// version 3 the seq_offset that counts the events (countsSQL); version 4
// the progress of the sinks beyond the first (migrateV3SQL, outboxsinks.go);
// version 5 the traceparent column and the spans table (migrateV4SQL).
const schemaVersion = 5

// Event states.
const (
	statePending  = 0
	stateInflight = 1
	stateDead     = 2
	// stateDone marks an event the first sink is done with while another
	// sink still waits for it (outboxsinks.go).
	stateDone = 3
)

// schemaSQL creates the outbox at version 3; migrate runs the later
// versions' scripts after it, so that a new outbox and an upgraded one have
// their columns in the same order (raw, sink, traceparent), which salvage
// reads by position. available_at means "not before" for a
// pending event and "lease ends" for an inflight one, so one index serves
// claiming, reclaiming and the next wake-up time.
//
// raw marks a dead letter whose payload is the bytes a hook handed over
// that are not one JSON value (or were cut at maxDeadPayload): it can never
// be sent, since the wire format embeds payloads as JSON, so the CHECK keeps
// it dead whatever statement tries to move it.
const schemaSQL = `
CREATE TABLE IF NOT EXISTS events (
	seq          INTEGER PRIMARY KEY,
	id           TEXT    NOT NULL UNIQUE,
	kind         TEXT    NOT NULL,
	payload      BLOB    NOT NULL,
	created_at   INTEGER NOT NULL,
	state        INTEGER NOT NULL DEFAULT 0,
	attempts     INTEGER NOT NULL DEFAULT 0,
	available_at INTEGER NOT NULL,
	claim        TEXT,
	last_error   TEXT,
	` + rawColumn + `
) STRICT;
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, available_at, seq);
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq_offset', '0');
PRAGMA user_version = 3;
`

const rawColumn = `raw INTEGER NOT NULL DEFAULT 0 CHECK (raw = 0 OR state = 2)`

// migrateV1SQL brings a version 1 outbox to version 2. Adding a column with
// a constant default rewrites no row, so it is quick on any size of queue.
const migrateV1SQL = `ALTER TABLE events ADD COLUMN ` + rawColumn + `;
PRAGMA user_version = 2;
`

// migrateV2SQL brings a version 2 outbox to version 3: seq_offset, counted
// once from the rows (one scan, once per outbox). See countsSQL.
const migrateV2SQL = `INSERT INTO meta (key, value)
SELECT 'seq_offset', CAST(coalesce(max(seq), 0) - count(*) AS TEXT) FROM events WHERE true
ON CONFLICT (key) DO UPDATE SET value = excluded.value;
PRAGMA user_version = 3;
`

// migrateV4SQL brings a version 4 outbox to version 5: the hook's
// TRACEPARENT beside each event (NULL for the events already queued, and
// for a hook that had none), and the spans table (spanstore.go). Neither
// rewrites a row.
const migrateV4SQL = addTraceparentColumnSQL + `
` + spansTableSQL + `
PRAGMA user_version = 5;
`

const addTraceparentColumnSQL = `ALTER TABLE events ADD COLUMN traceparent TEXT;`

// userVersion reads the schema version of an open database.
func userVersion(conn *sqlite.Conn) (int, error) {
	var v int
	err := sqlitex.ExecuteTransient(conn, "PRAGMA user_version", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { v = stmt.ColumnInt(0); return nil },
	})
	return v, err
}

// migrate brings the schema to schemaVersion. WAL mode is persistent in the
// file, so it is set here once rather than on every open.
//
// auto_vacuum is set first, outside any transaction: it only takes effect
// while the file has no page 1 yet, and switching to WAL writes page 1. (Set
// after journal_mode, as before, it was silently ignored and a drained
// outbox kept its peak size for ever; see ensureAutoVacuum for such files.)
func migrate(conn *sqlite.Conn) (err error) {
	v, err := userVersion(conn)
	if err != nil {
		return fmt.Errorf("migrate outbox: %w", err)
	}
	if v == schemaVersion {
		return nil
	}
	if v > schemaVersion {
		return fmt.Errorf("outbox schema version %d is newer than this difflore (%d)", v, schemaVersion)
	}
	if v == 0 {
		if err := sqlitex.ExecuteTransient(conn, "PRAGMA auto_vacuum = INCREMENTAL", nil); err != nil {
			return fmt.Errorf("migrate outbox: auto_vacuum: %w", err)
		}
		if err := setWAL(conn); err != nil {
			return fmt.Errorf("migrate outbox: wal: %w", err)
		}
	}
	// Concurrent first enqueues may all get here: the immediate transaction
	// lets one create or upgrade the schema, and the others find it done.
	end, err := sqlitex.ImmediateTransaction(conn)
	if err != nil {
		return fmt.Errorf("migrate outbox: %w", err)
	}
	defer end(&err)
	if v, err = userVersion(conn); err != nil || v == schemaVersion {
		return err
	}
	script := schemaSQL + migrateV3SQL + migrateV4SQL
	switch v {
	case 1:
		script = migrateV1SQL + migrateV2SQL + migrateV3SQL + migrateV4SQL
	case 2:
		script = migrateV2SQL + migrateV3SQL + migrateV4SQL
	case 3:
		script = migrateV3SQL + migrateV4SQL
	case 4:
		script = migrateV4SQL
	}
	if v > 0 {
		// An outbox set back to an older version by hand (or by a test)
		// may have the later columns already: ADD COLUMN would fail.
		for col, add := range map[string]string{"sink": addSinkColumnSQL, "traceparent": addTraceparentColumnSQL} {
			if has, err := hasColumn(conn, "events", col); err != nil {
				return fmt.Errorf("migrate outbox: %w", err)
			} else if has {
				script = strings.Replace(script, add, "", 1)
			}
		}
	}
	if err = sqlitex.ExecuteScript(conn, script, nil); err != nil {
		return fmt.Errorf("migrate outbox: %w", err)
	}
	return nil
}

// hasColumn reports whether table has a column named col.
func hasColumn(conn *sqlite.Conn, table, col string) (bool, error) {
	found := false
	err := sqlitex.ExecuteTransient(conn, "SELECT name FROM pragma_table_info('"+table+"')", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			found = found || stmt.ColumnText(0) == col
			return nil
		},
	})
	return found, err
}

// setWAL switches the database to WAL mode. When several processes create
// the outbox at once, the switch can fail with SQLITE_BUSY straight away,
// without the busy handler: SQLite will not wait when two connections that
// each hold a shared lock both want an exclusive one, as that could
// deadlock. Only the first enqueues of a new home meet this, so a short
// retry with backoff settles it.
func setWAL(conn *sqlite.Conn) error {
	for delay := time.Millisecond; ; delay *= 2 {
		err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode = WAL", nil)
		if err == nil || sqlite.ErrCode(err).ToPrimary() != sqlite.ResultBusy || delay > 512*time.Millisecond {
			return err
		}
		time.Sleep(delay + time.Duration(mrand.Int64N(int64(delay))))
	}
}
