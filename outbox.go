package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/gofrs/flock"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// schemaVersion is stored in PRAGMA user_version. enqueue compares it and
// does no migration work when it matches. Version 2 added the raw column;
// version 3 the seq_offset that counts the events (countsSQL).
const schemaVersion = 3

// Event states.
const (
	statePending  = 0
	stateInflight = 1
	stateDead     = 2
)

// maxAttempts is how many counted delivery attempts an event gets before it
// becomes a dead letter.
const maxAttempts = 20

// schemaSQL creates the outbox. available_at means "not before" for a
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

const insertSQL = `INSERT INTO events (id, kind, payload, created_at, available_at)
VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (id) DO NOTHING`

// readySQL lists the next ready events in queue order, walking
// events_by_state. claim reads them, cuts the batch at the byte budget
// (counting each event as it will be encoded: payload, id, kind and
// eventOverhead) and marks each one with markSQL, all in one write
// transaction. A claim token on the first row, when that row waits at
// available_at 0, marks a batch given back unacknowledged, which goes out
// again whole (reclaimBatchSQL). A token anywhere else is left from a
// claim that ended otherwise (a dead letter sent again by 'outbox retry',
// in releases that kept its token): readySQL does not name it, so that it
// cannot make a claim stop at a batch it cannot claim again, which once
// stalled delivery for good.
//
// This replaced one UPDATE … WHERE seq IN (window-function subquery)
// RETURNING …: that statement built three temporary b-trees per call (the IN
// list, the window's partition and the RETURNING buffer), and with a bare
// :limit in its LIMIT SQLite even re-planned it on every call, since it reads
// such a parameter while planning and then expires the statement whenever
// it is bound again. The limit here is CAST for the same reason.
const readySQL = `SELECT seq, id, kind, payload, created_at, attempts, CASE WHEN available_at = 0 THEN claim END FROM events
WHERE state = 0 AND available_at <= :now
ORDER BY available_at, seq LIMIT CAST(:limit AS INTEGER)`

// capWaitSQL brings forward a pending event whose retry time lies more than
// maxWait ahead (the clock stepped back since it was written, or a bug wrote
// it) to maxWait from now. claim runs it first, in the same transaction; on
// events_by_state it costs one index probe when there is nothing to cap.
const capWaitSQL = `UPDATE events SET available_at = :cap WHERE state = 0 AND available_at > :cap`

const markSQL = `UPDATE events SET state = 1, claim = :claim, available_at = :lease, attempts = attempts + 1
WHERE seq = :seq`

// reclaimSQL and resetInflightSQL return unacknowledged inflight events to
// pending. They keep the claim token and set available_at to 0, which no
// event enqueued since 1970 has: the batch goes to the front of the queue
// and the next claim sends exactly that set again, so the receiver gets the
// same idempotency key and can deduplicate. A fresh claim would mix the
// batch with newer events and give every event in it a new key.
//
// A batch that was in flight when the daemon died maxAttempts times is not
// put back: it is likely what kills the daemon, and at the head of the
// queue it would block everything behind it. It becomes a dead letter, and
// loses its claim token: 'outbox retry' sends it as new events, not as a
// batch given back (see claim).
const reclaimSQL = `UPDATE events SET ` + giveBackOrBury + `
WHERE state = 1 AND available_at <= :now`

const resetInflightSQL = `UPDATE events SET ` + giveBackOrBury + ` WHERE state = 1`

const giveBackOrBury = `state = CASE WHEN attempts >= :max THEN 2 ELSE 0 END,
	available_at = 0,
	claim = CASE WHEN attempts >= :max THEN NULL ELSE claim END,
	last_error = CASE WHEN attempts >= :max
		THEN 'in flight when the daemon stopped without an answer, ' || attempts || ' times'
		ELSE last_error END`

// reclaimBatchSQL claims again, whole, a batch that reclaimSQL,
// resetInflightSQL or giveBackSQL returned to the head of the queue.
const reclaimBatchSQL = `UPDATE events
SET state = 1, claim = :claim, available_at = :lease, attempts = attempts + 1
WHERE state = 0 AND available_at = 0 AND claim = :old
RETURNING seq, id, kind, payload, created_at, attempts`

// giveBackSQL returns a claimed event untried (the daemon is stopping and
// its request was cut short) the way resetInflightSQL does, and gives the
// attempt back.
const giveBackSQL = `UPDATE events SET state = 0, attempts = attempts - 1, available_at = 0
WHERE seq = :seq AND claim = :claim`

const ackSQL = `DELETE FROM events WHERE seq = :seq AND claim = :claim`

// releaseSQL returns a claimed event to pending. An uncounted release gives
// the attempt back; a counted one dead-letters the event once it has had
// maxAttempts.
const releaseSQL = `UPDATE events SET
	state = CASE WHEN :counted AND attempts >= :max THEN 2 ELSE 0 END,
	attempts = attempts - (1 - :counted),
	available_at = :at,
	claim = NULL,
	last_error = coalesce(:error, last_error)
WHERE seq = :seq AND claim = :claim`

const deadSQL = `UPDATE events SET state = 2, claim = NULL, last_error = :error
WHERE seq = :seq AND claim = :claim`

// countsSQL counts the events without counting rows. SQLite gives a new
// row the rowid one above the largest in the table (seq has no
// AUTOINCREMENT, and no statement sets it), so as long as rows are only
// appended, the number of events is max(seq) minus a constant, seq_offset;
// every statement that deletes events moves seq_offset in the same
// transaction (rebase). enqueue thus counts its event for free: the hook
// path writes nothing more. inflight (a batch) and dead (bounded by the
// dead letters' limit) are counted on events_by_state, and pending is
// what remains: status reads a few index pages, whatever is queued. (A
// count by scan took about 0.5 s with a million queued; triggers that kept a
// tally cost enqueue 17 % and claim plus ack five times over.)
const countsSQL = `SELECT
	(SELECT coalesce(max(seq), 0) FROM events) - (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq_offset'),
	(SELECT count(*) FROM events WHERE state = 1),
	(SELECT count(*) FROM events WHERE state = 2)`

// oldestPendingSQL finds the first pending event in queue order: a walk of
// the table from its start that stops at the first pending row, past only
// dead letters and a batch in flight. Without NOT INDEXED SQLite would read
// every pending entry of events_by_state and sort them.
const oldestPendingSQL = `SELECT created_at FROM events NOT INDEXED WHERE state = 0 ORDER BY seq LIMIT 1`

const (
	maxSeqSQL       = `SELECT coalesce(max(seq), 0) FROM events`
	setSeqOffsetSQL = `UPDATE meta SET value = CAST(CAST(value AS INTEGER) + :d AS TEXT) WHERE key = 'seq_offset'`
)

// maxSeq is the largest seq in the outbox, 0 when it is empty.
func (o *outbox) maxSeq() (int64, error) {
	var m int64
	err := sqlitex.Execute(o.conn, maxSeqSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { m = stmt.ColumnInt64(0); return nil },
	})
	return m, err
}

// rebase keeps countsSQL right after n events were deleted in the current
// write transaction: the count fell by n, and max(seq) from maxBefore (the
// largest seq before the deletes, or at least the largest deleted: when the
// largest row went, that is it) to what it is now. The next append gets
// max(seq)+1, which rebase accounts for.
func (o *outbox) rebase(maxBefore, n int64) error {
	if n == 0 {
		return nil
	}
	after, err := o.maxSeq()
	if err != nil {
		return err
	}
	// count = max − offset, before and after: offset' = offset + (after −
	// before) + n.
	d := after - max(maxBefore, after) + n
	return sqlitex.Execute(o.conn, setSeqOffsetSQL, &sqlitex.ExecOptions{Named: map[string]any{":d": d}})
}

const nextAvailableSQL = `SELECT min(available_at) FROM events WHERE state = 0`

// event is one queued event.
type event struct {
	Seq       int64
	ID        string
	Kind      string
	Payload   []byte
	CreatedAt time.Time
	Attempt   int // the number of this delivery attempt, from 1
}

// outbox is an open connection to the queue. It is not safe for concurrent
// use: the daemon owns one for its whole life.
type outbox struct {
	conn *sqlite.Conn
	gate *flock.Flock // held shared while conn is open: see gate.go
	now  func() time.Time
	path string
	file os.FileInfo // the database file as opened, to notice its replacement
	shm  *os.File    // its WAL index, opened by readWALIndexHeader, closed after conn
}

// dbConn is one connection to the outbox and the gate it holds shared
// while it is open (gate.go).
type dbConn struct {
	*sqlite.Conn
	gate *flock.Flock
}

// Close closes the connection, then lets go of the gate: in this order,
// so that a salvage never moves the outbox aside under the connection.
func (c *dbConn) Close() error {
	err := c.Conn.Close()
	releaseGate(c.gate)
	return err
}

// createDBFile makes the database file 0600 before SQLite opens it: SQLite
// gives the -wal and -shm files the mode of the database file. It only
// ever creates the file (O_EXCL), and leaves one that is there alone,
// unopened: on Unix, closing any descriptor of a file drops every record
// lock the process holds on it, so opening and closing outbox.db beside a
// live connection of this process (the daemon's, when it reopens or
// salvages the outbox) would drop the locks SQLite holds for it, and
// another process would act as if no connection had the outbox open. A
// symlink in its place is refused, not written through: O_EXCL fails on
// it, and SQLite opens no symlink (sqliteNoFollow).
func createDBFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// openConn opens one connection with the settings every user of the outbox
// needs, holding the outbox's gate shared until it is closed. busy bounds
// the wait for both: for a salvage that holds the gate, then, with what is
// left of it, for a lock that SQLite waits for.
func openConn(path string, busy time.Duration) (*dbConn, error) {
	start := time.Now()
	gate, err := holdGate(path, busy)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	conn, err := openSQLite(path, max(busy-time.Since(start), 0))
	if err != nil {
		releaseGate(gate)
		return nil, err
	}
	return &dbConn{Conn: conn, gate: gate}, nil
}

// openSQLite is openConn without the gate, for the salvage, which holds it
// exclusively. synchronous=NORMAL is set explicitly: in WAL mode it keeps
// every commit safe from a process crash and costs no fsync per commit.
func openSQLite(path string, busy time.Duration) (*sqlite.Conn, error) {
	if err := createDBFile(path); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate|sqliteNoFollow)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	conn.SetBusyTimeout(busy)
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA synchronous = NORMAL", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	return conn, nil
}

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
	script := schemaSQL
	switch v {
	case 1:
		script = migrateV1SQL + migrateV2SQL
	case 2:
		script = migrateV2SQL
	}
	if err = sqlitex.ExecuteScript(conn, script, nil); err != nil {
		return fmt.Errorf("migrate outbox: %w", err)
	}
	return nil
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

// openOutbox opens the outbox for the daemon and the inspection commands,
// creating or migrating it as needed.
//
// It first checks that the outbox is this home's (checkIdentity): one that
// holds another outbox's WAL or database file is not opened for writing,
// which would apply that WAL to outbox.db as it closed, and the error is
// errForeignOutbox.
func openOutbox(h home, busy time.Duration, now func() time.Time) (*outbox, error) {
	idn, err := checkIdentity(h, busy)
	if err != nil {
		return nil, err
	}
	conn, err := openConn(h.path(dbFileName), busy)
	if err != nil {
		return nil, err
	}
	if err := migrate(conn.Conn); err != nil {
		conn.Close()
		return nil, err
	}
	if err := idn.adopt(h, conn.Conn); err != nil {
		conn.Close()
		return nil, err
	}
	// The daemon keeps its connection open for ever, so the WAL file is
	// never deleted; without a limit it keeps the size of its largest burst
	// (a vacuum after a big drain writes many pages through it).
	if err := sqlitex.ExecuteTransient(conn.Conn, "PRAGMA journal_size_limit = 4194304", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	path := h.path(dbFileName)
	fi, err := os.Stat(path)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	return &outbox{conn: conn.Conn, gate: conn.gate, now: now, path: path, file: fi}, nil
}

// replaced reports whether the database file this outbox has open is no
// longer the one at its path: someone deleted or replaced outbox.db (to
// reset the queue, say) while the connection stayed open. enqueue then
// writes to the new file, and a daemon that kept reading the old one would
// never see those events.
func (o *outbox) replaced() bool {
	fi, err := os.Stat(o.path)
	return err != nil || !os.SameFile(o.file, fi)
}

// Close closes the connection, then the WAL index that readWALIndexHeader
// opened, then lets go of the gate, as dbConn.Close. On Unix, closing any
// descriptor of a file drops the locks the process holds on it (fcntl),
// SQLite's included: the WAL index stays open as long as the outbox, and
// is closed only once SQLite is done with it. (On Windows it is opened
// with delete shared, so that SQLite may still remove it.)
func (o *outbox) Close() error {
	err := o.conn.Close()
	if o.shm != nil {
		o.shm.Close()
	}
	releaseGate(o.gate)
	return err
}

// walIndexHeader is the first 48 bytes of the outbox's WAL index
// (outbox.db-shm): SQLite's header, whose change counter, frame count and
// salts move with every commit by any connection ("The WAL-Index Format" in
// SQLite's file format document). It is read with one pread, no SQLite
// code. A writer may update it meanwhile; a torn read differs.
type walIndexHeader [48]byte

func (o *outbox) readWALIndexHeader() (walIndexHeader, error) {
	var h walIndexHeader
	if o.shm == nil {
		f, err := openShared(o.path+"-shm", os.O_RDONLY, 0)
		if err != nil {
			return h, err
		}
		o.shm = f
	}
	_, err := o.shm.ReadAt(h[:], 0)
	return h, err
}

// immediate runs fn in one write transaction, taken at once, so that the
// settlement of a batch (acks, retries, dead letters, the status it leaves)
// commits together or not at all.
func (o *outbox) immediate(fn func() error) (err error) {
	end, err := sqlitex.ImmediateTransaction(o.conn)
	if err != nil {
		return err
	}
	defer end(&err)
	return fn()
}

// insertEvent stores one event unless its id is already queued. It is the
// whole of enqueue's database work when the schema is current.
func insertEvent(conn *sqlite.Conn, id, kind string, payload []byte, created time.Time) error {
	stmt, err := conn.Prepare(insertSQL)
	if err != nil {
		return err
	}
	stmt.BindText(1, id)
	stmt.BindText(2, kind)
	stmt.BindBytes(3, payload)
	stmt.BindInt64(4, created.UnixMilli())
	return stepOnce(stmt)
}

// stepOnce runs a prepared statement that returns no rows and resets it
// for its next use, returning the first error of the two.
func stepOnce(stmt *sqlite.Stmt) error {
	_, err := stmt.Step()
	if rerr := stmt.Reset(); err == nil {
		err = rerr
	}
	return err
}

// insertDeadSQL stores a dead letter: what a hook handed over that cannot
// be queued as it is, and why.
const insertDeadSQL = `INSERT INTO events (id, kind, payload, created_at, available_at, state, last_error, raw)
VALUES (?1, ?2, ?3, ?4, ?4, 2, ?5, ?6) ON CONFLICT (id) DO NOTHING`

// insertDead stores a dead letter unless its id is already queued. raw marks
// a payload that is not one JSON value: it is kept, never sent.
func insertDead(conn *sqlite.Conn, id, kind string, payload []byte, created time.Time, reason string, raw bool) error {
	stmt, err := conn.Prepare(insertDeadSQL)
	if err != nil {
		return err
	}
	stmt.BindText(1, id)
	stmt.BindText(2, kind)
	stmt.BindBytes(3, payload)
	stmt.BindInt64(4, created.UnixMilli())
	stmt.BindText(5, reason)
	stmt.BindBool(6, raw)
	return stepOnce(stmt)
}

// enqueueDB is enqueue's fast path: one connection, one version check, one
// insert, no pool and no migration work when the schema is current.
func enqueueDB(path string, busy time.Duration, id, kind string, payload []byte, created time.Time) error {
	conn, err := openEnqueueConn(path, busy)
	if err != nil {
		return err
	}
	defer conn.Close()
	return insertEvent(conn.Conn, id, kind, payload, created)
}

// enqueueDeadDB is enqueueDB for a dead letter.
func enqueueDeadDB(path string, busy time.Duration, id, kind string, payload []byte, created time.Time, reason string, raw bool) error {
	conn, err := openEnqueueConn(path, busy)
	if err != nil {
		return err
	}
	defer conn.Close()
	return insertDead(conn.Conn, id, kind, payload, created, reason, raw)
}

// openEnqueueConn opens the one connection an enqueue uses.
func openEnqueueConn(path string, busy time.Duration) (*dbConn, error) {
	conn, err := openConn(path, busy)
	if err != nil {
		return nil, err
	}
	// migrate reads the schema version and returns at once when it is
	// current: one header read, the only schema work on the fast path.
	if err := migrate(conn.Conn); err != nil {
		conn.Close()
		return nil, err
	}
	if err := checkEnqueueIdentity(path, conn.Conn); err != nil {
		closeUnapplied(path, conn)
		return nil, err
	}
	return conn, nil
}

func (o *outbox) insert(id, kind string, payload []byte, created time.Time) error {
	return insertEvent(o.conn, id, kind, payload, created)
}

func (o *outbox) insertDead(id, kind string, payload []byte, created time.Time, reason string, raw bool) error {
	return insertDead(o.conn, id, kind, payload, created, reason, raw)
}

// newToken returns a random claim token.
func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// claim marks up to limit ready events (at most budget bytes once encoded,
// but at least one) inflight under a new claim token, with a lease that ends after
// lease. Events come back in queue order.
func (o *outbox) claim(limit, budget int, lease time.Duration) (token string, events []event, err error) {
	now := o.now()
	token = newToken()
	end, err := sqlitex.ImmediateTransaction(o.conn)
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	defer end(&err)
	err = sqlitex.Execute(o.conn, reclaimSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":now": now.UnixMilli(), ":max": maxAttempts},
	})
	if err != nil {
		return "", nil, fmt.Errorf("reclaim: %w", err)
	}
	err = sqlitex.Execute(o.conn, capWaitSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":cap": now.Add(maxWait).UnixMilli()},
	})
	if err != nil {
		return "", nil, fmt.Errorf("cap waits: %w", err)
	}
	events, old, err := o.ready(now, limit, budget)
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	if old != "" {
		// A batch given back goes out again whole, whatever limit and
		// budget say: they held when it was first claimed. readySQL
		// names it only where reclaimBatchSQL finds it (pending, at
		// available_at 0), so this claims at least its first event.
		events, err = o.reclaimBatch(token, old, now.Add(lease))
		if err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
		slices.SortFunc(events, func(a, b event) int { return int(a.Seq - b.Seq) })
		return token, events, nil
	}
	mark, err := o.conn.Prepare(markSQL)
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	mark.SetText(":claim", token)
	mark.SetInt64(":lease", now.Add(lease).UnixMilli())
	for _, e := range events {
		mark.SetInt64(":seq", e.Seq)
		_, err := mark.Step()
		if rerr := mark.Reset(); err == nil {
			err = rerr
		}
		if err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
	}
	slices.SortFunc(events, func(a, b event) int { return int(a.Seq - b.Seq) })
	return token, events, nil
}

// ready reads the next ready events for claim (readySQL), up to limit
// events and budget bytes. old is the claim token of a batch given back
// when one is at the head of the queue; events is empty then.
func (o *outbox) ready(now time.Time, limit, budget int) (events []event, old string, err error) {
	ready, err := o.conn.Prepare(readySQL)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if rerr := ready.Reset(); err == nil {
			err = rerr
		}
	}()
	ready.SetInt64(":now", now.UnixMilli())
	ready.SetInt64(":limit", int64(limit))
	size := 0
	for {
		row, err := ready.Step()
		if err != nil || !row {
			return events, "", err
		}
		if len(events) == 0 && !ready.ColumnIsNull(6) {
			return nil, ready.ColumnText(6), nil
		}
		// The first event always goes, so that one large event still goes
		// out alone; after it, the batch ends at the byte budget.
		n := ready.ColumnLen(3) + ready.ColumnLen(1) + ready.ColumnLen(2) + eventOverhead
		if len(events) > 0 && size+n > budget {
			return events, "", nil
		}
		size += n
		e := scanEvent(ready)
		e.Attempt++ // markSQL counts this attempt.
		events = append(events, e)
	}
}

// scanEvent reads an event from a row of seq, id, kind, payload,
// created_at, attempts, as readySQL and reclaimBatchSQL return them.
func scanEvent(stmt *sqlite.Stmt) event {
	p := make([]byte, stmt.ColumnLen(3))
	stmt.ColumnBytes(3, p)
	return event{
		Seq:       stmt.ColumnInt64(0),
		ID:        stmt.ColumnText(1),
		Kind:      stmt.ColumnText(2),
		Payload:   p,
		CreatedAt: time.UnixMilli(stmt.ColumnInt64(4)).UTC(),
		Attempt:   stmt.ColumnInt(5),
	}
}

// reclaimBatch claims again the events of a batch given back under token
// old, as they were.
func (o *outbox) reclaimBatch(token, old string, lease time.Time) ([]event, error) {
	var events []event
	err := sqlitex.Execute(o.conn, reclaimBatchSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":claim": token, ":lease": lease.UnixMilli(), ":old": old},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			events = append(events, scanEvent(stmt))
			return nil
		},
	})
	return events, err
}

// forEachSeq runs query once per event in one savepoint, binding
// :seq and :claim and whatever named arguments args holds.
func (o *outbox) forEachSeq(query, token string, events []event, args map[string]any) (err error) {
	if len(events) == 0 {
		return nil
	}
	defer sqlitex.Save(o.conn)(&err)
	named := map[string]any{":claim": token}
	for k, v := range args {
		named[k] = v
	}
	for _, e := range events {
		named[":seq"] = e.Seq
		if err := sqlitex.Execute(o.conn, query, &sqlitex.ExecOptions{Named: named}); err != nil {
			return err
		}
	}
	return nil
}

// ack deletes delivered events. The claim token guards against a late ack
// from an expired claim deleting a row that was claimed again.
//
// The daemon acks inside its settlement's write transaction, so no enqueue
// commits between the deletes and the rebase.
func (o *outbox) ack(token string, events []event) (err error) {
	if len(events) == 0 {
		return nil
	}
	defer sqlitex.Save(o.conn)(&err)
	stmt, err := o.conn.Prepare(ackSQL)
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	var n, top int64
	stmt.SetText(":claim", token)
	for _, e := range events {
		stmt.SetInt64(":seq", e.Seq)
		_, err := stmt.Step()
		if rerr := stmt.Reset(); err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		if o.conn.Changes() > 0 {
			n, top = n+1, max(top, e.Seq)
		}
	}
	if err := o.rebase(top, n); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// release returns claimed events to pending, available again at at. A
// counted release keeps the attempt and dead-letters events that have had
// maxAttempts; an uncounted one (the endpoint was never really tried, or
// refused us for a reason that is not the events') gives it back. An empty
// errMsg keeps the previous error.
func (o *outbox) release(token string, events []event, at time.Time, counted bool, errMsg string) error {
	args := map[string]any{
		":counted": counted,
		":max":     maxAttempts,
		":at":      at.UnixMilli(),
		":error":   nil,
	}
	if errMsg != "" {
		args[":error"] = errMsg
	}
	if err := o.forEachSeq(releaseSQL, token, events, args); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// giveBack returns claimed events untried, to be sent again as the same
// batch: see giveBackSQL.
func (o *outbox) giveBack(token string, events []event) error {
	if err := o.forEachSeq(giveBackSQL, token, events, nil); err != nil {
		return fmt.Errorf("give back: %w", err)
	}
	return nil
}

// bury dead-letters claimed events with errMsg as their last error.
func (o *outbox) bury(token string, events []event, errMsg string) error {
	if err := o.forEachSeq(deadSQL, token, events, map[string]any{":error": errMsg}); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return nil
}

// resetInflight returns every inflight event to pending. The daemon calls it
// at start, holding the lock: whatever a previous instance had in flight was
// never acknowledged and must be sent again.
func (o *outbox) resetInflight() error {
	err := sqlitex.Execute(o.conn, resetInflightSQL, &sqlitex.ExecOptions{Named: map[string]any{":max": maxAttempts}})
	if err != nil {
		return fmt.Errorf("reset inflight events: %w", err)
	}
	return nil
}

// nextAvailable is the earliest time a pending event becomes ready, and
// false when nothing is pending. It is never more than maxWait from now,
// whatever the outbox holds: see capWaitSQL.
func (o *outbox) nextAvailable() (time.Time, bool, error) {
	var at time.Time
	var ok bool
	err := sqlitex.Execute(o.conn, nextAvailableSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if !stmt.ColumnIsNull(0) {
				at, ok = time.UnixMilli(stmt.ColumnInt64(0)), true
			}
			return nil
		},
	})
	if limit := o.now().Add(maxWait); at.After(limit) {
		at = limit
	}
	return at, ok, err
}

// counts is how many events the outbox holds in each state.
type counts struct {
	Pending       int64     `json:"pending"`
	Inflight      int64     `json:"inflight"`
	Dead          int64     `json:"dead"`
	OldestPending time.Time `json:"-"`
}

// counts counts the events in each state (countsSQL), and finds the
// creation time of the oldest pending event in queue order (the first
// accepted of those still waiting).
func (o *outbox) counts() (counts, error) {
	var c counts
	err := sqlitex.Execute(o.conn, countsSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			c.Inflight, c.Dead = stmt.ColumnInt64(1), stmt.ColumnInt64(2)
			c.Pending = stmt.ColumnInt64(0) - c.Inflight - c.Dead
			return nil
		},
	})
	if err == nil && c.Pending > 0 {
		err = sqlitex.Execute(o.conn, oldestPendingSQL, &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { c.OldestPending = time.UnixMilli(stmt.ColumnInt64(0)); return nil },
		})
	}
	if err != nil {
		return counts{}, fmt.Errorf("count events: %w", err)
	}
	return c, nil
}

const (
	setMetaSQL = `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`
	metaSQL = `SELECT key, value FROM meta`
)

// setMeta stores daemon state that other commands show (the last delivery,
// the breaker, a pause) in the database, where status can read it.
func (o *outbox) setMeta(kv map[string]string) (err error) {
	defer sqlitex.Save(o.conn)(&err)
	for k, v := range kv {
		err := sqlitex.Execute(o.conn, setMetaSQL, &sqlitex.ExecOptions{Args: []any{k, v}})
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *outbox) meta() (map[string]string, error) {
	m := map[string]string{}
	err := sqlitex.Execute(o.conn, metaSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { m[stmt.ColumnText(0)] = stmt.ColumnText(1); return nil },
	})
	return m, err
}

// vacuum gives free pages back to the file system, a bounded number at a
// time, so that a drained outbox does not keep its peak size for ever. It
// reports how many pages it freed and how many free pages are left, so that
// the daemon can go on in later idle moments until none are.
func (o *outbox) vacuum(pages int) (freed, left int64, err error) {
	before, err := o.pragmaInt("freelist_count")
	if err != nil || before == 0 {
		return 0, before, err
	}
	if err := sqlitex.ExecuteTransient(o.conn, "PRAGMA incremental_vacuum("+strconv.Itoa(pages)+")", nil); err != nil {
		return 0, before, err
	}
	left, err = o.pragmaInt("freelist_count")
	return before - left, left, err
}

// truncateWAL checkpoints the WAL and truncates it to nothing. It waits, up
// to the busy timeout, for an enqueue that is writing; the daemon calls it
// once per shrink, in an idle moment.
func (o *outbox) truncateWAL() error {
	return sqlitex.ExecuteTransient(o.conn, "PRAGMA wal_checkpoint(TRUNCATE)", nil)
}

func (o *outbox) pragmaInt(name string) (int64, error) {
	var v int64
	err := sqlitex.ExecuteTransient(o.conn, "PRAGMA "+name, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { v = stmt.ColumnInt64(0); return nil },
	})
	return v, err
}

// ensureAutoVacuum turns on incremental auto_vacuum in an outbox made by a
// version that asked for it too late (after WAL mode, when it is ignored).
// That takes one VACUUM, which rewrites the file; the daemon does it once at
// start, never enqueue.
func (o *outbox) ensureAutoVacuum() (converted bool, err error) {
	mode, err := o.pragmaInt("auto_vacuum")
	if err != nil || mode == 2 {
		return false, err
	}
	if err := sqlitex.ExecuteTransient(o.conn, "PRAGMA auto_vacuum = INCREMENTAL", nil); err != nil {
		return false, err
	}
	if err := sqlitex.ExecuteTransient(o.conn, "VACUUM", nil); err != nil {
		return false, err
	}
	return true, nil
}

// deadLetter is a dead event as 'outbox list' shows it.
type deadLetter struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
}

const deadLettersSQL = `SELECT id, kind, attempts, coalesce(last_error, ''), created_at
FROM events WHERE state = 2 ORDER BY seq LIMIT :limit`

func (o *outbox) deadLetters(limit int) ([]deadLetter, error) {
	var out []deadLetter
	err := sqlitex.Execute(o.conn, deadLettersSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":limit": limit},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			out = append(out, deadLetter{
				ID: stmt.ColumnText(0), Kind: stmt.ColumnText(1), Attempts: stmt.ColumnInt(2),
				LastError: stmt.ColumnText(3), CreatedAt: time.UnixMilli(stmt.ColumnInt64(4)).UTC(),
			})
			return nil
		},
	})
	return out, err
}

const kindCountsSQL = `SELECT kind, state, count(*) FROM events GROUP BY kind, state ORDER BY kind, state`

// kindCounts is how many events of each kind are in each state.
func (o *outbox) kindCounts() (map[string]*counts, error) {
	out := map[string]*counts{}
	err := sqlitex.Execute(o.conn, kindCountsSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			c := out[stmt.ColumnText(0)]
			if c == nil {
				c = &counts{}
				out[stmt.ColumnText(0)] = c
			}
			switch stmt.ColumnInt(1) {
			case statePending:
				c.Pending = stmt.ColumnInt64(2)
			case stateInflight:
				c.Inflight = stmt.ColumnInt64(2)
			case stateDead:
				c.Dead = stmt.ColumnInt64(2)
			}
			return nil
		},
	})
	return out, err
}

// retryDeadSQL leaves raw dead letters dead: their bytes are not JSON and
// would break the batch they went out in (the CHECK on raw refuses it too).
// It clears the claim token a buried batch may have kept (older releases
// kept it): claim would take the event for a batch given back.
const retryDeadSQL = `UPDATE events SET state = 0, attempts = 0, available_at = :now, claim = NULL
WHERE state = 2 AND raw = 0 AND (:all OR id = :id)`

const rawDeadSQL = `SELECT id FROM events WHERE state = 2 AND raw = 1 AND (:all OR id = :id) ORDER BY seq`

// wakeWaitingSQL makes pending events that wait for a retry ready now. It
// keeps their attempts: they are not dead, only early.
const wakeWaitingSQL = `UPDATE events SET available_at = :now
WHERE state = 0 AND available_at > :now AND (:all OR id = :id)`

// retryDead returns dead letters to pending with their attempts reset: all
// of them, or those with the given ids. It reports how many it moved, and
// the ids of the raw dead letters it left dead.
func (o *outbox) retryDead(all bool, ids []string) (n int, raw []string, err error) {
	defer sqlitex.Save(o.conn)(&err)
	if n, err = o.updateEach(retryDeadSQL, all, ids); err != nil {
		return 0, nil, err
	}
	if all {
		ids = []string{""}
	}
	for _, id := range ids {
		err = sqlitex.Execute(o.conn, rawDeadSQL, &sqlitex.ExecOptions{
			Named:      map[string]any{":all": all, ":id": id},
			ResultFunc: func(stmt *sqlite.Stmt) error { raw = append(raw, stmt.ColumnText(0)); return nil },
		})
		if err != nil {
			return 0, nil, err
		}
	}
	return n, raw, nil
}

// wakeWaiting makes pending events that wait for a retry (their backoff, a
// Retry-After, or a time a stepped clock left far ahead) ready now: all of
// them, or those with the given ids. It reports how many it moved.
func (o *outbox) wakeWaiting(all bool, ids []string) (n int, err error) {
	return o.updateEach(wakeWaitingSQL, all, ids)
}

// updateEach runs query, which takes :now, :all and :id, once for all
// events or once per id, in one savepoint, and reports the rows it changed.
func (o *outbox) updateEach(query string, all bool, ids []string) (n int, err error) {
	defer sqlitex.Save(o.conn)(&err)
	if all {
		ids = []string{""}
	}
	for _, id := range ids {
		err := sqlitex.Execute(o.conn, query, &sqlitex.ExecOptions{
			Named: map[string]any{":now": o.now().UnixMilli(), ":all": all, ":id": id},
		})
		if err != nil {
			return 0, err
		}
		n += o.conn.Changes()
	}
	return n, nil
}

// storedEvent is one event as 'outbox show' prints it.
type storedEvent struct {
	ID        string
	Kind      string
	Payload   []byte
	CreatedAt time.Time
	State     int
	Attempts  int
	LastError string
	Raw       bool
}

const eventByIDSQL = `SELECT id, kind, payload, created_at, state, attempts, coalesce(last_error, ''), raw
FROM events WHERE id = :id`

// event returns the event with the given id, and false when there is none.
func (o *outbox) event(id string) (storedEvent, bool, error) {
	var e storedEvent
	found := false
	err := sqlitex.Execute(o.conn, eventByIDSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":id": id},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			found = true
			e = storedEvent{
				ID: stmt.ColumnText(0), Kind: stmt.ColumnText(1), Payload: make([]byte, stmt.ColumnLen(2)),
				CreatedAt: time.UnixMilli(stmt.ColumnInt64(3)).UTC(), State: stmt.ColumnInt(4),
				Attempts: stmt.ColumnInt(5), LastError: stmt.ColumnText(6), Raw: stmt.ColumnBool(7),
			}
			stmt.ColumnBytes(2, e.Payload)
			return nil
		},
	})
	return e, found, err
}

const eventExistsSQL = `SELECT 1 FROM events WHERE id = :id`

// missing returns those of ids that name no event in the outbox, in order.
func (o *outbox) missing(ids []string) ([]string, error) {
	var none []string
	for _, id := range ids {
		found := false
		err := sqlitex.Execute(o.conn, eventExistsSQL, &sqlitex.ExecOptions{
			Named:      map[string]any{":id": id},
			ResultFunc: func(*sqlite.Stmt) error { found = true; return nil },
		})
		if err != nil {
			return nil, err
		}
		if !found {
			none = append(none, id)
		}
	}
	return none, nil
}

const purgeDeadSQL = `DELETE FROM events WHERE state = 2`

// purgeDead deletes every dead letter and reports how many.
func (o *outbox) purgeDead() (n int, err error) {
	err = o.immediate(func() error {
		top, err := o.maxSeq()
		if err != nil {
			return err
		}
		if err := sqlitex.Execute(o.conn, purgeDeadSQL, nil); err != nil {
			return err
		}
		n = o.conn.Changes()
		return o.rebase(top, int64(n))
	})
	return n, err
}

// startBusy is how long the daemon's first look at the outbox waits for
// a lock another process holds before it says that it waits (and looks
// for a stop request); outboxBusy is the wait once it runs.
const (
	startBusy  = time.Second
	outboxBusy = 5 * time.Second
)

// startOutbox opens the outbox for the daemon, gives back the claims of a
// daemon that died, and records the endpoint for status. Another process
// may hold the outbox locked for a while (an sqlite3 shell in a
// transaction, a backup): then the daemon says so in its log and tries
// again, backing off to every 30 s, until it gets in or ctx is done. Only
// another error is returned: giving up on a locked outbox would leave the
// events queued in it undelivered. A salvage that a killed or stopped
// daemon left unfinished is finished first (resumeSalvage). A corrupt
// outbox is salvaged (healAtStart), waiting up to opts.gateWait at a time
// for other connections to it to close.
func startOutbox(ctx context.Context, h home, endpoint, source string, opts healOpts, log *slog.Logger) (*outbox, error) {
	healed := false
	// Looked at before anything opens the outbox, which would drop such
	// a WAL.
	if walGarbage(h.path(dbFileName) + "-wal") {
		log.Error("outbox WAL is not a WAL; salvaging the outbox", "path", h.path(dbFileName)+"-wal")
		if err := healAtStart(ctx, h, opts, log); err != nil {
			return nil, err
		}
		healed = true
	}
	if err := resumeSalvage(ctx, h, opts, log); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		if !isCorrupt(err) {
			// The salvage stays under way, for the next start; a corrupt
			// outbox is salvaged below.
			log.Error("finish the salvage under way", "error", err)
		}
	}
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		ob, err := openOutbox(h, startBusy, time.Now)
		if err == nil {
			err = ob.resetInflight()
			if err == nil {
				err = ob.setMeta(map[string]string{"endpoint": endpoint, "endpoint_source": source, "paused_reason": "", "paused_since": "", "breaker": "closed",
					metaSpillUnreadable: "0", metaSpillUnreadableErr: ""})
				if err != nil {
					err = fmt.Errorf("write status: %w", err)
				}
			}
			if err == nil {
				ob.conn.SetBusyTimeout(outboxBusy)
				return ob, nil
			}
			ob.Close()
		}
		if isCorrupt(err) && !healed {
			// Salvaged once: a fresh outbox that is corrupt too is not
			// salvaged again and again.
			log.Error("outbox is corrupt; salvaging it", "path", h.path(dbFileName), "error", err)
			if err := healAtStart(ctx, h, opts, log); err != nil {
				return nil, err
			}
			healed = true
			continue
		}
		if errors.Is(err, errForeignOutbox) && !healed {
			log.Error("outbox holds another outbox's files; setting them aside", "path", h.path(dbFileName), "error", err)
			if err := retryHeal(ctx, opts, log, foreignHeal, h); err != nil {
				return nil, err
			}
			healed = true
			continue
		}
		if code := sqlite.ErrCode(err).ToPrimary(); code != sqlite.ResultBusy && code != sqlite.ResultLocked {
			return nil, err
		}
		log.Warn("outbox is locked by another process; waiting for it", "path", h.path(dbFileName), "retry_in", wait.String(), "error", err)
		if !sleepCtx(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// healAtStart salvages the corrupt outbox for startOutbox (healOutbox).
// While other connections keep the outbox open for longer than opts.gateWait
// (errOutboxInUse), it tries again, backing off to every 30 s, until ctx is
// done: a daemon that gave up would leave the outbox corrupt.
func healAtStart(ctx context.Context, h home, opts healOpts, log *slog.Logger) error {
	return retryHeal(ctx, opts, log, healWith, h)
}

// foreignHeal is healForeign with the daemon's healOpts.
func foreignHeal(ctx context.Context, h home, now time.Time, opts healOpts, log *slog.Logger) error {
	return healForeign(ctx, h, now, opts.gateWait, log)
}

// retryHeal runs heal (healWith or foreignHeal) as healAtStart says.
func retryHeal(ctx context.Context, opts healOpts, log *slog.Logger,
	heal func(context.Context, home, time.Time, healOpts, *slog.Logger) error, h home) error {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		err := heal(ctx, h, time.Now(), opts, log)
		if !errors.Is(err, errOutboxInUse) {
			return err
		}
		log.Warn("outbox is in use; salvaging it later", "retry_in", wait.String(), "error", err)
		if !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
	}
}
