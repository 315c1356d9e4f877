package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// failMetaOnce is a queue whose next setMeta fails: the settlement's
// transaction rolls back after everything before it was written.
type failMetaOnce struct {
	queue
	fails int
}

func (q *failMetaOnce) setMeta(kv map[string]string) error {
	if q.fails > 0 {
		q.fails--
		return errors.New("setMeta failed (test)")
	}
	return q.queue.setMeta(kv)
}

// TestSpanStateKeptWhenTheSettlementRollsBack: the transaction of a
// delivered batch's settlement rolls back after the span state was written
// in it (the status write after it fails; a failed COMMIT is the same).
// The open spans the batch made are then in no row, so the sink must keep
// them for the next settlement, which writes them.
func TestSpanStateKeptWhenTheSettlementRollsBack(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		readRequest(r)
		fmt.Fprint(w, "{}")
	}))
	t.Cleanup(srv.Close)
	ob := queueTurn(t)
	s := jsonSpanSink(t, srv.URL)
	q := &failMetaOnce{queue: ob, fails: 1}
	d := newDrainer(q, s, 2, slog.New(slog.DiscardHandler), time.Now)
	// The prompt and the tool call's start: two spans open.
	token, events, err := ob.claim(2, maxBatchBytes, claimLease)
	if err != nil || len(events) != 2 {
		t.Fatalf("claim: %d events, %v", len(events), err)
	}
	if err := d.deliver(context.Background(), token, events, false); err == nil {
		t.Fatal("the settlement did not fail")
	}
	if n := countSpans(t, ob, entryOpen); n != 0 {
		t.Fatalf("%d rows of open spans after a settlement that rolled back, want 0", n)
	}
	// The batch, still claimed, is sent again and settled this time: the
	// spans the first answer opened are written with it.
	if err := d.deliver(context.Background(), token, events, false); err != nil {
		t.Fatal(err)
	}
	if n := countSpans(t, ob, entryOpen); n != 2 {
		t.Errorf("%d rows of open spans after the batch was settled, want 2 (the turn and the tool call): the state of the settlement that rolled back was lost", n)
	}
}

// TestDroppedSpanRowGoesAfterARollback: a write that removes a span's row
// rolls back; written again, the row goes.
func TestDroppedSpanRowGoesAfterARollback(t *testing.T) {
	t.Parallel()
	ob := mustOutbox(t, mustOpenHomeCreate(t, ownHome(t)), time.Now)
	defer ob.Close()
	st := &spanStore{ob: ob, sink: "default"}
	id := "0102030405060708"
	open := &spanEntry{Span: traceSpan{SpanID: id, TraceID: strings.Repeat("ab", 16), Name: "invoke_agent claude", Start: 1},
		State: entryOpen, Kind: entryTurn, Session: "claude\x00s1", Seq: 1, StartEvent: "start"}
	if err := st.save([]*spanEntry{open}, nil); err != nil {
		t.Fatal(err)
	}
	rollback := errors.New("rolled back (test)")
	err := ob.immediate(func() error {
		if err := st.write(nil, []string{id}, 0); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("the transaction: %v", err)
	}
	if err := st.save(nil, []string{id}); err != nil {
		t.Fatal(err)
	}
	if n := countSpans(t, ob, entryOpen); n != 0 {
		t.Errorf("%d rows of open spans left after the span was dropped again, want 0", n)
	}
}
