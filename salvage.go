package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// salvageChunk is how many rows a salvage copies in one transaction.
const salvageChunk = 256

// isCorrupt reports whether err is SQLite saying that the outbox file is
// damaged or not a database at all: errors no retry can mend, which
// healOutbox handles.
func isCorrupt(err error) bool {
	code := sqlite.ErrCode(err).ToPrimary()
	return code == sqlite.ResultCorrupt || code == sqlite.ResultNotADB
}

// salvageRowsSQL reads the rows after a seq in seq order. It walks the
// table's own b-tree, never an index, so that a damaged index loses
// nothing: the fresh outbox builds its indexes anew.
const salvageRowsSQL = `SELECT seq, id, kind, payload, created_at, state, attempts, available_at, claim, last_error, %s
FROM events WHERE seq > :after ORDER BY seq LIMIT :limit`

// salvageInsertSQL copies one row into the fresh outbox under a new seq,
// in the same order. Inflight rows are given back by resetInflight once
// the copy is done, as after any daemon's death.
const salvageInsertSQL = `INSERT INTO events (id, kind, payload, created_at, state, attempts, available_at, claim, last_error, raw)
VALUES (:id, :kind, :payload, :created, :state, :attempts, :available, :claim, :error, :raw)
ON CONFLICT (id) DO NOTHING`

// salvageCountSQL counts the rows an index still knows in a range of seqs
// that the table could not give: the number of events lost there. Two
// indexes hold every seq; the first one readable is used.
const salvageCountSQL = `SELECT count(*) FROM events INDEXED BY %s WHERE seq > :lo AND seq <= :hi`

// salvageMetaSQL reads the status and totals of the corrupt outbox, but
// not its seq_offset: that counts the events of the old file's seqs, and
// the fresh outbox numbers what it copies afresh from 1 (countsSQL).
const salvageMetaSQL = `SELECT key, value FROM meta WHERE key != 'seq_offset'`

const salvageSetMetaSQL = `INSERT INTO meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`

// healOutbox mends a corrupt outbox: it moves the file aside (with its
// -wal and -shm) as outbox.corrupt-<UTC time>.db, copies every row it can
// read into a fresh outbox, and queues a difflore.gap event, reason
// corrupt, for what it could not read. A salvage that fails leaves the
// fresh outbox with the gap alone, which says that all was lost: the daemon
// goes on rather than failing at the same file again and again. Only when
// the file cannot be moved aside, or no fresh outbox can be made, does it
// fail; and with errOutboxInUse, having moved nothing, when other
// connections keep the outbox open for longer than wait (replaceOutbox).
// The caller has closed its own connection to the outbox.
func healOutbox(ctx context.Context, h home, now time.Time, wait time.Duration, log *slog.Logger) error {
	aside, err := replaceOutbox(ctx, h, now, wait, log)
	if err != nil {
		return err
	}
	fresh, err := openOutbox(h, startBusy, time.Now)
	if err != nil {
		return fmt.Errorf("make a fresh outbox: %w", err)
	}
	defer fresh.Close()
	s := &salvager{to: fresh}
	if fi, err := os.Stat(aside + "-wal"); err == nil && walGarbage(aside+"-wal") {
		// SQLite ignores such a WAL: what it held is lost, count unknown.
		s.lostBytes += fi.Size()
	}
	if err := s.salvage(aside); err != nil {
		var size int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(aside + suffix); err == nil {
				size += fi.Size()
			}
		}
		log.Error("salvage of the corrupt outbox failed; starting with what it could copy", "aside", aside, "error", err, "salvaged", s.salvaged)
		s.lostBytes, s.total = max(s.lostBytes, size), true
	}
	if err := fresh.resetInflight(); err != nil {
		return err
	}
	// The gap goes out even when nothing was lost: the receiver learns that
	// the outbox was damaged, and that it lost nothing.
	{
		gap := corruptGap(s.lost, s.lostBytes, s.first, s.last)
		if err := fresh.insert(newEventID(now), gapKind, gap, now); err != nil {
			return fmt.Errorf("record the corrupt gap: %w", err)
		}
	}
	// What status shows: salvages so far, what they lost, and the file
	// kept aside last.
	if err := fresh.recordSalvage(s.lost, s.total || s.uncounted, filepath.Base(aside)); err != nil {
		return fmt.Errorf("record the salvage: %w", err)
	}
	log.Warn("outbox was corrupt: moved it aside and salvaged what it could read",
		"aside", aside, "salvaged", s.salvaged, "lost", s.lost, "all_lost", s.total)
	return nil
}

// replaceOutbox moves the outbox aside (moveAside) and makes a fresh, empty
// one in its place, holding the outbox's gate exclusively throughout
// (closeGate): no connection has the old file open while it moves, and
// none opens the outbox before all three of its files have moved and the
// fresh one has its schema. Salvaging what the old file holds takes much
// longer, and is done with the gate open again: hooks write into the
// fresh outbox meanwhile.
func replaceOutbox(ctx context.Context, h home, now time.Time, wait time.Duration, log *slog.Logger) (string, error) {
	gate, err := closeGate(ctx, h, wait, log)
	if err != nil {
		return "", err
	}
	defer releaseGate(gate)
	aside, err := moveAside(h, now)
	if err != nil {
		return "", fmt.Errorf("move corrupt outbox aside: %w", err)
	}
	conn, err := openSQLite(h.path(dbFileName), startBusy)
	if err == nil {
		err = migrate(conn)
		if cerr := conn.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return "", fmt.Errorf("make a fresh outbox: %w", err)
	}
	return aside, nil
}

// moveAside renames the outbox and its -wal and -shm files to
// outbox.corrupt-<UTC time>.db and returns the new name of the database.
func moveAside(h home, now time.Time) (string, error) {
	aside := h.path("outbox.corrupt-" + now.UTC().Format("20060102T150405.000Z") + ".db")
	db := h.path(dbFileName)
	// On Windows a program that has the file open for a moment (one that
	// does not take the gate: an sqlite3 shell, a backup) keeps it from
	// being renamed: try again, briefly.
	var err error
	for range 20 {
		if err = os.Rename(db, aside); err == nil || errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Rename(db+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return aside, err
		}
	}
	return aside, nil
}

// salvager copies what it can read of a corrupt outbox into a fresh one,
// and counts what it cannot.
type salvager struct {
	from *sqlite.Conn
	to   *outbox
	rows string // salvageRowsSQL for the schema version of from

	salvaged    int64
	lost        int64
	lostBytes   int64     // known only when all was lost: the file's size
	first, last time.Time // readable events around what was lost
	total       bool      // nothing could be read
	lostRanges  []seqRange
	uncounted   bool      // a lost range no index could count: lost is a lower bound
	lastGood    time.Time // created_at of the last row copied
	pendingLast bool      // last is the next readable row after a loss
}

// salvage walks the events table of the file at path by ranges of seq:
// a range that fails to read is narrowed down, by probing and bisecting,
// to the seqs that cannot be read, which are counted and skipped.
func (s *salvager) salvage(path string) error {
	from, err := openSalvage(path)
	if err != nil {
		return err
	}
	defer from.Close()
	s.from = from
	// A version 1 outbox has no raw column. Asked for by name rather than
	// by user_version, which a rewritten header no longer holds.
	s.rows = fmt.Sprintf(salvageRowsSQL, "raw")
	if _, err := from.Prepare(s.rows); err != nil && !isCorrupt(err) {
		s.rows = fmt.Sprintf(salvageRowsSQL, "0")
	}
	s.copyMeta()
	if err := s.walk(); err != nil {
		return err
	}
	if len(s.lostRanges) == 0 {
		return nil
	}
	// What the b-tree could not lead to may still lie in whole leaf pages.
	var pageSize int64
	_ = sqlitex.ExecuteTransient(from, "PRAGMA page_size", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { pageSize = stmt.ColumnInt64(0); return nil },
	})
	var found int64
	err = s.to.immediate(func() error {
		found = s.scanLeaves(path, int(pageSize), s.lostRanges)
		return nil
	})
	if err != nil {
		return err
	}
	s.salvaged += found
	s.lost = max(s.lost-found, 0)
	if s.uncounted {
		s.lost = max(s.lost, 1)
	}
	return nil
}

// walk copies the table in seq order, chunk by chunk, and skips the
// ranges it cannot read.
func (s *salvager) walk() error {
	var after int64
	for {
		n, err := s.copyChunk(&after)
		if err == nil && n < salvageChunk {
			return nil
		}
		if err == nil {
			continue
		}
		var werr *writeError
		if errors.As(err, &werr) {
			return werr.err
		}
		good, ok := s.skipUnreadable(after)
		if !ok {
			s.countLost(after, math.MaxInt64)
			return nil
		}
		s.countLost(after, good)
		after = good
	}
}

// openSalvage opens the corrupt outbox moved aside at path. When SQLite
// finds no database there because the 100-byte header is damaged (zeroed
// by a failing disk, say), the header is written anew (repairHeader), the
// old one kept beside the file as <path>-header, and the file opened
// again: the pages behind the header are usually intact.
func openSalvage(path string) (*sqlite.Conn, error) {
	conn, err := openSalvageConn(path)
	if err != nil {
		return nil, err
	}
	if err = readSchema(conn); err == nil || sqlite.ErrCode(err).ToPrimary() != sqlite.ResultNotADB {
		if err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	conn.Close()
	f, err := os.OpenFile(path, os.O_RDWR|oNoFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	old := make([]byte, sqliteHeaderSize)
	if _, err := f.ReadAt(old, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if err := os.WriteFile(path+"-header", old, 0o600); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// The page size is what the header lost that matters: try each one
	// SQLite allows, the outbox's own first.
	for _, size := range []int{4096, 1024, 2048, 8192, 16384, 32768, 65536, 512} {
		if _, err := f.WriteAt(sqliteHeader(size, fi.Size()), 0); err != nil {
			return nil, fmt.Errorf("write header: %w", err)
		}
		conn, err := openSalvageConn(path)
		if err != nil {
			continue
		}
		if readSchema(conn) == nil {
			return conn, nil
		}
		conn.Close()
	}
	return nil, errors.New("no page size makes the file a database")
}

// openSalvageConn opens a corrupt outbox to read what it can.
// writable_schema lets SQLite read a file shorter than its header says
// (truncated), which it otherwise refuses as a whole; the salvage never
// writes to it.
func openSalvageConn(path string) (*sqlite.Conn, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqliteNoFollow)
	if err != nil {
		return nil, err
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA writable_schema = ON", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

const readSchemaSQL = `SELECT count(*) FROM sqlite_schema WHERE name = 'events'`

// readSchema reports whether the events table can be found.
func readSchema(conn *sqlite.Conn) error {
	found := false
	err := sqlitex.ExecuteTransient(conn, readSchemaSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { found = stmt.ColumnInt(0) > 0; return nil },
	})
	if err == nil && !found {
		err = errors.New("no events table")
	}
	return err
}

// sqliteHeaderSize is the size of a SQLite database file's header.
const sqliteHeaderSize = 100

// sqliteHeader is a database file header for pages of the given size in a
// file of the given size, in WAL mode, with an empty free list: enough to
// read the b-trees behind it. It is never written to a live outbox.
func sqliteHeader(pageSize int, fileSize int64) []byte {
	b := make([]byte, sqliteHeaderSize)
	copy(b, "SQLite format 3\x00")
	if pageSize == 65536 {
		binary.BigEndian.PutUint16(b[16:], 1)
	} else {
		binary.BigEndian.PutUint16(b[16:], uint16(pageSize))
	}
	b[18], b[19] = 2, 2 // WAL
	b[21], b[22], b[23] = 64, 32, 32
	binary.BigEndian.PutUint32(b[24:], 1)                                // change counter
	binary.BigEndian.PutUint32(b[28:], uint32(fileSize/int64(pageSize))) // pages, valid as 92 matches 24
	binary.BigEndian.PutUint32(b[40:], 1)                                // schema cookie
	binary.BigEndian.PutUint32(b[44:], 4)                                // schema format
	binary.BigEndian.PutUint32(b[56:], 1)                                // UTF-8
	binary.BigEndian.PutUint32(b[92:], 1)                                // version-valid-for
	binary.BigEndian.PutUint32(b[96:], 3046000)
	return b
}

// writeError marks an error of the fresh outbox, which ends a salvage,
// apart from a read error of the corrupt one, which skips a range.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// copyChunk copies up to salvageChunk rows after *after, in one
// transaction of the fresh outbox, and moves *after past what it copied.
// A row the fresh outbox refuses (garbage in a page that still reads) is
// lost, and counted.
func (s *salvager) copyChunk(after *int64) (n int, err error) {
	end, err := sqlitex.ImmediateTransaction(s.to.conn)
	if err != nil {
		return 0, &writeError{err}
	}
	defer func() {
		var e error
		end(&e)
		if e != nil && err == nil {
			err = &writeError{e}
		}
	}()
	ins, err := s.to.conn.Prepare(salvageInsertSQL)
	if err != nil {
		return 0, &writeError{err}
	}
	err = sqlitex.Execute(s.from, s.rows, &sqlitex.ExecOptions{
		Named: map[string]any{":after": *after, ":limit": salvageChunk},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			n++
			*after = stmt.ColumnInt64(0)
			created := time.UnixMilli(stmt.ColumnInt64(4))
			if s.pendingLast {
				s.last, s.pendingLast = created, false
			}
			s.lastGood = created
			ins.SetText(":id", stmt.ColumnText(1))
			ins.SetText(":kind", stmt.ColumnText(2))
			ins.SetBytes(":payload", []byte(stmt.ColumnText(3)))
			ins.SetInt64(":created", stmt.ColumnInt64(4))
			ins.SetInt64(":state", stmt.ColumnInt64(5))
			ins.SetInt64(":attempts", stmt.ColumnInt64(6))
			ins.SetInt64(":available", stmt.ColumnInt64(7))
			setNullableText(ins, ":claim", stmt, 8)
			setNullableText(ins, ":error", stmt, 9)
			ins.SetInt64(":raw", stmt.ColumnInt64(10))
			_, ierr := ins.Step()
			if rerr := ins.Reset(); ierr == nil {
				ierr = rerr
			}
			if ierr != nil {
				s.lost++
				return nil
			}
			s.salvaged++
			return nil
		},
	})
	return n, err
}

// setNullableText binds column i of stmt to param of ins, NULL for NULL.
func setNullableText(ins *sqlite.Stmt, param string, stmt *sqlite.Stmt, i int) {
	if stmt.ColumnType(i) == sqlite.TypeNull {
		ins.SetNull(param)
		return
	}
	ins.SetText(param, stmt.ColumnText(i))
}

// readsAfter reports whether the first row after seq p, if there is one,
// can be read whole.
func (s *salvager) readsAfter(p int64) bool {
	err := sqlitex.Execute(s.from, s.rows, &sqlitex.ExecOptions{
		Named:      map[string]any{":after": p, ":limit": 1},
		ResultFunc: func(*sqlite.Stmt) error { return nil },
	})
	return err == nil
}

// skipUnreadable finds, after a read error just past seq after, the
// smallest seq good from which rows read again: it probes ever further
// ahead, then bisects back, down to a single seq. The seqs in (after,
// good] cannot be read. It reports false when nothing further reads.
func (s *salvager) skipUnreadable(after int64) (good int64, ok bool) {
	bad := after
	for step := int64(1); ; step *= 2 {
		if step > math.MaxInt64-after || step <= 0 {
			return 0, false
		}
		if p := after + step; s.readsAfter(p) {
			good = p
			break
		} else {
			bad = p
		}
	}
	for good-bad > 1 {
		mid := bad + (good-bad)/2
		if s.readsAfter(mid) {
			good = mid
		} else {
			bad = mid
		}
	}
	return good, true
}

// countLost counts the events lost in the seqs (lo, hi]: as many as an
// index still lists there, or, when no index can be read either, the
// number of seqs in the range (events acknowledged before the damage left
// holes, so this can count too many; it is never too few). An unbounded
// range with no index to count it (a truncated file's tail) cannot be
// counted: it marks the count as a lower bound, and the gap then says at
// least one event was lost.
func (s *salvager) countLost(lo, hi int64) {
	if s.first.IsZero() && s.lost == 0 {
		s.first = s.lastGood
	}
	s.pendingLast = true
	s.lostRanges = append(s.lostRanges, seqRange{lo, hi})
	for _, index := range []string{"events_by_state", "sqlite_autoindex_events_1"} {
		var n int64
		err := sqlitex.Execute(s.from, fmt.Sprintf(salvageCountSQL, index), &sqlitex.ExecOptions{
			Named:      map[string]any{":lo": lo, ":hi": hi},
			ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt64(0); return nil },
		})
		if err == nil {
			s.lost += n
			return
		}
	}
	if hi != math.MaxInt64 {
		s.lost += hi - lo
	} else {
		s.uncounted = true
	}
}

// copyMeta copies the status the daemon keeps (the endpoint, totals) as
// far as it can be read; what cannot be read is written again by the
// daemon as it goes on.
func (s *salvager) copyMeta() {
	_ = sqlitex.Execute(s.from, salvageMetaSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			return sqlitex.Execute(s.to.conn, salvageSetMetaSQL, &sqlitex.ExecOptions{
				Named: map[string]any{":key": stmt.ColumnText(0), ":value": stmt.ColumnText(1)},
			})
		},
	})
}

// recordSalvage adds one salvage that lost lost events to the totals
// status shows, and names the corrupt file kept aside. atLeast says that
// lost is only a lower bound (nothing could be read, or a lost range no
// index could count), and stays said for every later salvage.
func (o *outbox) recordSalvage(lost int64, atLeast bool, aside string) error {
	return o.immediate(func() error {
		for key, n := range map[string]int64{"salvages": 1, "salvage_lost": lost} {
			if err := sqlitex.Execute(o.conn, addMetaSQL, &sqlitex.ExecOptions{Named: map[string]any{":key": key, ":n": n}}); err != nil {
				return err
			}
		}
		set := map[string]string{"last_aside": aside}
		if atLeast {
			set["salvage_lost_at_least"] = "1"
		}
		for k, v := range set {
			if err := sqlitex.Execute(o.conn, salvageSetMetaSQL, &sqlitex.ExecOptions{Named: map[string]any{":key": k, ":value": v}}); err != nil {
				return err
			}
		}
		return nil
	})
}

// healPace is the least time between two salvages by one daemon: a disk
// that corrupts every fresh outbox too gets one file moved aside a minute,
// not one a turn of the loop.
const healPace = time.Minute

// heal replaces the daemon's corrupt outbox with a salvaged one
// (healOutbox) and hands it to the drainer. The status the drainer last
// wrote is unknown in the new file: it writes every key again. When the
// salvage fails (other connections keep the outbox open for longer than
// waits.healGate, or the file cannot be moved aside while another program
// has it open, on Windows), the outbox is opened again as it is and the
// error only logged: the daemon goes on, and tries again after healPace.
// It fails only when no outbox can be opened at all.
func (dm *daemon) heal(ctx context.Context, cause error) error {
	dm.lastHeal = dm.now()
	dm.log.Error("outbox is corrupt; salvaging it", "error", cause)
	dm.ob.Close()
	if err := healOutbox(ctx, dm.h, dm.now(), dm.waits.healGate, dm.log); err != nil {
		dm.log.Error("salvage the corrupt outbox", "error", err)
	}
	nob, err := openOutbox(dm.h, startBusy, dm.ob.now)
	if err != nil {
		return err
	}
	nob.conn.SetBusyTimeout(outboxBusy)
	dm.ob, dm.d.ob, dm.d.written = nob, nob, nil
	return nil
}

// healDue reports whether err calls for a salvage now.
func (dm *daemon) healDue(err error) bool {
	return isCorrupt(err) && dm.now().Sub(dm.lastHeal) >= healPace
}

// walHeaderSize is the size of a WAL file's header, which starts with one
// of two magic numbers.
const walHeaderSize = 32

// walGarbage reports whether the file at path is a WAL that SQLite would
// ignore as not a WAL at all: a whole header that does not start with
// either magic number. SQLite writes no such file; a disk or a program that
// wrote garbage over it did, and what it held is lost without any error
// from SQLite, so the daemon treats it as a corrupt outbox.
func walGarbage(path string) bool {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [walHeaderSize]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	magic := binary.BigEndian.Uint32(b[:])
	return magic != 0x377f0682 && magic != 0x377f0683
}
