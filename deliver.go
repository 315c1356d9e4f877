package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strconv"
	"time"
)

// Delivery policy; the README's Delivery section says what each answer means.
const (
	defaultBatch      = 100
	maxBatchBytes     = 512 << 10 // uncompressed request body, unless one event alone is larger
	claimLease        = 10 * time.Minute
	backoffBase       = time.Second
	backoffCap        = 5 * time.Minute
	maxRetryAfter     = time.Hour
	retryAfter429     = 60 * time.Second
	pauseRetry        = 30 * time.Second
	breakerThreshold  = 5
	breakerFirstProbe = 5 * time.Second
	breakerMaxProbe   = 5 * time.Minute
)

// maxWait is the longest the daemon ever makes an event wait, or holds
// delivery back: the longest backoff it writes (backoffCap, or a Retry-After
// up to maxRetryAfter). Waits are capped to it when they are read, not only
// when written: one written before the clock stepped back (or by a bug)
// would otherwise hold its events for as long as the clock was off.
const maxWait = max(backoffCap, maxRetryAfter, breakerMaxProbe, pauseRetry)

// drainer claims batches from the outbox, sends them to the sink and settles
// each event by the answer. Everything a retry depends on is stored per
// event (attempts, available_at); the breaker and the pause live in memory
// and are mirrored into the meta table for status.
type drainer struct {
	ob     queue
	sink   sink
	batch  int
	log    *slog.Logger
	now    func() time.Time
	jitter func(time.Duration) time.Duration // uniform in [0, d]

	delivered    int64         // events acknowledged so far, for drain's progress
	failures     int           // consecutive retryable failures
	breakerDelay time.Duration // 0 while the breaker is closed
	breakerUntil time.Time     // no sending before this while open
	pausedUntil  time.Time
	pausedSince  time.Time

	redact *redactor // nil: payloads are sent as enqueued (see redact.go)

	pauseAt func(step string) // a test's pause point (config.pauseAt), nil for users

	// beforeSend, when set, runs between the claim of a batch and its
	// sending: the daemon applies a pending reload there (reloadIfAsked),
	// which may change the sink.
	beforeSend func()

	// written is the status last stored in the meta table, so that a
	// batch writes only the keys that changed: most of the nine stay the
	// same from one batch to the next.
	written map[string]string
}

func newDrainer(ob queue, s sink, batch int, log *slog.Logger, now func() time.Time) *drainer {
	redact, _ := newRedactor(redactOptions{}) // the defaults cannot fail
	return &drainer{
		ob: ob, sink: s, batch: batch, log: log, now: now, redact: redact,
		jitter: func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d + 1)
		},
	}
}

// queue is where a drainer claims its batches and settles them: the
// outbox itself for the primary sink, a sinkQueue for each other one
// (outboxsinks.go).
type queue interface {
	claim(limit, budget int, lease time.Duration) (string, []event, error)
	ack(token string, events []event) error
	release(token string, events []event, at time.Time, counted bool, errMsg string) error
	giveBack(token string, events []event) error
	bury(token string, events []event, errMsg string) error
	addRedactions(counts map[string]int64) error
	immediate(fn func() error) error
	setMeta(kv map[string]string) error
	// store is the outbox the queue is in, for a sink that keeps state of
	// its own there (outboxUser): its writes join the settle transaction.
	store() *outbox
}

// holdUntil is when sending may resume after a pause or an open breaker; the
// zero time when nothing holds delivery back.
func (d *drainer) holdUntil() time.Time {
	if d.pausedUntil.After(d.breakerUntil) {
		return d.pausedUntil
	}
	return d.breakerUntil
}

// taking reports whether the endpoint takes events: there is one, and its
// last answer left no failure in a row, pause or open breaker. Before its
// first answer it counts as taking, so that every event gets its first
// attempt (limiter.sizeLimit).
func (d *drainer) taking() bool {
	return d.sink != nil && d.failures == 0 && d.breakerDelay == 0 && d.pausedUntil.IsZero()
}

// capHolds shortens a pause or an open breaker that would end more than
// maxWait from now, as one set before the clock stepped back does.
func (d *drainer) capHolds(now time.Time) {
	limit := now.Add(maxWait)
	for _, until := range []*time.Time{&d.breakerUntil, &d.pausedUntil} {
		if until.After(limit) {
			*until = limit
		}
	}
}

// outgoing is a claimed batch on its way out: the events as claimed (what
// is settled) and as redacted (what is sent).
type outgoing struct {
	token     string
	events    []event
	claimedAt time.Time // the drainer's clock at the claim
	sent      []event
	redacted  redactions
	by        *redactor // the redactor that made sent
	probing   bool      // a breaker's probe: one event
}

// step claims one batch and delivers it. It reports whether it sent
// anything: when it did not, the caller waits for new events, the next
// available_at or holdUntil.
func (d *drainer) step(ctx context.Context) (bool, error) {
	o, err := d.claimNext()
	if err != nil || o == nil {
		return false, err
	}
	if !d.readyToSend(o) {
		return false, d.ob.giveBack(o.token, o.events)
	}
	return true, d.settle(ctx, o, d.sink.send(ctx, o.sent))
}

// maxRun and maxRunBatches bound a run (drainer.run), so that the
// daemon's loop gets its turn (a reload, housekeeping, the size limit)
// while a backlog drains. They bound when the run claims its last batch:
// the run ends once that batch and the one before it are answered, so
// with a slow endpoint it lasts up to maxRun and two requests.
const (
	maxRun        = 100 * time.Millisecond
	maxRunBatches = 64
)

// run delivers batch after batch, as step does, until nothing is ready,
// delivery is held, or the run is over its bounds (maxRun); it reports whether it
// sent anything. The outbox work of one batch overlaps the request of
// another, which is most of a batch's time: while a batch is on the wire
// run claims and redacts the next one, and when the answer delivered the
// batch, it sends the next before it settles the one answered. One
// batch is in flight at a time, and the next goes only after the
// answer to the one before. A batch claimed ahead of an answer that
// fails, pauses delivery, opens the breaker or comes as the daemon stops
// is settled after that answer, as step would, and goes back unsent if
// delivery is held: at the head of the queue, its attempt given back.
// An outboxUser sink (OTLP with spans) is pipelined the same way: what
// it keeps of a batch, written in the batch's settlement, is taken from
// it when the answer is judged (takeState), before the next send changes
// it.
//
// The claim ahead is taken only after a full batch, which says more is
// likely waiting (an idle daemon's single event costs no extra claim),
// and only where mayClaimAhead allows.
//
// Requests run under ctx; stop ends the run at the next answer, with no
// new request: the daemon stops taking batches at once, and gives the
// request in flight its shutdown grace (ctx) to finish.
func (d *drainer) run(stop, ctx context.Context) (bool, error) {
	if stop.Err() != nil {
		return false, nil
	}
	start := time.Now()
	o, err := d.claimNext()
	if err != nil || o == nil {
		return false, err
	}
	if !d.readyToSend(o) {
		return false, d.ob.giveBack(o.token, o.events)
	}
	answer := d.launch(ctx, o)
	for n := 1; ; n++ {
		var next *outgoing
		var claimErr error
		if d.mayClaimAhead(stop, o, n, start) {
			next, claimErr = d.claimNext()
		}
		r := <-answer
		halt := stop.Err() != nil || ctx.Err() != nil
		if next == nil || claimErr != nil || r.verdict != delivered || halt {
			err := d.settle(ctx, o, r)
			if err == nil {
				err = claimErr
			}
			if next == nil {
				return true, err
			}
			if err != nil || halt || d.now().Before(d.holdUntil()) {
				return true, errors.Join(err, d.unclaim(next))
			}
			if !d.readyToSend(next) {
				return true, d.ob.giveBack(next.token, next.events)
			}
			o, answer = next, d.launch(ctx, next)
			continue
		}
		record := d.judge(ctx, o, r)
		judged := d.sink
		if !d.reloadForSend(next) {
			return true, errors.Join(record(), d.ob.giveBack(next.token, next.events))
		}
		if stop.Err() != nil {
			// Stopped while the answer was judged or a reload applied.
			return true, errors.Join(record(), d.unclaim(next))
		}
		if d.sink != judged && keepsState(judged) {
			// A reload made a new sink, which reads what the sink keeps
			// from the outbox (ready): the answered batch's part has to
			// be there first.
			if err := record(); err != nil {
				return true, errors.Join(err, d.unclaim(next))
			}
			record = func() error { return nil }
		}
		d.ready(next)
		nextAnswer := d.launch(ctx, next)
		if err := record(); err != nil {
			// The outbox failed: the batch on the wire is settled if
			// it can be, and stays claimed (sent again) if not.
			return true, errors.Join(err, d.settle(ctx, next, <-nextAnswer))
		}
		o, answer = next, nextAnswer
	}
}

// mayClaimAhead says whether run claims the next batch while o is on the
// wire: o is a full batch (more is likely waiting) and not a probe, the
// run is within its bounds (the first claim ahead is always taken), the
// daemon is not stopping, and every event of o is on its first attempt.
// A batch sent again may be what makes the daemon die: a batch claimed
// ahead of it would count that death as an attempt of its own as well
// (resetInflightSQL), and a batch it has nothing to do with would end as
// a dead letter beside it. Nor is one claimed once o's lease is half
// gone: the claim takes back the events of leases that ended
// (reclaimSQL), which would be o's own after a clock step.
func (d *drainer) mayClaimAhead(stop context.Context, o *outgoing, n int, start time.Time) bool {
	if o.probing || len(o.events) < d.batch || n >= maxRunBatches || (n > 1 && time.Since(start) >= maxRun) || stop.Err() != nil {
		return false
	}
	if !d.now().Before(o.claimedAt.Add(claimLease / 2)) {
		return false
	}
	for _, e := range o.events {
		if e.Attempt > 1 {
			return false
		}
	}
	return true
}

// keepsState reports whether a sink writes state of its own in each
// batch's settlement (the OTLP sink with spans).
func keepsState(s sink) bool {
	u, ok := s.(outboxUser)
	return ok && u.keepsState()
}

// launch sends a batch readied by readyToSend; the answer comes on the
// channel.
func (d *drainer) launch(ctx context.Context, o *outgoing) <-chan result {
	answer := make(chan result, 1)
	go func(s sink, sent []event) { answer <- s.send(ctx, sent) }(d.sink, o.sent)
	return answer
}

// unclaim releases a batch claimed ahead and never sent: pending at the
// head of the queue, with its attempt given back.
func (d *drainer) unclaim(o *outgoing) error {
	return d.ob.release(o.token, o.events, time.UnixMilli(0), false, "")
}

// claimNext claims the next batch and redacts it for sending; nil when
// nothing is ready or delivery is held.
func (d *drainer) claimNext() (*outgoing, error) {
	now := d.now()
	d.capHolds(now)
	if d.sink == nil || now.Before(d.holdUntil()) {
		return nil, nil
	}
	if d.pauseAt != nil {
		d.pauseAt(pauseClaim)
	}
	limit := d.batch
	probing := d.breakerDelay > 0
	if probing {
		limit = 1 // a probe risks one event, not a batch
	}
	token, events, err := d.ob.claim(limit, maxBatchBytes-batchFrame, claimLease)
	if err != nil || len(events) == 0 {
		return nil, err
	}
	o := d.prepare(token, events, probing)
	o.claimedAt = now
	return o, nil
}

// prepare redacts a claimed batch. Secrets are replaced in what is sent,
// not in the outbox: the events settled are the ones claimed.
func (d *drainer) prepare(token string, events []event, probing bool) *outgoing {
	o := &outgoing{token: token, events: events, probing: probing, by: d.redact}
	o.sent, o.redacted = d.redact.events(events)
	return o
}

// readyToSend applies a reload asked for while the batch was claimed
// (reloadForSend), then readies the batch for sending (ready). It
// reports false when the reload left no sink.
func (d *drainer) readyToSend(o *outgoing) bool {
	if !d.reloadForSend(o) {
		return false
	}
	d.ready(o)
	return true
}

// reloadForSend applies a reload asked for while the batch was claimed
// (SIGHUP): an event queued after the daemon had the signal goes to the
// endpoint the reload names, however long the claim took. It reports
// false when the reload left no sink.
func (d *drainer) reloadForSend(o *outgoing) bool {
	if d.beforeSend != nil {
		d.beforeSend()
		if d.sink == nil {
			return false
		}
		o.probing = d.breakerDelay > 0
	}
	return true
}

// ready redacts the batch again if the redaction changed since it was
// claimed (a reload), and hands an outboxUser sink the outbox before it
// sends: the last use of the outbox's connection for the batch until its
// answer, since run claims the next batch on it meanwhile.
func (d *drainer) ready(o *outgoing) {
	if o.by != d.redact {
		o.sent, o.redacted = d.redact.events(o.events)
		o.by = d.redact
	}
	if d.pauseAt != nil {
		d.pauseAt(pauseSend)
	}
	if u, ok := d.sink.(outboxUser); ok {
		// The OTLP sink keeps its open spans in the outbox (spanstore.go).
		if err := u.useOutbox(d.ob.store()); err != nil {
			d.log.Warn("read the sink's state in the outbox (open spans, log records acknowledged)", "error", err)
		}
	}
}

// deliver sends events and settles them by the answer.
func (d *drainer) deliver(ctx context.Context, token string, events []event, probing bool) error {
	o := d.prepare(token, events, probing)
	d.ready(o)
	return d.settle(ctx, o, d.sink.send(ctx, o.sent))
}

// settle settles a batch by the endpoint's answer, one method per
// verdict. A 400, 413 or 422 answer splits the batch in halves until the
// event at fault stands alone.
func (d *drainer) settle(ctx context.Context, o *outgoing, r result) error {
	return d.judge(ctx, o, r)()
}

// judge takes the endpoint's answer to a batch: the drainer's state
// (failures, breaker, pause) changes at once, and the outbox's in the
// function it returns.
func (d *drainer) judge(ctx context.Context, o *outgoing, r result) func() error {
	token, events, probing := o.token, o.events, o.probing
	if d.pauseAt != nil {
		d.pauseAt(pauseSettle)
	}
	now := d.now()
	if ctx.Err() != nil && r.verdict != delivered {
		// Shutting down: the answer (likely a cancelled request) says
		// nothing about the events. Give them back untouched.
		return func() error { return d.ob.giveBack(token, events) }
	}
	meta := map[string]string{
		"last_attempt_at": now.UTC().Format(time.RFC3339Nano),
		"last_status":     strconv.Itoa(r.status),
		"last_count":      strconv.Itoa(len(events)),
		"last_error":      r.err,
	}
	if r.verdict != paused {
		// Any other answer ends a pause: a later one starts a new "since".
		d.pausedUntil, d.pausedSince = time.Time{}, time.Time{}
	}
	var settle func() error
	switch r.verdict {
	case delivered:
		settle = d.onDelivered(token, events, r, now, meta, o.redacted)
	case badBatch:
		// The endpoint answered, so it is up: the failures in a row end.
		d.failures, d.breakerDelay, d.breakerUntil = 0, 0, time.Time{}
		if len(events) > 1 {
			return func() error { return d.splitBatch(ctx, token, events, probing) }
		}
		d.log.Warn("dead-lettered", "id", events[0].ID, "error", r.err)
		settle = func() error { return d.ob.bury(token, events, r.err) }
	case paused:
		settle = d.onPaused(token, events, r, now, meta)
	case retryLater:
		settle = d.onRetryLater(token, events, r, now, probing)
	}
	if u, ok := d.sink.(outboxUser); ok {
		// What the sink keeps of the batch (the OTLP sink's open spans,
		// and the log records acknowledged for a batch whose spans were
		// not) is written with its settlement, whatever the answer, or
		// not at all. It is taken now, as the batch left it: run sends
		// the next batch, which changes it, before this one is settled.
		// When the transaction rolls back after the state was written in
		// it (the status write or the commit fails), the state is in no
		// row: lost gives it back to the sink for the next settlement.
		done := settle
		keep, lost := u.takeState()
		settle = func() error { return keep(done()) }
		return func() error {
			err := d.record(now, meta, settle)
			if err != nil {
				lost()
			}
			return err
		}
	}
	return func() error { return d.record(now, meta, settle) }
}

// onDelivered handles a 2xx answer: the breaker closes, and the settlement
// acks what was delivered and retries or buries what the answer rejected.
func (d *drainer) onDelivered(token string, events []event, r result, now time.Time, meta map[string]string, redacted redactions) func() error {
	d.failures, d.breakerDelay, d.breakerUntil = 0, 0, time.Time{}
	ok, retry, dead := splitRejected(events, r.rejected)
	meta["last_delivery_at"] = meta["last_attempt_at"]
	meta["last_delivery_count"] = strconv.Itoa(len(ok))
	d.delivered += int64(len(ok))
	d.log.Info("delivered", "events", len(ok), "rejected", len(events)-len(ok))
	if r.err != "" {
		// An OTLP partial success: the endpoint took the batch but refused
		// records it did not name, so there is no event to retry or bury;
		// the warning and status are all there is.
		d.log.Warn("endpoint reported a partial success", "events", len(events), "rejected_unnamed", r.unidentified, "error", r.err)
	}
	return func() error {
		if err := d.ob.ack(token, ok); err != nil {
			return err
		}
		if err := d.ob.addRedactions(redacted.of(ok)); err != nil {
			return err
		}
		for _, rj := range retry {
			if err := d.ob.release(token, rj.events, now.Add(d.backoff(rj.events[0].Attempt, 0)), true, rj.err); err != nil {
				return err
			}
		}
		for _, rj := range dead {
			if err := d.ob.bury(token, rj.events, rj.err); err != nil {
				return err
			}
		}
		return nil
	}
}

// splitBatch delivers the halves of a batch the endpoint refused as a
// whole, one after the other.
func (d *drainer) splitBatch(ctx context.Context, token string, events []event, probing bool) error {
	half := len(events) / 2
	if err := d.deliver(ctx, token, events[:half], probing); err != nil {
		return err
	}
	if d.now().Before(d.holdUntil()) || ctx.Err() != nil {
		// The first half paused delivery or opened the breaker: the
		// second half waits too, its attempt given back.
		return d.ob.release(token, events[half:], d.now(), false, "")
	}
	return d.deliver(ctx, token, events[half:], probing)
}

// onPaused handles an answer that needs a person (401, 403, 404, a
// redirect): delivery pauses, and the events go back without an attempt.
func (d *drainer) onPaused(token string, events []event, r result, now time.Time, meta map[string]string) func() error {
	if d.pausedSince.IsZero() {
		d.pausedSince = now
	}
	d.pausedUntil = now.Add(pauseRetry)
	meta["paused_reason"] = r.err
	meta["paused_since"] = d.pausedSince.UTC().Format(time.RFC3339)
	d.log.Warn("delivery paused", "error", r.err, "retry_in", pauseRetry.String())
	return func() error { return d.ob.release(token, events, now, false, r.err) }
}

// onRetryLater handles a retryable failure: it counts towards the breaker,
// and the batch comes back after a backoff (a failed probe's events come
// back with the breaker instead).
func (d *drainer) onRetryLater(token string, events []event, r result, now time.Time, probing bool) func() error {
	d.failures++
	counted := !probing
	if probing || d.failures >= breakerThreshold {
		d.openBreaker(now)
	}
	wait := min(r.retryAfter, maxRetryAfter)
	if r.status == 429 && wait == 0 {
		wait = retryAfter429
	}
	if !counted && now.Add(wait).After(d.breakerUntil) {
		// A failed probe counts no attempt, so its events' own
		// available_at cannot carry the Retry-After: the breaker does.
		d.breakerUntil = now.Add(wait)
	}
	d.log.Warn("delivery failed; will retry", "events", len(events), "error", r.err, "breaker_open", d.breakerDelay > 0)
	// One delay for the whole batch, so that it comes back as the same
	// batch with the same Idempotency-Key rather than scattered by
	// per-event jitter.
	at := now
	if counted {
		attempt := 0
		for _, e := range events {
			attempt = max(attempt, e.Attempt)
		}
		at = now.Add(d.backoff(attempt, wait))
	}
	return func() error { return d.ob.release(token, events, at, counted, r.err) }
}

// record settles the events and stores the status for 'difflore status' in
// one transaction, writing only the keys that changed since the last time.
func (d *drainer) record(now time.Time, meta map[string]string, settle func() error) error {
	if !d.pausedUntil.After(now) {
		meta["paused_reason"], meta["paused_since"] = "", ""
	}
	meta["breaker"] = "closed"
	if d.breakerDelay > 0 {
		meta["breaker"] = "open until " + d.breakerUntil.UTC().Format(time.RFC3339)
	}
	for k, v := range meta {
		if old, ok := d.written[k]; ok && old == v {
			delete(meta, k)
		}
	}
	err := d.ob.immediate(func() error {
		if err := settle(); err != nil {
			return err
		}
		return d.ob.setMeta(meta)
	})
	if err != nil {
		d.written = nil // unknown now: write every key next time
		return err
	}
	if d.written == nil {
		d.written = map[string]string{}
	}
	maps.Copy(d.written, meta)
	return nil
}

// openBreaker stops sending after repeated failures, or doubles the wait
// after a failed probe: 5 s, then twice as long each time up to 5 min, with
// jitter so that many daemons do not probe in step.
func (d *drainer) openBreaker(now time.Time) {
	if d.breakerDelay == 0 {
		d.breakerDelay = breakerFirstProbe
	} else {
		d.breakerDelay = min(2*d.breakerDelay, breakerMaxProbe)
	}
	d.breakerUntil = now.Add(d.breakerDelay/2 + d.jitter(d.breakerDelay/2))
}

// backoff is the wait before attempt+1: exponential with full jitter (base
// 1 s, doubling, capped at 5 min), but never less than what the endpoint
// asked for with Retry-After.
func (d *drainer) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := backoffCap
	if attempt < 20 {
		ceiling = min(backoffBase<<(max(attempt, 1)-1), backoffCap)
	}
	return max(d.jitter(ceiling), min(retryAfter, maxRetryAfter))
}

// rejectedGroup is a set of rejected events with the error to record.
type rejectedGroup struct {
	events []event
	err    string
}

// splitRejected divides a delivered batch by a 2xx answer's rejected list:
// the delivered events, the ones to retry and the ones to dead-letter.
func splitRejected(events []event, rejected []rejection) (ok []event, retry, dead []rejectedGroup) {
	if len(rejected) == 0 {
		return events, nil, nil
	}
	byID := make(map[string]rejection, len(rejected))
	for _, r := range rejected {
		byID[r.ID] = r
	}
	for _, e := range events {
		r, found := byID[e.ID]
		if !found {
			ok = append(ok, e)
			continue
		}
		g := rejectedGroup{events: []event{e}, err: fmt.Sprintf("rejected: %s", r.Error)}
		if r.Retryable {
			retry = append(retry, g)
		} else {
			dead = append(dead, g)
		}
	}
	return ok, retry, dead
}

// setRedaction sets how the drainer redacts what it sends; a new drainer
// redacts with the defaults.
func (d *drainer) setRedaction(opts redactOptions) error {
	r, err := newRedactor(opts)
	if err != nil {
		return err
	}
	d.redact = r
	return nil
}
