package main

// Claiming ahead: the drainer claims its next batch in the write
// transaction that settles a delivered one, so that a busy queue costs one
// write transaction per batch instead of two (a claim and a settlement).
// Nothing is acknowledged earlier than before: the batch claimed ahead is
// inflight, under its own claim token and lease, exactly as one claimed at
// the start of the next step, and a crash before it is sent leaves it to
// resetInflight as any batch in flight. A drainer that stops, or that may
// not send when its next step comes (the sink went with a reload, a pause
// or an open breaker holds), gives it back untried (giveBackNext).

// claimedBatch is a batch claimed under token.
type claimedBatch struct {
	token  string
	events []event
}

// claimAhead makes settle claim the next batch after the settlement, in
// its transaction. A claim that fails undoes only itself (claimNext's
// savepoint): the settlement commits, and the next step claims on its own.
func (d *drainer) claimAhead(settle func() error) func() error {
	return func() error {
		if err := settle(); err != nil {
			return err
		}
		token, events, err := d.ob.claimNext(d.batch, maxBatchBytes-batchFrame, claimLease)
		if err != nil {
			d.log.Warn("claim the next batch", "error", err)
			return nil
		}
		if len(events) > 0 {
			d.next = &claimedBatch{token: token, events: events}
		}
		return nil
	}
}

// takeNext returns the batch claimed ahead, if any, and forgets it. The
// step after the one that claimed it takes it at once: its lease
// (claimLease) began a moment before.
func (d *drainer) takeNext() (string, []event, error) {
	n := d.next
	d.next = nil
	if n == nil {
		return "", nil, nil
	}
	return n.token, n.events, nil
}

// giveBackNext returns the batch claimed ahead untried, its attempt given
// back, for the next claim to send again whole. The daemon calls it when
// it stops draining; step calls it when it may not send.
func (d *drainer) giveBackNext() error {
	n := d.next
	d.next = nil
	if n == nil {
		return nil
	}
	return d.ob.giveBack(n.token, n.events)
}
