package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
)

const outboxUsage = `
Usage:
  difflore outbox [list] [--json] [--limit N] [--sink NAME]
  difflore outbox show ID
  difflore outbox retry [--sink NAME] (--all | ID...)
  difflore outbox purge [--sink NAME] --dead --yes

Inspects the queue. 'list' shows the counts by state and kind and the dead
letters with their last error; 'show' prints an event's payload exactly as
stored on standard output, and its state, attempts and last error on
standard error; 'retry' puts dead letters back in the queue with their
attempts reset (a payload over 1 MiB then goes out alone; one that is not
JSON can never be sent and stays dead), and makes events that wait for a
retry ready now (an ID that names no event is an error, and then nothing
is retried); 'purge' deletes the dead letters for good. Each sink has its
own progress and dead letters (config.toml's [[sink]] tables): --sink NAME
looks at, retries or purges that sink's alone; without it 'list' shows
every sink's and 'retry' and 'purge' act on every sink.

Examples:
  difflore outbox list
  difflore outbox show 0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b > payload.json
  difflore outbox retry --all
  difflore outbox purge --dead --yes
  difflore outbox retry --sink archive --all
`

func cmdOutbox(ctx context.Context, cfg config, args []string) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list":
		return outboxList(cfg, args)
	case "show":
		return outboxShow(cfg, args)
	case "retry":
		return outboxRetry(cfg, args)
	case "purge":
		return outboxPurge(cfg, args)
	}
	return &exitError{code: 2, err: fmt.Errorf("unknown outbox command %q", sub), hint: "run 'difflore outbox -h'"}
}

// openExistingOutbox opens the outbox of the data home. Where there is none
// yet (no home, or no outbox in it), the inspection commands show an empty
// queue rather than fail, and create neither: they open an empty outbox in
// memory instead.
func openExistingOutbox(cfg config) (*outbox, error) {
	h, err := openHome(cfg.home, false)
	if errors.Is(err, fs.ErrNotExist) {
		return openEmptyOutbox()
	}
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(h.path(dbFileName)); errors.Is(err, fs.ErrNotExist) {
		return openEmptyOutbox()
	}
	return openOutbox(h, 5*time.Second, time.Now)
}

// openEmptyOutbox is an outbox with the current schema and nothing in it,
// held in memory.
func openEmptyOutbox() (*outbox, error) {
	conn, err := sqlite.OpenConn(":memory:", sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenMemory)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if err := migrate(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return &outbox{conn: conn, now: time.Now, path: ":memory:"}, nil
}

func outboxList(cfg config, args []string) error {
	fl := newFlagSet(cfg, "outbox list", outboxUsage)
	asJSON := fl.Bool("json", false, "print one JSON object")
	limit := fl.Int("limit", 100, "show at most `N` dead letters")
	sinkName := fl.String("sink", "", "show the sink `NAME` alone (default: every sink)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("outbox list takes no arguments, got %q", fl.Arg(0))
	}
	if *limit < 0 {
		return usageError("--limit must not be negative")
	}
	ob, err := openExistingOutbox(cfg)
	if err != nil {
		return err
	}
	defer ob.Close()
	primary, secondaries, err := pickSink(cfg, ob, *sinkName)
	if err != nil {
		return err
	}
	total, byKind, dead := counts{}, map[string]*counts{}, []deadLetter(nil)
	if primary {
		if total, err = ob.counts(); err != nil {
			return err
		}
		if byKind, err = ob.kindCounts(); err != nil {
			return err
		}
		if dead, err = ob.deadLetters(*limit); err != nil {
			return err
		}
	}
	sinks := map[string]counts{}
	for _, name := range secondaries {
		c, err := ob.sinkCounts(name)
		if err != nil {
			return err
		}
		sinks[name] = c
		d, err := ob.sinkDeadLetters(name, *limit)
		if err != nil {
			return err
		}
		dead = append(dead, d...)
	}
	if !primary && len(secondaries) == 1 {
		total = sinks[secondaries[0]]
	}
	if *asJSON {
		out := struct {
			Counts      counts             `json:"counts"`
			Kinds       map[string]*counts `json:"kinds"`
			Sinks       map[string]counts  `json:"sinks,omitempty"`
			DeadLetters []deadLetter       `json:"dead_letters"`
		}{total, byKind, sinks, dead}
		if out.DeadLetters == nil {
			out.DeadLetters = []deadLetter{}
		}
		return writeJSON(cfg.stdout, out, false)
	}
	fmt.Fprintf(cfg.stdout, "%d pending, %d inflight, %d dead\n", total.Pending, total.Inflight, total.Dead)
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		c := byKind[k]
		fmt.Fprintf(cfg.stdout, "  %-32s %6d pending %6d inflight %6d dead\n", k, c.Pending, c.Inflight, c.Dead)
	}
	if primary {
		for _, name := range secondaries {
			c := sinks[name]
			fmt.Fprintf(cfg.stdout, "sink %s: %d pending, %d inflight, %d dead\n", printable(name), c.Pending, c.Inflight, c.Dead)
		}
	}
	if len(dead) > 0 {
		fmt.Fprintln(cfg.stdout, "dead letters:")
		for _, d := range dead {
			age := time.Since(d.CreatedAt).Round(time.Second)
			where := ""
			if d.Sink != "" {
				where = "sink " + printable(d.Sink) + "  "
			}
			fmt.Fprintf(cfg.stdout, "  %s%s  %s  %s  %s old  %s\n", where, printable(d.ID), printable(d.Kind), plural(d.Attempts, "attempt"), age, firstLine(d.LastError))
		}
	}
	return nil
}

func outboxRetry(cfg config, args []string) error {
	fl := newFlagSet(cfg, "outbox retry", outboxUsage)
	all := fl.Bool("all", false, "retry every dead letter and every waiting event")
	sinkName := fl.String("sink", "", "retry for the sink `NAME` alone (default: every sink)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if *all == (fl.NArg() > 0) {
		return usageError("outbox retry wants --all or dead letter ids, not both or neither")
	}
	for _, id := range fl.Args() {
		if err := checkName("id", id, false); err != nil {
			return err
		}
	}
	ob, err := openExistingOutbox(cfg)
	if err != nil {
		return err
	}
	defer ob.Close()
	primary, secondaries, err := pickSink(cfg, ob, *sinkName)
	if err != nil {
		return err
	}
	var n, waiting int
	var raw, unknown []string
	err = ob.immediate(func() (err error) {
		// An id that names no event is a mistake (a typo, an event already
		// delivered or purged) to report, not a retry of nothing.
		if unknown, err = ob.missing(fl.Args()); err != nil || len(unknown) > 0 {
			return err
		}
		if primary {
			if n, raw, err = ob.retryDead(*all, fl.Args()); err != nil {
				return fmt.Errorf("retry dead letters: %w", err)
			}
			if waiting, err = ob.wakeWaiting(*all, fl.Args()); err != nil {
				return fmt.Errorf("retry waiting events: %w", err)
			}
		}
		for _, name := range secondaries {
			d, w, err := ob.sinkRetry(name, *all, fl.Args())
			if err != nil {
				return fmt.Errorf("retry for sink %q: %w", name, err)
			}
			n, waiting = n+d, waiting+w
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		return withCode(1, fmt.Errorf("no %s in the outbox", quotedList(unknown, "event")))
	}
	if n+waiting > 0 {
		// Ready now means now, not at the daemon's safety-net poll.
		wakeDaemon(home{dir: filepath.Dir(ob.path)})
	}
	fmt.Fprintf(cfg.stdout, "%s back in the queue, %s ready now\n", plural(n, "dead letter"), plural(waiting, "waiting event"))
	switch {
	case len(raw) == 0:
		return nil
	case *all:
		fmt.Fprintf(cfg.stdout, "%d kept dead: their payload is not one valid JSON value and can never be sent ('difflore outbox show ID' prints it)\n", len(raw))
		return nil
	}
	return &exitError{code: 1, err: fmt.Errorf("dead letter %s: its payload is not one valid JSON value and can never be sent; it stays dead", strings.Join(raw, ", ")),
		hint: fmt.Sprintf("'difflore outbox show %s' prints the bytes the hook handed over", raw[0])}
}

func outboxShow(cfg config, args []string) error {
	fl := newFlagSet(cfg, "outbox show", outboxUsage)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return usageError("outbox show takes one event id, got %d", fl.NArg())
	}
	id := fl.Arg(0)
	if err := checkName("id", id, false); err != nil {
		return err
	}
	ob, err := openExistingOutbox(cfg)
	if err != nil {
		return err
	}
	defer ob.Close()
	e, found, err := ob.event(id)
	if err != nil {
		return fmt.Errorf("read event %q: %w", id, err)
	}
	if !found {
		return withCode(1, fmt.Errorf("no event %q in the outbox", id))
	}
	// The payload alone goes to stdout, so that 'outbox show ID > file'
	// recovers exactly the bytes the hook handed over; what a person
	// wants to read with it goes to stderr.
	state := map[int]string{statePending: "pending", stateInflight: "inflight", stateDead: "dead",
		stateDone: "delivered to the first sink, waiting for another ('difflore outbox list' shows each sink's)"}[e.State]
	if e.Raw {
		state += " (its payload is not one valid JSON value: never sent)"
	}
	fmt.Fprintf(cfg.stderr, "id:       %s\nkind:     %s\nstate:    %s\nattempts: %d\ncreated:  %s\nsize:     %s\n",
		printable(e.ID), printable(e.Kind), state, e.Attempts, humanTime(e.CreatedAt), plural(len(e.Payload), "byte"))
	if e.LastError != "" {
		fmt.Fprintf(cfg.stderr, "reason:   %s\n", printable(e.LastError))
	}
	_, err = cfg.stdout.Write(e.Payload)
	return err
}

func outboxPurge(cfg config, args []string) error {
	fl := newFlagSet(cfg, "outbox purge", outboxUsage)
	dead := fl.Bool("dead", false, "purge the dead letters (the only kind of purge)")
	yes := fl.Bool("yes", false, "confirm: the dead letters are deleted for good")
	sinkName := fl.String("sink", "", "purge the dead letters of the sink `NAME` alone (default: every sink's)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("outbox purge takes no arguments, got %q", fl.Arg(0))
	}
	if !*dead || !*yes {
		return &exitError{code: 2, err: fmt.Errorf("outbox purge needs --dead and --yes"),
			hint: "this deletes dead letters for good; 'difflore outbox list' shows them first"}
	}
	ob, err := openExistingOutbox(cfg)
	if err != nil {
		return err
	}
	defer ob.Close()
	primary, secondaries, err := pickSink(cfg, ob, *sinkName)
	if err != nil {
		return err
	}
	n := 0
	if primary {
		if n, err = ob.purgeDead(); err != nil {
			return fmt.Errorf("purge dead letters: %w", err)
		}
	}
	for _, name := range secondaries {
		k, err := ob.sinkPurge(name)
		if err != nil {
			return fmt.Errorf("purge dead letters of sink %q: %w", name, err)
		}
		n += k
	}
	fmt.Fprintf(cfg.stdout, "purged %s\n", plural(n, "dead letter"))
	return nil
}

// quotedList is "event \"a\"" for one id, "events \"a\", \"b\"" for more.
func quotedList(ids []string, word string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	if len(ids) != 1 {
		word += "s"
	}
	return word + " " + strings.Join(q, ", ")
}
