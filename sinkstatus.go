package main

import (
	"fmt"
	"io"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// sinkStatus is one sink beyond the first as status shows it (the first
// is the top-level endpoint, outbox and delivery of the report).
type sinkStatus struct {
	Name                    string  `json:"name"`
	Endpoint                string  `json:"endpoint,omitempty"`
	State                   string  `json:"state"` // delivering, failing, paused, idle, stopped (no daemon), or not_started (configured, not yet taken up)
	Pending                 int64   `json:"pending"`
	Inflight                int64   `json:"inflight"`
	Dead                    int64   `json:"dead"`
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	LastDeliveryAt          string  `json:"last_delivery_at,omitempty"`
	LastError               string  `json:"last_error,omitempty"`
	Delivered               int64   `json:"delivered"` // events, since the sink was added
	Failed                  int64   `json:"failed"`    // failed attempts
	DeadLettered            int64   `json:"dead_lettered"`
	Evicted                 int64   `json:"evicted"`
}

// sinkRowsSQL reads each secondary's totals, and its deliveries rows by
// state; sinkFreshSQL counts the events above its hwm it may receive.
// That count walks those events: it costs what the sink is behind.
const (
	sinkRowsSQL = `SELECT s.name, s.hwm, s.delivered, s.failed, s.dead, s.evicted,
	(SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 0),
	(SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 1),
	(SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 2),
	(SELECT min(e.created_at) FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.sink = s.name AND d.state = 0)
FROM sinks s ORDER BY s.name`
	sinkFreshSQL = `SELECT count(*), min(e.created_at) FROM events e WHERE e.seq > :hwm AND ` + forSecondary
)

// sinkStatuses reads the secondaries' progress and the status their
// drainers recorded in m.
func (o *outbox) sinkStatuses(m map[string]string, now time.Time) ([]sinkStatus, error) {
	var out []sinkStatus
	var hwms []int64
	var oldest []int64
	err := sqlitex.Execute(o.conn, sinkRowsSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			name := stmt.ColumnText(0)
			out = append(out, sinkStatus{Name: name, Delivered: stmt.ColumnInt64(2), Failed: stmt.ColumnInt64(3),
				DeadLettered: stmt.ColumnInt64(4), Evicted: stmt.ColumnInt64(5), Pending: stmt.ColumnInt64(6),
				Inflight: stmt.ColumnInt64(7), Dead: stmt.ColumnInt64(8)})
			hwms = append(hwms, stmt.ColumnInt64(1))
			oldest = append(oldest, stmt.ColumnInt64(9))
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("read sinks: %w", err)
	}
	for i := range out {
		s := &out[i]
		err := sqlitex.Execute(o.conn, sinkFreshSQL, &sqlitex.ExecOptions{
			Named: map[string]any{":hwm": hwms[i], ":sink": s.Name},
			ResultFunc: func(stmt *sqlite.Stmt) error {
				s.Pending += stmt.ColumnInt64(0)
				if at := stmt.ColumnInt64(1); stmt.ColumnInt64(0) > 0 && (oldest[i] == 0 || at < oldest[i]) {
					oldest[i] = at
				}
				return nil
			},
		})
		if err != nil {
			return nil, fmt.Errorf("read sinks: %w", err)
		}
		if s.Pending > 0 && oldest[i] > 0 {
			s.OldestPendingAgeSeconds = now.Sub(time.UnixMilli(oldest[i])).Round(time.Millisecond).Seconds()
		}
		key := func(k string) string { return m[sinkMetaKey(s.Name, k)] }
		s.Endpoint, s.LastDeliveryAt, s.LastError = key("endpoint"), key("last_delivery_at"), key("last_error")
		s.State = sinkState(key("paused_reason"), key("breaker"), key("last_error"), key("last_attempt_at"), key("last_delivery_at"))
	}
	return out, nil
}

// sinkState sums up a sink's recorded status in a word.
func sinkState(paused, breaker, lastErr, lastAttempt, lastDelivery string) string {
	switch {
	case paused != "":
		return "paused"
	case breaker != "" && breaker != "closed":
		return "failing"
	case lastAttempt != "" && lastAttempt != lastDelivery && lastErr != "":
		return "failing"
	case lastDelivery != "":
		return "delivering"
	}
	return "idle"
}

// sinkNotStarted is the state of a sink of config.toml that the outbox
// does not know: no daemon has taken it up yet.
const sinkNotStarted = "not_started"

// addConfiguredSinks lists, after the sinks the outbox knows, each sink of
// config.toml that it does not: one added since the daemon started, which
// it takes up at its next start or SIGHUP, or one of a home where no
// daemon ran yet. Such a sink has received nothing; what it will receive
// is set when a daemon takes it up (README: a sink added later receives
// the events queued from then on).
func addConfiguredSinks(rep *statusReport, read func() (settings, error)) {
	st, err := read()
	if err != nil {
		return // status shows the file's error already
	}
	specs := st.sinkSpecs()
	if len(specs) < 2 {
		return
	}
	known := map[string]bool{specs[0].name: true}
	for _, s := range rep.Sinks {
		known[s.Name] = true
	}
	for _, s := range specs[1:] {
		if !known[s.name] {
			rep.Sinks = append(rep.Sinks, sinkStatus{Name: s.name, Endpoint: redactURL(s.endpoint), State: sinkNotStarted})
		}
	}
}

// printSinks writes one line per secondary sink.
func printSinks(w io.Writer, sinks []sinkStatus, paint func(c, s string) string) {
	for _, s := range sinks {
		if s.State == sinkNotStarted {
			fmt.Fprintf(w, "sink %s: not started (a daemon takes it up at its start or on SIGHUP); %s\n", printable(s.Name), printable(s.Endpoint))
			continue
		}
		state := s.State
		switch state {
		case "failing", "paused":
			state = paint(red, state)
		case "delivering":
			state = paint(green, state)
		}
		fmt.Fprintf(w, "sink %s: %s, %d pending", printable(s.Name), state, s.Pending)
		if s.Pending > 0 {
			fmt.Fprintf(w, " (oldest %s)", (time.Duration(s.OldestPendingAgeSeconds * float64(time.Second))).Round(time.Second))
		}
		fmt.Fprintf(w, ", %d in flight, %d dead", s.Inflight, s.Dead)
		if s.Endpoint != "" {
			fmt.Fprintf(w, "; %s", printable(s.Endpoint))
		}
		if s.LastDeliveryAt != "" {
			fmt.Fprintf(w, "; last delivery %s", humanTimeString(s.LastDeliveryAt))
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "; last error: %s", firstLine(printable(s.LastError)))
		}
		fmt.Fprintln(w)
	}
}
