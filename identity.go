package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The outbox's identity tells its own files from another outbox's. SQLite
// gives a WAL no link to its database: another outbox's outbox.db-wal put
// beside outbox.db (a backup restored by halves) is applied as this
// outbox's own, its pages over this file's, and the first connection to
// close writes them into outbox.db for good. So each outbox carries a
// random id, kept in three places: the file outbox.id in the data home,
// which no SQLite file can overwrite, and inside the database both in its
// header (PRAGMA application_id, on page 1, which every transaction that
// grows or shrinks the file rewrites) and in the meta table (whose page
// the daemon's status writes rewrite). openOutbox compares them, through a
// read-only connection, before any connection that could checkpoint opens
// the outbox: a connection opened read-only never checkpoints, so a
// foreign WAL stays beside the file, unapplied. A mismatch is damage:
// errForeignOutbox, which the daemon heals (healForeign).
//
// A foreign WAL that holds neither page 1 nor the meta page (a few
// in-place updates, nothing that grew the file) cannot be told from this
// outbox's own: nothing in its pages names the database they belong to.

// errForeignOutbox is openOutbox's error for an outbox that holds a WAL or
// a database file of another data home.
var errForeignOutbox = errors.New("the outbox holds a WAL or database file of another data home")

// outboxID is an outbox's identity, written in outbox.id as 32 hex digits.
type outboxID [16]byte

func newOutboxID() outboxID {
	var id outboxID
	rand.Read(id[:])
	return id
}

func (id outboxID) String() string { return hex.EncodeToString(id[:]) }

// appID is the part of the id kept in the database header: its first 32
// bits, never 0, which is what a database without an id has.
func (id outboxID) appID() int32 {
	v := int32(binary.BigEndian.Uint32(id[:4]))
	if v == 0 {
		v = 1
	}
	return v
}

func parseOutboxID(s string) (outboxID, error) {
	var id outboxID
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("outbox id %q is not 32 hex digits", strings.TrimSpace(s))
	}
	copy(id[:], b)
	return id, nil
}

// readHomeID reads the outbox's id from outbox.id; found is false when
// the home has none yet (made by a difflore before the id, or new).
func readHomeID(h home) (id outboxID, found bool, err error) {
	f, err := openRegular(h.path(idFileName), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return id, false, nil
	}
	if err != nil {
		return id, false, fmt.Errorf("read outbox id: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return id, false, fmt.Errorf("read outbox id: %w", err)
	}
	id, err = parseOutboxID(string(b))
	if err != nil {
		return id, false, &exitError{code: 1, err: fmt.Errorf("%s: %w", h.path(idFileName), err),
			hint: "remove the file: the daemon takes the id the outbox holds"}
	}
	return id, true, nil
}

func writeHomeID(h home, id outboxID) error {
	if err := writeFileAtomic(h.path(idFileName), []byte(id.String()+"\n")); err != nil {
		return fmt.Errorf("write outbox id: %w", err)
	}
	return nil
}

// dbIdentity is the id an open database holds: its header's
// application_id (0 for none) and the outbox_id of its meta table ("" for
// none).
type dbIdentity struct {
	app  int32
	meta string
}

const identityMetaSQL = `SELECT value FROM meta WHERE key = 'outbox_id'`

const hasMetaSQL = `SELECT count(*) FROM sqlite_schema WHERE name = 'meta' AND type = 'table'`

// readDBIdentity reads the id conn's database holds, as SQLite shows it:
// with its WAL applied.
func readDBIdentity(conn *sqlite.Conn) (dbIdentity, error) {
	var d dbIdentity
	err := sqlitex.ExecuteTransient(conn, "PRAGMA application_id", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { d.app = int32(stmt.ColumnInt64(0)); return nil },
	})
	if err != nil {
		return d, err
	}
	hasMeta := false
	err = sqlitex.ExecuteTransient(conn, hasMetaSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { hasMeta = stmt.ColumnInt(0) > 0; return nil },
	})
	if err != nil || !hasMeta {
		return d, err
	}
	err = sqlitex.ExecuteTransient(conn, identityMetaSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { d.meta = stmt.ColumnText(0); return nil },
	})
	return d, err
}

// unstamped reports whether the database holds no id at all: new, or made
// by a difflore before the id.
func (d dbIdentity) unstamped() bool { return d.app == 0 && d.meta == "" }

// is reports whether the database holds id, in both places.
func (d dbIdentity) is(id outboxID) bool { return d.app == id.appID() && d.meta == id.String() }

// own reports whether the database holds id or none: nothing in it says
// that it is another outbox.
func (d dbIdentity) own(id outboxID) bool { return d.unstamped() || d.is(id) }

// stampedID is the id the database holds in both places, if it does.
func (d dbIdentity) stampedID() (outboxID, bool) {
	id, err := parseOutboxID(d.meta)
	return id, err == nil && d.app == id.appID()
}

// identity is what openOutbox learnt of the outbox's identity before it
// opened it for writing.
type identity struct {
	id    outboxID
	known bool // outbox.id holds id
	stamp bool // the database does not hold id yet
}

// checkIdentity compares the id of the outbox, as SQLite shows it with its
// WAL applied, with the home's, through a connection opened read-only
// (which never checkpoints) while the gate is held shared. A home without
// outbox.id takes the id its outbox holds, or a new one for an outbox that
// holds none (one made before the id): nothing is lost.
func checkIdentity(h home, busy time.Duration) (identity, error) {
	id, known, err := readHomeID(h)
	if err != nil {
		return identity{}, err
	}
	path := h.path(dbFileName)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if !known {
			id = newOutboxID()
		}
		return identity{id: id, known: known, stamp: true}, nil
	}
	start := time.Now()
	gate, err := holdGate(path, busy)
	if err != nil {
		return identity{}, fmt.Errorf("open outbox: %w", err)
	}
	defer releaseGate(gate)
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly|sqliteNoFollow)
	if err != nil {
		return identity{}, fmt.Errorf("open outbox: %w", err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(max(busy-time.Since(start), 0))
	d, err := readDBIdentity(conn)
	if err != nil {
		return identity{}, fmt.Errorf("open outbox: %w", err)
	}
	return judgeIdentity(id, known, d)
}

// judgeIdentity decides, from the home's id (known says that outbox.id
// holds it) and the id the outbox shows, whether the outbox is this
// home's, and what of the id is still to be written.
func judgeIdentity(id outboxID, known bool, d dbIdentity) (identity, error) {
	switch {
	case known && d.is(id):
		return identity{id: id, known: true}, nil
	case known && d.unstamped():
		return identity{id: id, known: true, stamp: true}, nil
	case known:
		return identity{}, fmt.Errorf("%w (id %s, the outbox shows %08x/%q)", errForeignOutbox, id, uint32(d.app), d.meta)
	case d.unstamped():
		return identity{id: newOutboxID(), stamp: true}, nil
	}
	if sid, ok := d.stampedID(); ok {
		return identity{id: sid}, nil
	}
	// No outbox.id, and a header and a meta table that disagree: one of
	// them comes from another outbox, which one cannot be told yet.
	return identity{}, fmt.Errorf("%w (its header says %08x, its meta table %q)", errForeignOutbox, uint32(d.app), d.meta)
}

// stampSQL writes the outbox's id into its meta table unless it holds one.
const stampSQL = `INSERT INTO meta (key, value) VALUES ('outbox_id', :id) ON CONFLICT (key) DO NOTHING`

// adopt writes the outbox's id where it is missing, once the outbox is
// open for writing: into the database (one transaction) and then into
// outbox.id, in this order so that a process killed in between leaves a
// database whose id the next open takes. When another process stamped the
// database first (two commands opening a new home's outbox at once), its
// id is taken.
func (idn identity) adopt(h home, conn *sqlite.Conn) (err error) {
	if idn.stamp {
		err = func() (err error) {
			end, err := sqlitex.ImmediateTransaction(conn)
			if err != nil {
				return err
			}
			defer end(&err)
			d, err := readDBIdentity(conn)
			if err != nil {
				return err
			}
			if sid, ok := d.stampedID(); ok && !idn.known {
				idn.id = sid
				return nil
			}
			if !d.own(idn.id) {
				return fmt.Errorf("%w (id %s, the outbox shows %08x/%q)", errForeignOutbox, idn.id, uint32(d.app), d.meta)
			}
			if err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA application_id = %d", idn.id.appID()), nil); err != nil {
				return err
			}
			return sqlitex.Execute(conn, stampSQL, &sqlitex.ExecOptions{Named: map[string]any{":id": idn.id.String()}})
		}()
		if err != nil {
			return fmt.Errorf("write outbox id: %w", err)
		}
	}
	if !idn.known {
		return writeHomeID(h, idn.id)
	}
	return nil
}

// foreignAside is the name under which healForeign keeps another outbox's
// files, with the suffixes it moves.
func foreignAside(h home, now time.Time) string {
	return h.path("outbox.foreign-" + now.UTC().Format("20060102T150405.000Z") + ".db")
}

// healForeign separates what belongs to this home from another outbox's
// half, holding the gate exclusively (closeGate) so that no connection has
// the files open: the WAL and its index are moved aside as
// outbox.foreign-<UTC time>.db-wal and -shm, never applied, and outbox.db,
// now read alone, is looked at. When it is this home's (or holds no id),
// it is salvaged as a corrupt outbox is (healOutbox): the receiver gets a
// gap that says what could not be read. When it is another home's, it is
// moved aside too and this home starts a fresh outbox, with a gap that
// says that an unknown number of events were lost (status counts it as a
// lower bound). The events of the other outbox are never delivered.
func healForeign(ctx context.Context, h home, now time.Time, wait time.Duration, log *slog.Logger) error {
	aside := foreignAside(h, now)
	foreignDB, err := separateForeign(ctx, h, aside, wait, log)
	if err != nil {
		return err
	}
	if !foreignDB {
		log.Warn("outbox had the WAL of another outbox beside it: moved the WAL aside, unapplied; salvaging the outbox", "aside", aside+"-wal")
		return healOutbox(ctx, h, now, wait, log)
	}
	fresh, err := openOutbox(h, startBusy, time.Now)
	if err != nil {
		return fmt.Errorf("make a fresh outbox: %w", err)
	}
	defer fresh.Close()
	if err := fresh.insert(newEventID(now), gapKind, corruptGap(0, 0, false, time.Time{}, time.Time{}), now); err != nil {
		return fmt.Errorf("record the foreign outbox gap: %w", err)
	}
	if err := fresh.recordSalvage(0, true, filepath.Base(aside)); err != nil {
		return fmt.Errorf("record the salvage: %w", err)
	}
	log.Warn("outbox.db was another outbox's: moved it aside and started a fresh one; what this home had queued is lost", "aside", aside)
	return nil
}

// separateForeign moves the outbox's WAL and WAL index aside as aside-wal
// and aside-shm, then reads outbox.db alone; when it holds another id,
// it moves it aside as aside (foreign reports true).
func separateForeign(ctx context.Context, h home, aside string, wait time.Duration, log *slog.Logger) (foreign bool, err error) {
	gate, err := closeGate(ctx, h, wait, log)
	if err != nil {
		return false, err
	}
	defer releaseGate(gate)
	db := h.path(dbFileName)
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Rename(db+suffix, aside+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("move the foreign WAL aside: %w", err)
		}
	}
	id, known, err := readHomeID(h)
	if err != nil {
		return false, err
	}
	d, err := func() (dbIdentity, error) {
		conn, err := sqlite.OpenConn(db, sqlite.OpenReadOnly|sqliteNoFollow)
		if err != nil {
			return dbIdentity{}, err
		}
		defer conn.Close()
		return readDBIdentity(conn)
	}()
	if errors.Is(err, fs.ErrNotExist) || sqlite.ErrCode(err).ToPrimary() == sqlite.ResultCantOpen {
		return false, nil
	}
	if err != nil {
		// Unreadable: the salvage reads what it can of it.
		log.Warn("read the id of outbox.db", "error", err)
		return false, nil
	}
	if d.own(id) || !known {
		return false, nil
	}
	if err := os.Rename(db, aside); err != nil {
		return false, fmt.Errorf("move the foreign outbox aside: %w", err)
	}
	// The read above made a WAL index for the file: it goes with it.
	if err := os.Rename(db+"-shm", aside+"-shm"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("move the foreign outbox aside: %w", err)
	}
	return true, nil
}

// checkEnqueueIdentity is enqueue's check of the outbox's id, kept to one
// header read and one small file: the header's application_id, as SQLite
// shows it with the WAL applied, must be the home's, or 0 (an outbox not
// stamped yet). A home without outbox.id takes an id here.
func checkEnqueueIdentity(path string, conn *sqlite.Conn) error {
	h := home{dir: filepath.Dir(path)}
	id, known, err := readHomeID(h)
	if err != nil {
		return err
	}
	if !known {
		// A home that no daemon or command has opened yet (new, or made
		// by a difflore before the id) takes its id from its first hook:
		// where only hooks ever ran, a WAL of another outbox put beside
		// it later must still be told apart. Once per home.
		return identity{id: newOutboxID(), stamp: true}.adopt(h, conn)
	}
	var app int32
	err = sqlitex.ExecuteTransient(conn, "PRAGMA application_id", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { app = int32(stmt.ColumnInt64(0)); return nil },
	})
	if err != nil {
		return err
	}
	if app != 0 && app != id.appID() {
		return fmt.Errorf("%w (id %s, the outbox's header shows %08x)", errForeignOutbox, id, uint32(app))
	}
	return nil
}

// closeUnapplied closes a connection that found another outbox's half in
// the outbox without letting it apply that half: the last connection to
// close checkpoints the WAL into outbox.db and deletes it, so a read-only
// connection (which never checkpoints) holds the database open, in this
// process, while conn closes, and closes after it.
func closeUnapplied(path string, conn *dbConn) {
	if hold, err := sqlite.OpenConn(path, sqlite.OpenReadOnly|sqliteNoFollow); err == nil {
		defer hold.Close()
		// A read takes the shared lock that a connection in WAL mode keeps
		// for as long as it is open. Should it fail, conn's close may
		// apply the WAL, as before the id: the daemon then finds
		// outbox.db itself foreign, and reports what was lost.
		_, _ = readDBIdentity(hold)
	}
	conn.Close()
}
