package main

import (
	"context"
	"sync"
	"time"
)

// secondaryWait bounds how long an idle secondary's drainer sleeps before
// it looks at the outbox again, woken or not: the daemon's loop pokes it
// at each pass (a wake-up from enqueue starts one), but a pass can wait
// for the primary's request in flight.
const secondaryWait = 2 * time.Second

// runners are the drainers of the secondary sinks, one goroutine each,
// each with its own connection to the outbox (sinkQueue): a sink that is
// down, or slow to answer, holds back no other.
type runners struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	pokes  []chan struct{}
}

// startRunners records the secondaries in the outbox (syncSinks) and
// starts a drainer for each. The primary is the first sink of
// dm.opts.sinks; its drainer is the daemon loop's.
func (dm *daemon) startRunners(ctx context.Context) {
	var secondaries []sinkSpec
	if len(dm.opts.sinks) > 1 {
		secondaries = dm.opts.sinks[1:]
	}
	if dm.lim != nil {
		dm.lim.sinkAges = sinkAgesOf(secondaries)
	}
	dm.ob.wmu = &dm.wmu
	if len(dm.opts.sinks) > 0 {
		dm.ob.primary = dm.opts.sinks[0].name
		// With no sink at all the outbox keeps what it holds for each,
		// until one is configured again.
		dropped, err := dm.ob.syncSinks(sinkNames(secondaries))
		if err != nil {
			dm.log.Error("record the sinks in the outbox", "error", err)
			return
		}
		for name, n := range dropped {
			dm.log.Warn("sink removed from config.toml: its progress and dead letters are dropped", "sink", name, "rows", n)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	rs := &runners{cancel: cancel}
	for _, spec := range secondaries {
		s, err := newSink(spec, buildVersion(), dm.opts.allowInsecure)
		if err != nil {
			dm.log.Error("sink not started", "sink", spec.name, "error", err)
			continue
		}
		poke := make(chan struct{}, 1)
		rs.pokes = append(rs.pokes, poke)
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			dm.runSecondary(ctx, spec, s, poke)
		}()
	}
	dm.runners = rs
}

// stopRunners stops the secondaries' drainers and waits for them: a
// request in flight is cut short and its batch given back.
func (dm *daemon) stopRunners() {
	if dm.runners == nil {
		return
	}
	dm.runners.cancel()
	dm.runners.wg.Wait()
	dm.runners = nil
}

// pokeRunners tells each secondary's drainer to look for events now.
func (dm *daemon) pokeRunners() {
	if dm.runners == nil {
		return
	}
	for _, p := range dm.runners.pokes {
		select {
		case p <- struct{}{}:
		default:
		}
	}
}

// runSecondary drains one secondary sink until ctx is done.
func (dm *daemon) runSecondary(ctx context.Context, spec sinkSpec, s sink, poke <-chan struct{}) {
	log := dm.log.With("sink", spec.name)
	ob, err := openOutbox(dm.h, outboxBusy, time.Now)
	if err != nil {
		log.Error("open the outbox for the sink", "error", err)
		return
	}
	defer ob.Close()
	ob.wmu = &dm.wmu
	q := &sinkQueue{ob: ob, name: spec.name}
	if err := q.resetInflight(); err != nil {
		log.Error("outbox", "error", err)
	}
	if err := q.setMeta(map[string]string{"endpoint": s.String(), "paused_reason": "", "paused_since": "", "breaker": "closed"}); err != nil {
		log.Warn("write status", "error", err)
	}
	d := newDrainer(q, s, spec.batch, log, time.Now)
	d.pauseAt = dm.cfg.pauseAt
	ropts := dm.opts.redact
	if spec.redact != nil {
		ropts.off = !*spec.redact
	}
	if err := d.setRedaction(ropts); err != nil {
		log.Error("redaction", "error", err)
		return
	}
	for ctx.Err() == nil {
		sent, err := d.run(ctx, ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("outbox", "error", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		if sent {
			continue
		}
		wait := secondaryWait
		if hold := d.holdUntil(); d.now().Before(hold) {
			// Nothing goes before the hold ends (a pause, an open
			// breaker), whatever the outbox holds: a sink that is down
			// reads nothing at each of the daemon's passes.
			wait = min(wait, max(time.Until(hold), time.Millisecond))
		} else if at, ok, err := q.nextAvailable(); err == nil && ok {
			wait = min(wait, max(time.Until(at), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-poke:
		case <-t.C:
		}
		t.Stop()
	}
}
