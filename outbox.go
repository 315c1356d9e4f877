package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

const insertSQL = `INSERT INTO events (id, kind, payload, created_at, available_at, traceparent)
VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (id) DO NOTHING`

// event is one queued event.
type event struct {
	Seq       int64
	ID        string
	Kind      string
	Payload   []byte
	CreatedAt time.Time
	Attempt   int // the number of this delivery attempt, from 1
	// Traceparent is the hook's TRACEPARENT, empty when it had none: the
	// agent's own span, which difflore's spans become children of.
	Traceparent string
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
	// primary names the sink whose progress the events rows hold
	// (outboxsinks.go), for the gaps it records; empty: "default".
	primary string
	// wmu, when set, is held around each write transaction this
	// connection begins (begin): the daemon's connections share one.
	wmu *sync.Mutex
	// shared is set once other sinks' drainers claim from the outbox too
	// (syncSinks named some): claim then looks before it locks.
	shared bool
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

// begin starts a write transaction at once. With several drainers in the
// daemon (outboxsinks.go), their connections take turns on wmu first: a
// writer of this process then waits on the mutex, woken the moment the
// other is done, rather than in SQLite's busy wait, which sleeps for a
// millisecond and more between its tries.
func (o *outbox) begin() (func(*error), error) {
	if o.wmu != nil {
		o.wmu.Lock()
	}
	end, err := sqlitex.ImmediateTransaction(o.conn)
	if err != nil {
		if o.wmu != nil {
			o.wmu.Unlock()
		}
		return nil, err
	}
	return func(errp *error) {
		end(errp)
		if o.wmu != nil {
			o.wmu.Unlock()
		}
	}, nil
}

// immediate runs fn in one write transaction, taken at once, so that the
// settlement of a batch (acks, retries, dead letters, the status it leaves)
// commits together or not at all.
func (o *outbox) immediate(fn func() error) (err error) {
	end, err := o.begin()
	if err != nil {
		return err
	}
	defer end(&err)
	return fn()
}

// atomically makes the writes that follow one unit, ended by the function
// it returns: a savepoint when no transaction is open, nothing inside one.
// Inside a write transaction (begin, immediate) a savepoint made SQLite
// copy every page the writes changed into a statement journal, a temporary
// file once it outgrew 64 KiB: a batch's settlement wrote a third of its
// pages twice more that way (BenchmarkDrainSinks). Every transaction
// around these writes returns their error and rolls back whole, so the
// savepoint gave nothing there.
func (o *outbox) atomically() func(*error) {
	if o.conn.AutocommitEnabled() {
		return sqlitex.Save(o.conn)
	}
	return func(*error) {}
}

// insertEvent stores one event unless its id is already queued. It is the
// whole of enqueue's database work when the schema is current.
func insertEvent(conn *sqlite.Conn, id, kind string, payload []byte, created time.Time) error {
	return insertEventTP(conn, id, kind, payload, created, "")
}

// insertEventTP is insertEvent with the hook's TRACEPARENT, stored as NULL
// when empty.
func insertEventTP(conn *sqlite.Conn, id, kind string, payload []byte, created time.Time, traceparent string) error {
	stmt, err := conn.Prepare(insertSQL)
	if err != nil {
		return err
	}
	stmt.BindText(1, id)
	stmt.BindText(2, kind)
	stmt.BindBytes(3, payload)
	stmt.BindInt64(4, created.UnixMilli())
	// Bindings outlive a reset: ?5 is bound every time.
	if traceparent == "" {
		stmt.BindNull(5)
	} else {
		stmt.BindText(5, traceparent)
	}
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
	return enqueueDBTP(path, busy, id, kind, payload, created, "")
}

// enqueueDBTP is enqueueDB with the hook's TRACEPARENT.
func enqueueDBTP(path string, busy time.Duration, id, kind string, payload []byte, created time.Time, traceparent string) error {
	conn, err := openEnqueueConn(path, busy)
	if err != nil {
		return err
	}
	defer conn.Close()
	return insertEventTP(conn.Conn, id, kind, payload, created, traceparent)
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
// again, backing off from w.lockRetry to every 30 s, until it gets in or
// ctx is done; each look waits w.lockBusy for the lock. Only
// another error is returned: giving up on a locked outbox would leave the
// events queued in it undelivered. A salvage that a killed or stopped
// daemon left unfinished is finished first (resumeSalvage). A corrupt
// outbox is salvaged (healAtStart), waiting up to opts.gateWait at a time
// for other connections to it to close.
func startOutbox(ctx context.Context, h home, endpoint, source string, w waits, opts healOpts, log *slog.Logger) (*outbox, error) {
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
	for wait := w.lockRetry; ; wait = min(2*wait, 30*time.Second) {
		ob, err := openOutbox(h, w.lockBusy, time.Now)
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
