package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"zombiezen.com/go/sqlite/sqlitex"
)

// cmdAnswer: answer STATUS — starts a loopback HTTP server, for the rest of
// the script, that answers STATUS to a POST of an empty batch (or of an
// empty OTLP export to /v1/logs) and 400 to anything else, and sets $ANSWER_URL to its address.
func cmdAnswer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: answer STATUS")
	}
	status, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("answer: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		empty := string(body) == `{"events":[]}` || r.URL.Path == "/v1/logs" && string(body) == `{"resourceLogs":[]}`
		if r.Method != http.MethodPost || !empty {
			http.Error(w, fmt.Sprintf("want an empty batch, got %s %q", r.Method, body), http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
	}))
	ts.Defer(srv.Close)
	ts.Setenv("ANSWER_URL", srv.URL)
}

// cmdFutureEvent: futureevent [remove] — queues an event dated an hour
// from now in the outbox of $DIFFLORE_HOME, as a clock that was ahead
// would have; with remove, deletes it again.
func cmdFutureEvent(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) > 1 || len(args) == 1 && args[0] != "remove" || neg {
		ts.Fatalf("usage: futureevent [remove]")
	}
	h, err := openHome(ts.Getenv("DIFFLORE_HOME"), true)
	ts.Check(err)
	ob, err := openOutbox(h, time.Second, time.Now)
	ts.Check(err)
	defer ob.Close()
	if len(args) == 1 {
		ts.Check(sqlitex.ExecuteTransient(ob.conn, "DELETE FROM events WHERE id = 'from-the-future'", nil))
		return
	}
	ts.Check(ob.insert("from-the-future", "event", []byte(`{}`), time.Now().Add(time.Hour)))
}

func TestDoctorDisk(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		free, total, used uint64
		want              string
	}{
		{100 * gib, 200 * gib, 0, checkOK},
		{100 * gib, 200 * gib, 2 * gib, checkOK},
		{11 * gib / 2, 100 * gib, 0, checkWarn}, // 5.5 GiB free: the outbox could take 0.5 GiB
		{11 * gib / 2, 100 * gib, gib, checkOK}, // at its limit already
		{4 * gib, 100 * gib, 0, checkFail},      // under 5 %
		{0, 0, 0, checkFail},                    // a full, or unknown, file system
		{gib / 2, 4 * gib, gib / 4, checkWarn},  // 0.3 GiB above the 5 %, 0.75 GiB to grow
	}
	for _, c := range cases {
		got, _ := diskVerdict(c.free, c.total, c.used)
		if got != c.want {
			t.Errorf("free %d, total %d, outbox %d: %s, want %s", c.free, c.total, c.used, got, c.want)
		}
	}
}
