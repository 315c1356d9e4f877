package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
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
const salvageInsertSQL = `INSERT INTO events (id, kind, payload, created_at, state, attempts, available_at, claim, last_error, raw, sink, traceparent)
VALUES (:id, :kind, :payload, :created, :state, :attempts, :available, :claim, :error, :raw, :sink, :traceparent)
ON CONFLICT (id) DO NOTHING`

// salvageCountSQL counts the rows an index still knows in a range of seqs
// that the table could not give: the number of events lost there. Two
// indexes hold every seq; the first one readable is used.
const salvageCountSQL = `SELECT count(*) FROM events INDEXED BY %s WHERE seq > :lo AND seq <= :hi`

// salvageMetaSQL reads the status and totals of the corrupt outbox, but
// not its seq_offset: that counts the events of the old file's seqs, and
// the fresh outbox numbers what it copies afresh from 1 (countsSQL); nor
// the state of a salvage that file itself was still making; nor the name
// of the first sink (sinkchange.go), which goes with the other sinks'
// progress (carrySinks): where that cannot be read, the fresh outbox is a
// first configuration, whose sinks receive everything it holds.
const salvageMetaSQL = `SELECT key, value FROM meta WHERE key NOT IN ('seq_offset', 'salvage_state', 'primary_sink')`

// salvageOffsetSQL reads the old file's seq_offset: with the largest seq
// the walk reached, it says how many events the file held (countsSQL).
const salvageOffsetSQL = `SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq_offset'`

const salvageSetMetaSQL = `INSERT INTO meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`

// salvageStateSQL reads the state of the salvage under way, which the fresh
// outbox keeps under the meta key salvage_state until the salvage is done.
const (
	salvageStateSQL    = `SELECT value FROM meta WHERE key = 'salvage_state'`
	salvageDoneSQL     = `DELETE FROM meta WHERE key = 'salvage_state'`
	salvageStartSQL    = `INSERT INTO meta (key, value) VALUES ('salvage_state', :value) ON CONFLICT (key) DO NOTHING`
	salvageStateKey    = "salvage_state"
	salvageIntentName  = "outbox.salvage"
	salvageAsidePrefix = "outbox.corrupt-"
)

// healOpts are what a salvage takes from the daemon's config.
type healOpts struct {
	gateWait time.Duration // how long it waits for connections to the outbox to close
	// pause, when set (by tests only), is called at each named step of the
	// salvage (salvageSteps) with the salvage's context, so that a test
	// can kill the daemon, or ask it to stop, exactly there.
	pause func(ctx context.Context, step string)
}

// healOpts are what a salvage takes from the config.
func (c config) healOpts() healOpts {
	return healOpts{gateWait: c.waits.healGate, pause: c.salvagePause}
}

// step calls the test-only pause at a named step.
func (o healOpts) step(ctx context.Context, name string) {
	if o.pause != nil {
		o.pause(ctx, name)
	}
}

// healOutbox mends a corrupt outbox: it moves the file aside (with its
// -wal and -shm) as outbox.corrupt-<UTC time>.db, copies every row it can
// read into a fresh outbox, and queues a difflore.gap event, reason
// corrupt, for what it could not read. It is the entry point of a salvage
// for every caller: a corrupt file, a WAL that is not one, a WAL or file of
// another outbox. A salvage that cannot read the file leaves the fresh
// outbox with the gap alone, which says that all was lost (with "exact":
// false): the daemon goes on rather than failing at the same file again
// and again. Only when the file cannot be moved aside, or no fresh outbox
// can be made, does it fail; and with errOutboxInUse, having moved nothing,
// when other connections keep the outbox open for longer than wait
// (replaceOutbox). When ctx is done it stops between two chunks and
// returns ctx's error: the salvage survives that, as it survives being
// killed at any point, and the next start finishes it (resumeSalvage).
// The caller has closed its own connection to the outbox.
func healOutbox(ctx context.Context, h home, now time.Time, wait time.Duration, log *slog.Logger) error {
	return healWith(ctx, h, now, healOpts{gateWait: wait}, log)
}

// healWith is healOutbox with the daemon's healOpts.
func healWith(ctx context.Context, h home, now time.Time, opts healOpts, log *slog.Logger) error {
	if err := replaceOutbox(ctx, h, now, opts, log); err != nil {
		return err
	}
	return finishSalvage(ctx, h, opts, log)
}

// resumeSalvage finishes, at a daemon's start, a salvage that a daemon
// killed or stopped before the end left: first the move of the corrupt
// files aside (the intent file outbox.salvage names it), then the copy,
// from the last chunk the fresh outbox holds.
func resumeSalvage(ctx context.Context, h home, opts healOpts, log *slog.Logger) error {
	if _, err := os.Lstat(h.path(salvageIntentName)); err == nil {
		log.Warn("a salvage of the outbox was cut short while it moved the corrupt files aside; finishing it")
		if err := replaceOutbox(ctx, h, time.Time{}, opts, log); err != nil {
			return err
		}
	}
	return finishSalvage(ctx, h, opts, log)
}

// finishSalvage copies what the corrupt file that the fresh outbox's
// salvage_state names still holds, from where the state says the copy got
// to, and then, in one transaction, what page scanning finds, the gap and
// the totals status shows, and the end of the state. Every chunk of the
// copy commits with the state that says how far it got: a salvage killed at
// any point goes on from a chunk it finished, and reports every event
// once. It does nothing when no salvage is under way.
func finishSalvage(ctx context.Context, h home, opts healOpts, log *slog.Logger) error {
	fresh, err := openOutbox(h, startBusy, time.Now)
	if err != nil {
		return fmt.Errorf("open the fresh outbox: %w", err)
	}
	defer fresh.Close()
	var state string
	err = sqlitex.Execute(fresh.conn, salvageStateSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { state = stmt.ColumnText(0); return nil },
	})
	if err != nil || state == "" {
		return err
	}
	// Where each copied row went, for the other sinks' progress
	// (salvagesinks.go).
	if err := sqlitex.ExecuteTransient(fresh.conn, salvageSeqsTableSQL, nil); err != nil {
		return fmt.Errorf("salvage: %w", err)
	}
	s := &salvager{to: fresh, opts: opts}
	if err := json.Unmarshal([]byte(state), &s.st); err != nil || s.st.Aside == "" || filepath.Base(s.st.Aside) != s.st.Aside {
		// Not a state this difflore wrote: what the file held is unknown.
		log.Error("the state of the salvage under way is unreadable; the salvage ends", "state", state, "error", err)
		s.st = salvageState{Total: true, Inexact: true}
		return s.finish(ctx, "", log)
	}
	aside := h.path(s.st.Aside)
	if s.st.After > 0 || s.st.Walked {
		log.Warn("resuming the salvage of the corrupt outbox", "aside", aside, "after_seq", s.st.After)
	}
	err = s.salvage(ctx, aside)
	if ctx.Err() != nil {
		log.Warn("salvage of the corrupt outbox stopped; the next start finishes it", "aside", aside, "copied", s.st.Copied)
		return ctx.Err()
	}
	if err != nil {
		var size int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(aside + suffix); err == nil {
				size += fi.Size()
			}
		}
		log.Error("salvage of the corrupt outbox failed; starting with what it could copy", "aside", aside, "error", err, "copied", s.st.Copied)
		s.st.LostBytes, s.st.Total, s.st.Inexact = max(s.st.LostBytes, size), true, true
		s.st.Walked = true
	}
	return s.finish(ctx, aside, log)
}

// replaceOutbox moves the outbox aside (moveAside) and makes a fresh, empty
// one in its place, holding the outbox's gate exclusively throughout
// (closeGate): no connection has the old file open while it moves, and
// none opens the outbox before all three of its files have moved and the
// fresh one has its schema. Salvaging what the old file holds takes much
// longer, and is done with the gate open again: hooks write into the
// fresh outbox meanwhile.
//
// A kill can come between any two of its file operations. So it first
// writes the name it will move the files to into an intent file,
// outbox.salvage (whole, by a rename), and removes that only once the
// fresh outbox holds the salvage's state naming the same file; while the
// intent file is there no connection opens the outbox (holdGate), and
// the next start (resumeSalvage) calls replaceOutbox again, which goes on
// from the intent: a file already moved is not moved again, and a fresh
// outbox that already has its state keeps it. A zero now means: only
// finish what the intent file says.
func replaceOutbox(ctx context.Context, h home, now time.Time, opts healOpts, log *slog.Logger) error {
	gate, err := closeGate(ctx, h, opts.gateWait, log)
	if err != nil {
		return err
	}
	defer releaseGate(gate)
	aside, err := readIntent(h)
	if err != nil {
		return err
	}
	if aside == "" {
		if now.IsZero() {
			return nil
		}
		aside = salvageAsidePrefix + now.UTC().Format("20060102T150405.000Z") + ".db"
		if err := writeIntent(h, aside); err != nil {
			return fmt.Errorf("move corrupt outbox aside: %w", err)
		}
	}
	opts.step(ctx, "intent")
	if err := moveAside(ctx, h, aside, opts); err != nil {
		return fmt.Errorf("move corrupt outbox aside: %w", err)
	}
	opts.step(ctx, "aside")
	if err := makeFresh(h, aside); err != nil {
		return fmt.Errorf("make a fresh outbox: %w", err)
	}
	opts.step(ctx, "fresh")
	if err := os.Remove(h.path(salvageIntentName)); err != nil {
		return fmt.Errorf("remove the salvage intent: %w", err)
	}
	return nil
}

// makeFresh makes the fresh outbox (or finds the one a killed salvage
// made) and gives it the state of a salvage of aside, unless it has one.
func makeFresh(h home, aside string) error {
	conn, err := openSQLite(h.path(dbFileName), startBusy)
	if err != nil {
		return err
	}
	err = migrate(conn)
	if err == nil {
		st, _ := json.Marshal(salvageState{Aside: aside})
		err = sqlitex.Execute(conn, salvageStartSQL, &sqlitex.ExecOptions{Named: map[string]any{":value": string(st)}})
	}
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	return err
}

// readIntent returns the name of the file that the salvage intent
// (outbox.salvage) says the outbox moves to, "" when there is none.
func readIntent(h home) (string, error) {
	b, err := os.ReadFile(h.path(salvageIntentName))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the salvage intent: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, salvageAsidePrefix) || filepath.Base(name) != name {
		return "", fmt.Errorf("salvage intent %s names %q, not a corrupt outbox's file", h.path(salvageIntentName), name)
	}
	return name, nil
}

// writeIntent writes the salvage intent whole: into a temporary file that
// is then renamed, so that a kill leaves either no intent or all of it.
func writeIntent(h home, aside string) error {
	tmp := h.path(salvageIntentName + ".tmp")
	if err := os.WriteFile(tmp, []byte(aside+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, h.path(salvageIntentName))
}

// moveAside renames the outbox's -wal and -shm files, then the outbox
// itself, to aside (in the data home). The WAL goes first: while the
// database is still in its place, a kill leaves it for the next start to
// move; once the database has moved, what bears the outbox's name is the
// fresh outbox's. A file whose new name already exists has moved before a
// kill and is not moved again.
func moveAside(ctx context.Context, h home, aside string, opts healOpts) error {
	db, to := h.path(dbFileName), h.path(aside)
	if _, err := os.Lstat(to); err == nil {
		return nil
	}
	for _, suffix := range []string{"-wal", "-shm", ""} {
		if _, err := os.Lstat(to + suffix); err == nil {
			continue
		}
		if err := renameRetry(db+suffix, to+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if suffix == "-wal" {
			opts.step(ctx, "aside-wal")
		}
	}
	return nil
}

// renameRetry renames from to to. On Windows a program that has the file
// open for a moment (one that does not take the gate: an sqlite3 shell, a
// backup) keeps it from being renamed: it tries again, briefly.
func renameRetry(from, to string) error {
	var err error
	for range 20 {
		if err = os.Rename(from, to); err == nil || errors.Is(err, os.ErrNotExist) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// salvageState is how far a salvage got, kept as JSON in the fresh
// outbox's meta (salvage_state) and written in the transaction of every
// chunk it copies.
type salvageState struct {
	Aside     string `json:"aside"`              // the corrupt file, in the data home
	Prepared  bool   `json:"prepared,omitempty"` // its WAL has been looked at
	After     int64  `json:"after"`              // the old seq the copy got to
	Walked    bool   `json:"walked,omitempty"`   // the walk of the table is done
	Copied    int64  `json:"copied"`             // rows of the old file that the fresh one took
	Offset    *int64 `json:"offset,omitempty"`   // the old file's seq_offset, if it could be read
	Lost      int64  `json:"lost"`               // events an index counts in the lost ranges, and rows refused
	LostBytes int64  `json:"lost_bytes"`         // known only when a file was lost whole

	First       time.Time  `json:"first"`     // created_at of the readable event before the first loss
	Last        time.Time  `json:"last"`      // and after the last one
	LastGood    time.Time  `json:"last_good"` // created_at of the last row copied
	PendingLast bool       `json:"pending_last,omitempty"`
	Ranges      []seqRange `json:"ranges,omitempty"`
	Total       bool       `json:"total,omitempty"`     // nothing could be read
	Uncounted   bool       `json:"uncounted,omitempty"` // a lost range no index could count
	Estimated   bool       `json:"estimated,omitempty"` // a lost range counted by its seqs
	Inexact     bool       `json:"inexact,omitempty"`   // a WAL or file lost whole
	MaxKey      int64      `json:"max_key,omitempty"`   // the largest seq page scanning saw
	Gone        int64      `json:"gone,omitempty"`      // children of inner pages past the end of the file
	Unsure      bool       `json:"unsure,omitempty"`    // page scanning copied a row no index could vouch for
}

// salvageUnderWay names the corrupt file of the salvage whose state is
// state (the meta key salvage_state), "" when no salvage is under way.
func salvageUnderWay(state string) string {
	if state == "" {
		return ""
	}
	var st salvageState
	if json.Unmarshal([]byte(state), &st) != nil || st.Aside == "" {
		return "(unreadable state)"
	}
	return st.Aside
}

// salvager copies what it can read of a corrupt outbox into a fresh one,
// and counts what it cannot.
type salvager struct {
	from     *sqlite.Conn
	to       *outbox
	rows     string // salvageRowsSQL for the schema version of from
	opts     healOpts
	st       salvageState
	chunks   int   // chunks copied by this run, for the pause steps
	salvaged int64 // rows read by this run, for the log
}

// salvage walks the events table of the file at path by ranges of seq:
// a range that fails to read is narrowed down, by probing and bisecting,
// to the seqs that cannot be read, which are counted and skipped.
func (s *salvager) salvage(ctx context.Context, path string) error {
	if !s.st.Prepared {
		s.prepareWAL(path)
		s.st.Prepared = true
		if err := s.to.immediate(s.saveState); err != nil {
			return &writeError{err}
		}
	}
	if s.st.Walked {
		return nil
	}
	from, err := openSalvage(path)
	if err != nil {
		return err
	}
	s.from = from
	// A version 1 outbox has no raw column, one before version 4 no
	// sink, one before version 5 no traceparent. Asked for by name rather
	// than by user_version, which a rewritten header no longer holds.
	for _, cols := range []string{"raw, sink, traceparent", "raw, sink, NULL", "raw, NULL, NULL", "0, NULL, NULL"} {
		s.rows = fmt.Sprintf(salvageRowsSQL, cols)
		if _, err := from.Prepare(s.rows); err == nil || isCorrupt(err) {
			break
		}
	}
	s.copyMeta()
	if err := s.walk(ctx); err != nil {
		return err
	}
	s.st.Walked = true
	return nil
}

// saveState writes s.st into the fresh outbox, in the transaction of the
// caller.
func (s *salvager) saveState() error {
	b, err := json.Marshal(s.st)
	if err != nil {
		return err
	}
	return sqlitex.Execute(s.to.conn, salvageSetMetaSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":key": salvageStateKey, ":value": string(b)},
	})
}

// finish ends a walked salvage in one transaction of the fresh outbox:
// it copies what page scanning finds in the lost ranges, counts what was
// lost (lostCount), queues the gap, adds to the totals status shows and
// ends the salvage's state. The corrupt file stays, for a person to look
// at; status names it.
func (s *salvager) finish(ctx context.Context, aside string, log *slog.Logger) error {
	s.opts.step(ctx, "copied")
	now := time.Now()
	if s.from == nil && aside != "" {
		// Walked before a kill: the pages are scanned, and the spans
		// copied (copySpans), now.
		if from, err := openSalvage(aside); err == nil {
			s.from = from
		}
	}
	err := s.to.immediate(func() error {
		var found int64
		if len(s.st.Ranges) > 0 && s.from != nil {
			// What the b-tree could not lead to may still lie in whole
			// leaf pages.
			var pageSize int64
			_ = sqlitex.ExecuteTransient(s.from, "PRAGMA page_size", &sqlitex.ExecOptions{
				ResultFunc: func(stmt *sqlite.Stmt) error { pageSize = stmt.ColumnInt64(0); return nil },
			})
			found = s.scanLeaves(aside, int(pageSize), s.st.Ranges)
		}
		lost, exact := s.lostCount(found)
		// The gap goes out even when nothing was lost: the receiver
		// learns that the outbox was damaged, and that it lost nothing.
		gap := corruptGap(lost, s.st.LostBytes, exact, s.st.First, s.st.Last)
		if err := s.to.insert(newEventID(now), gapKind, gap, now); err != nil {
			return fmt.Errorf("record the corrupt gap: %w", err)
		}
		if err := s.to.recordSalvage(lost, !exact, filepath.Base(aside)); err != nil {
			return fmt.Errorf("record the salvage: %w", err)
		}
		spans, readErr, err := s.copySpans()
		if err != nil {
			return fmt.Errorf("carry the spans over: %w", err)
		}
		if readErr != nil && !s.st.Total {
			log.Warn("salvage: the spans table of the corrupt outbox could not be read whole; the spans it held go out unfinished",
				"spans_carried", spans, "error", readErr)
		}
		sinks, readErr, err := s.carrySinks()
		if err != nil {
			return fmt.Errorf("carry the sinks' progress over: %w", err)
		}
		if readErr != nil && !s.st.Total {
			log.Warn("salvage: the progress of the sinks beyond the first could not be read whole; they receive again every event the outbox holds",
				"error", readErr)
		}
		if err := sqlitex.Execute(s.to.conn, salvageSeqsDropSQL, nil); err != nil {
			return err
		}
		if err := sqlitex.Execute(s.to.conn, salvageDoneSQL, nil); err != nil {
			return err
		}
		log.Warn("outbox was corrupt: moved it aside and salvaged what it could read",
			"aside", aside, "salvaged", s.st.Copied+found, "lost", lost, "exact", exact, "all_lost", s.st.Total, "spans_carried", spans,
			"sinks_carried", sinks)
		return nil
	})
	if s.from != nil {
		s.from.Close()
	}
	if err != nil {
		return err
	}
	s.opts.step(ctx, "finished")
	return s.to.resetInflight()
}

// lostCount is how many events the salvage lost, found being the rows
// page scanning copied, and whether that is exact. The old file held
// max(seq) − seq_offset events (countsSQL): when the walk reached the end
// of the table and the offset could be read, what it lost is that less
// what the fresh outbox took, exactly. Otherwise the lost ranges are
// counted through an index, and the count is exact only if an index
// counted each of them; a range past the last readable row that nothing
// counts (a truncated file's tail) makes it a lower bound.
func (s *salvager) lostCount(found int64) (lost int64, exact bool) {
	st := &s.st
	if st.Total {
		return st.Lost, false
	}
	if st.Offset != nil && !st.Uncounted {
		if n := st.After - *st.Offset - st.Copied - found; n >= 0 {
			return n, !st.Inexact && !st.Unsure
		}
	}
	lost = max(st.Lost-found, 0)
	if st.Uncounted && st.Offset != nil {
		// The table held seqs up to at least MaxKey, so at least MaxKey
		// less seq_offset events.
		lost = max(lost, st.MaxKey-*st.Offset-st.Copied-found)
	}
	if st.Uncounted {
		lost = max(lost, st.Gone)
	}
	return lost, !(st.Uncounted || st.Estimated || st.Inexact || st.Unsure)
}

// walk copies the table in seq order, chunk by chunk, and skips the
// ranges it cannot read. It stops between two chunks when ctx is done.
func (s *salvager) walk(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := s.copyChunk()
		if err == nil {
			s.chunks++
			s.opts.step(ctx, fmt.Sprintf("chunk-%d", s.chunks))
		}
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
		good, ok := s.skipUnreadable(s.st.After)
		if !ok {
			s.countLost(s.st.After, math.MaxInt64)
			return nil
		}
		s.countLost(s.st.After, good)
		s.st.After = good
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
	// The first header found is kept: a salvage resumed after a kill
	// must not keep the one it wrote itself.
	if hf, err := os.OpenFile(path+"-header", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		_, err = hf.Write(old)
		if cerr := hf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrExist) {
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

// copyChunk copies up to salvageChunk rows after s.st.After, in one
// transaction of the fresh outbox, moves s.st.After past what it read and
// writes the state with them (saveState). A row the fresh outbox refuses
// (garbage in a page that still reads) is lost, and counted; a row it
// already holds (copied before a kill) is not copied twice.
func (s *salvager) copyChunk() (n int, err error) {
	end, err := sqlitex.ImmediateTransaction(s.to.conn)
	if err != nil {
		return 0, &writeError{err}
	}
	defer func() {
		var e error
		if err == nil || !errors.As(err, new(*writeError)) {
			e = s.saveState()
		}
		end(&e)
		if e != nil {
			err = &writeError{e}
		}
	}()
	ins, err := s.to.conn.Prepare(salvageInsertSQL)
	if err != nil {
		return 0, &writeError{err}
	}
	err = sqlitex.Execute(s.from, s.rows, &sqlitex.ExecOptions{
		Named: map[string]any{":after": s.st.After, ":limit": salvageChunk},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			n++
			s.st.After = stmt.ColumnInt64(0)
			created := time.UnixMilli(stmt.ColumnInt64(4))
			if s.st.PendingLast {
				s.st.Last, s.st.PendingLast = created, false
			}
			s.st.LastGood = created
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
			setNullableText(ins, ":sink", stmt, 11)
			setTraceparent(ins, stmt.ColumnText(12))
			_, ierr := ins.Step()
			if rerr := ins.Reset(); ierr == nil {
				ierr = rerr
			}
			switch {
			case ierr != nil:
				s.st.Lost++
			case s.to.conn.Changes() > 0:
				s.st.Copied++
				if err := s.noteSeq(s.st.After); err != nil {
					return &writeError{err}
				}
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
	if len(s.st.Ranges) == 0 {
		s.st.First = s.st.LastGood
	}
	s.st.PendingLast = true
	s.st.Ranges = append(s.st.Ranges, seqRange{lo, hi})
	for _, index := range []string{"events_by_state", "sqlite_autoindex_events_1"} {
		var n int64
		err := sqlitex.Execute(s.from, fmt.Sprintf(salvageCountSQL, index), &sqlitex.ExecOptions{
			Named:      map[string]any{":lo": lo, ":hi": hi},
			ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt64(0); return nil },
		})
		if err == nil {
			s.st.Lost += n
			return
		}
	}
	if hi != math.MaxInt64 {
		s.st.Lost += hi - lo
		s.st.Estimated = true
	} else {
		s.st.Uncounted = true
	}
}

// copyMeta copies the status the daemon keeps (the endpoint, totals) as
// far as it can be read; what cannot be read is written again by the
// daemon as it goes on. It reads the old file's seq_offset too.
func (s *salvager) copyMeta() {
	s.st.Offset = nil
	_ = sqlitex.Execute(s.from, salvageOffsetSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { n := stmt.ColumnInt64(0); s.st.Offset = &n; return nil },
	})
	_ = sqlitex.Execute(s.from, salvageMetaSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			return sqlitex.Execute(s.to.conn, salvageSetMetaSQL, &sqlitex.ExecOptions{
				Named: map[string]any{":key": stmt.ColumnText(0), ":value": stmt.ColumnText(1)},
			})
		},
	})
}

// recordSalvage adds one salvage that lost lost events to the totals
// status shows, and names the corrupt file kept aside, in the caller's
// transaction. atLeast says that lost is only a lower bound (nothing could
// be read, or a lost range no index could count), and stays said for every
// later salvage.
func (o *outbox) recordSalvage(lost int64, atLeast bool, aside string) error {
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
// Asked to stop during the salvage, it stops between two chunks, and the
// next start finishes the salvage (resumeSalvage). It fails only when no
// outbox can be opened at all.
func (dm *daemon) heal(ctx context.Context, cause error) error {
	dm.lastHeal = dm.now()
	dm.log.Error("outbox is corrupt; salvaging it", "error", cause)
	dm.stopRunners()
	dm.ob.Close()
	if err := healWith(ctx, dm.h, dm.now(), dm.cfg.healOpts(), dm.log); err != nil && ctx.Err() == nil {
		dm.log.Error("salvage the corrupt outbox", "error", err)
	}
	nob, err := openOutbox(dm.h, startBusy, dm.ob.now)
	if err != nil {
		return err
	}
	nob.conn.SetBusyTimeout(outboxBusy)
	dm.ob, dm.d.ob, dm.d.written = nob, nob, nil
	if dm.runCtx != nil {
		dm.startRunners(dm.runCtx)
	}
	return nil
}

// healDue reports whether err calls for a salvage now.
func (dm *daemon) healDue(err error) bool {
	return isCorrupt(err) && dm.now().Sub(dm.lastHeal) >= healPace
}

// setTraceparent binds a salvaged row's TRACEPARENT, NULL when it had none.
// (Bindings outlive a reset: it is bound for every row.)
func setTraceparent(ins *sqlite.Stmt, tp string) {
	if tp == "" {
		ins.SetNull(":traceparent")
	} else {
		ins.SetText(":traceparent", tp)
	}
}
