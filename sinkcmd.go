package main

import (
	"fmt"
	"slices"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The --sink flag of 'outbox list|retry|purge' and 'drain': which sink's
// progress a command looks at or changes. The first sink's lives in the
// events rows, every other's in its own rows (outboxsinks.go).

// primaryName is the name of the first sink config.toml describes (the
// top-level endpoint is "default"), "default" when it describes none.
func primaryName(cfg config) string {
	return primaryNameIn(cfg.settings())
}

// primaryNameIn is primaryName of settings already read.
func primaryNameIn(st settings, err error) string {
	if err != nil {
		return defaultSinkName
	}
	if specs := st.sinkSpecs(); len(specs) > 0 {
		return specs[0].name
	}
	return defaultSinkName
}

// pickSink checks the name a --sink flag gave against the sinks the outbox
// knows: the primary (the events rows) or one with its own progress. An
// empty name picks every sink. secondaries are the ones picked beyond the
// primary; primary says whether the primary is picked.
func pickSink(cfg config, ob *outbox, name string) (primary bool, secondaries []string, err error) {
	names, err := ob.secondaryNames()
	if err != nil {
		return false, nil, err
	}
	switch {
	case name == "":
		return true, names, nil
	case name == primaryName(cfg):
		return true, nil, nil
	case slices.Contains(names, name):
		return false, []string{name}, nil
	}
	return false, nil, &exitError{code: 2, err: fmt.Errorf("no sink %q", name),
		hint: "the sinks are the top-level endpoint (\"default\") and the [[sink]] tables of config.toml; 'difflore status' lists them"}
}

// The secondary's own dead letters and retries (outbox list, retry, purge).
const (
	sinkDeadLettersSQL = `SELECT e.id, e.kind, d.attempts, coalesce(d.last_error, ''), e.created_at
FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.sink = :sink AND d.state = 2 ORDER BY d.seq LIMIT :limit`
	sinkRetryDeadSQL = `UPDATE deliveries SET state = 0, attempts = 0, available_at = :now, claim = NULL
WHERE sink = :sink AND state = 2 AND (:all OR seq = (SELECT seq FROM events WHERE id = :id))`
	sinkWakeSQL = `UPDATE deliveries SET available_at = :now
WHERE sink = :sink AND state = 0 AND available_at > :now AND (:all OR seq = (SELECT seq FROM events WHERE id = :id))`
	sinkPurgeSQL = `DELETE FROM deliveries WHERE sink = :sink AND state = 2`
)

// sinkDeadLetters lists a secondary's dead letters, oldest first.
func (o *outbox) sinkDeadLetters(name string, limit int) ([]deadLetter, error) {
	var out []deadLetter
	err := sqlitex.Execute(o.conn, sinkDeadLettersSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":sink": name, ":limit": limit},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			out = append(out, deadLetter{
				ID: stmt.ColumnText(0), Kind: stmt.ColumnText(1), Attempts: stmt.ColumnInt(2),
				LastError: stmt.ColumnText(3), CreatedAt: time.UnixMilli(stmt.ColumnInt64(4)).UTC(), Sink: name,
			})
			return nil
		},
	})
	return out, err
}

// sinkRetry is retryDead and wakeWaiting for a secondary.
func (o *outbox) sinkRetry(name string, all bool, ids []string) (dead, waiting int, err error) {
	if all {
		ids = []string{""}
	}
	for _, id := range ids {
		named := map[string]any{":sink": name, ":now": o.now().UnixMilli(), ":all": all, ":id": id}
		if err := sqlitex.Execute(o.conn, sinkRetryDeadSQL, &sqlitex.ExecOptions{Named: named}); err != nil {
			return 0, 0, err
		}
		dead += o.conn.Changes()
		if err := sqlitex.Execute(o.conn, sinkWakeSQL, &sqlitex.ExecOptions{Named: named}); err != nil {
			return 0, 0, err
		}
		waiting += o.conn.Changes()
	}
	return dead, waiting, nil
}

// sinkPurge deletes a secondary's dead letters, and the events no sink
// waits for any longer.
func (o *outbox) sinkPurge(name string) (n int, err error) {
	err = o.immediate(func() error {
		if err := sqlitex.Execute(o.conn, sinkPurgeSQL, &sqlitex.ExecOptions{Named: map[string]any{":sink": name}}); err != nil {
			return err
		}
		n = o.conn.Changes()
		return o.sweepDone()
	})
	return n, err
}

// sinkCounts are a secondary's counts, as the primary's counts are.
func (o *outbox) sinkCounts(name string) (counts, error) {
	all, err := o.sinkStatuses(map[string]string{}, time.Now())
	if err != nil {
		return counts{}, err
	}
	for _, s := range all {
		if s.Name == name {
			c := counts{Pending: s.Pending, Inflight: s.Inflight, Dead: s.Dead}
			if s.Pending > 0 {
				c.OldestPending = time.Now().Add(-time.Duration(s.OldestPendingAgeSeconds * float64(time.Second)))
			}
			return c, nil
		}
	}
	return counts{}, fmt.Errorf("no sink %q in the outbox", name)
}

// sinkWake makes a secondary's events that wait for a retry ready now, as
// wakeWaiting does the primary's.
func (o *outbox) sinkWake(name string) (int, error) {
	named := map[string]any{":sink": name, ":now": o.now().UnixMilli(), ":all": true, ":id": ""}
	if err := sqlitex.Execute(o.conn, sinkWakeSQL, &sqlitex.ExecOptions{Named: named}); err != nil {
		return 0, err
	}
	return o.conn.Changes(), nil
}
