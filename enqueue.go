package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxPayload is the largest event payload enqueue accepts.
const maxPayload = 1 << 20

// payloadSlack is how much white space around the payload enqueue reads
// beyond maxPayload before it gives up on standard input, with --strict.
const payloadSlack = 4 << 10

// maxDeadPayload is the most a dead letter keeps of what a hook handed over;
// beyond it the bytes are cut, and the dead letter's reason says so.
const maxDeadPayload = 64 << 20

// maxDrain bounds what enqueue reads and discards of standard input past
// maxDeadPayload: reading it spares the agent that writes it an EPIPE, and
// the bound keeps a runaway writer from holding the hook for long.
const maxDrain = 1 << 30

// usageStdinWait bounds how long enqueue waits for standard input to end
// after a usage error: a caller that got the command line wrong may also
// have left standard input open, and the hook must still return.
const usageStdinWait = 2 * time.Second

// enqueueBusy is how long enqueue waits for a locked database before it
// spills the event to a file instead.
const enqueueBusy = 2 * time.Second

const enqueueUsage = `
Usage: difflore enqueue [--kind KIND] [--id ID] [--ensure-daemon] [--strict] [--env NAMES | JSON]

Queues one event for delivery and returns at once. The payload is the
argument, or standard input when there is none: one JSON value of at most
1 MiB. With --env, for an agent that hands its hooks their context in
environment variables and sends no session id (Kiro), the payload is built
from the environment instead, and standard input is not read: a JSON object
with a session_id (the agent's process and the folder, hashed), cwd, and
each variable of NAMES that is set, as a string. When the outbox cannot be written in time, the event is saved in the
spill folder instead and the daemon picks it up later. With --ensure-daemon
(or DIFFLORE_AUTOSTART=1), a daemon is started in the background when none
runs, at the cost of one lock probe.

enqueue is made for agents' hooks, which read exit code 2 as "block this
action" and standard output as context: it never exits 2 and prints nothing
on standard output. A payload that is not one JSON value, or is over 1 MiB,
is kept as a dead letter (its bytes, up to 64 MiB, and why) and never sent;
'difflore outbox show ID' prints it, and 'difflore outbox retry ID' sends a
valid one that was only too large. Exit 1 means nothing could be kept, or
bad usage, after what standard input carried is kept as a dead letter. With
--strict, for scripts, bad input exits 2 and nothing is kept.

Example:
  echo '{"tool":"Bash"}' | difflore enqueue --kind claude.PostToolUse
`

// deadLetterIn is why enqueue keeps a payload as a dead letter, and whether
// its bytes are raw: not one JSON value, so never sendable.
type deadLetterIn struct {
	reason string
	raw    bool
}

func cmdEnqueue(ctx context.Context, cfg config, args []string) error {
	fs := newFlagSet(cfg, "enqueue", enqueueUsage)
	kind := fs.String("kind", "event", "the event's `kind`, e.g. claude.PostToolUse")
	id := fs.String("id", "", "the event's `id` (default: a new time-ordered id); a repeated id is stored once")
	ensure := fs.Bool("ensure-daemon", cfg.getenv("DIFFLORE_AUTOSTART") == "1", "start the daemon in the background if none runs")
	strict := fs.Bool("strict", false, "for scripts: bad input exits 2 and nothing is kept")
	env := fs.String("env", "", "build the payload from the environment variables `NAMES` (comma-separated), a session_id and cwd; standard input is not read")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, errHelp) || *strict || strictArg(args) {
			return err
		}
		// The flags before the bad one are parsed: keep what of them holds.
		if checkName("kind", *kind, false) != nil {
			*kind = "event"
		}
		if checkName("id", *id, true) != nil {
			*id = ""
		}
		return keepBadUsage(cfg, []string{errText(err)}, nil, *kind, *id, nil, args)
	}
	// Usage errors, and what enqueue uses in place of a bad kind or id so
	// that it can still keep what it was handed.
	var bad, notes []string
	if err := checkName("kind", *kind, false); err != nil {
		if *strict {
			return err
		}
		bad, notes = append(bad, errText(err)), append(notes, `kept as kind "event"`)
		*kind = "event"
	}
	if err := checkName("id", *id, true); err != nil {
		if *strict {
			return err
		}
		bad, notes = append(bad, errText(err)), append(notes, "kept under a new id")
		*id = ""
	}
	if err := checkPayloadArgs(fs.NArg(), *env); err != nil {
		if *strict {
			return err
		}
		bad = append(bad, errText(err))
	}
	if len(bad) > 0 {
		var arg []byte
		if fs.NArg() == 1 {
			arg = []byte(fs.Arg(0))
		}
		return keepBadUsage(cfg, bad, notes, *kind, *id, arg, args)
	}
	arg := payloadArg(cfg, *env, fs.Args())
	payload, dead, err := takePayload(cfg, arg, *strict, kind, id)
	if err != nil {
		return err
	}
	h, err := openHome(cfg.home, true)
	if err != nil {
		return err
	}
	if *ensure {
		// After the event is safe, whatever happens here; a failure to
		// start the daemon must not fail the hook.
		defer func() {
			if err := ensureDaemon(cfg, h); err != nil {
				fmt.Fprintf(cfg.stderr, "difflore: warning: could not start the daemon: %v\n", err)
			}
		}()
	}
	if err := keepEvent(cfg, h, *id, *kind, payload, dead); err != nil {
		return err
	}
	// The event is in the outbox or the spill folder: tell an idle daemon
	// now rather than at its safety-net poll.
	wakeDaemon(h)
	if dead != nil {
		fmt.Fprintf(cfg.stderr, "difflore: warning: %s; kept as dead letter %s ('difflore outbox show %s' prints it)\n", dead.reason, *id, *id)
	}
	return nil
}

// checkPayloadArgs checks where the payload comes from: at most one
// argument, and none with --env.
func checkPayloadArgs(nargs int, env string) error {
	switch {
	case nargs > 1:
		return usageError("enqueue takes one JSON argument, got %d", nargs)
	case env != "" && nargs > 0:
		return usageError("enqueue takes its payload from --env or from the argument, not both")
	}
	return nil
}

// payloadArg is the payload given on the command line: built from the
// environment with --env (envPayload), else the argument; nil when it is
// to be read from standard input.
func payloadArg(cfg config, env string, args []string) []byte {
	switch {
	case env != "":
		return envPayload(cfg.getenv, env)
	case len(args) == 1:
		return []byte(args[0])
	}
	return nil
}

// takePayload reads the payload (arg, else standard input) and judges it,
// and sets the event's kind and id: the id given, else the firing's
// (attributeFiring), else a fresh one.
func takePayload(cfg config, arg []byte, strict bool, kind, id *string) ([]byte, *deadLetterIn, error) {
	payload := arg
	var dead *deadLetterIn
	if arg == nil {
		var err error
		if payload, dead, err = readPayload(cfg.stdin, strict); err != nil {
			return nil, nil, err
		}
	}
	idGiven := *id != ""
	if *id == "" {
		*id = newEventID(time.Now())
	}
	if dead == nil {
		var err error
		if payload, dead, err = judgePayload(payload, strict, *id); err != nil {
			return nil, nil, err
		}
	}
	// A dead letter keeps its fresh id: its bytes are no firing's key.
	*kind, *id = attributeFiring(*kind, *id, payload, idGiven || dead != nil)
	return payload, dead, nil
}

// judgePayload checks a payload read whole. It returns the JSON value to
// queue, or what a dead letter keeps of the payload and why; with strict, an
// error instead of a dead letter.
func judgePayload(p []byte, strict bool, id string) ([]byte, *deadLetterIn, error) {
	v, err := checkPayload(p)
	if err == nil {
		return v, nil, nil
	}
	if strict {
		return nil, nil, err
	}
	dead := &deadLetterIn{reason: errText(err)}
	if p, dead.raw = deadPayload(p); !dead.raw {
		dead.reason += fmt.Sprintf("; 'difflore outbox retry %s' sends it alone", id)
	}
	return p, dead, nil
}

// keepEvent stores an event, or a dead letter when dead is set, in the
// outbox, or in the spill folder when the outbox cannot take it in time.
// It fails only when neither could keep it.
func keepEvent(cfg config, h home, id, kind string, payload []byte, dead *deadLetterIn) error {
	now := time.Now().UTC()
	tp := hookTraceparent(cfg.getenv)
	var dbErr error
	if dead == nil {
		dbErr = enqueueDBTP(h.path(dbFileName), enqueueBusy, id, kind, payload, now, tp)
	} else {
		dbErr = enqueueDeadDB(h.path(dbFileName), enqueueBusy, id, kind, payload, now, dead.reason, dead.raw)
	}
	if dbErr == nil {
		return nil
	}
	// The database could not take the event: keep it in a file rather than
	// fail the hook that called us.
	ev := spilled{ID: id, Kind: kind, CreatedAt: now, Traceparent: tp}
	if dead == nil {
		ev.Payload = string(payload)
	} else {
		ev.Reason, ev.Bytes, ev.Raw = dead.reason, payload, dead.raw
	}
	path, err := spillEvent(h, ev)
	if err != nil {
		return fmt.Errorf("event not saved: outbox: %v; spill: %w", dbErr, err)
	}
	// An agent shows a hook's standard error to the user, on every hook
	// (Gemini CLI does): a spill is reported by status ("N spilled"), and
	// said here only to a person who runs enqueue at a terminal.
	if isTerminal(cfg.stderr) {
		fmt.Fprintf(cfg.stderr, "difflore: warning: outbox not writable (%v); event %s saved to %s\n", dbErr, id, path)
	}
	return nil
}

// keepBadUsage keeps what a hook handed to a command line enqueue cannot
// follow as a dead letter whose reason names the mistake, then fails with
// exit code 1, which agents show without blocking anything. What it keeps
// is the one argument when there is one, else what standard input carries,
// unless standard input is a terminal: then a person is there to see the
// error, and nothing is read.
func keepBadUsage(cfg config, bad, notes []string, kind, id string, arg []byte, args []string) error {
	usage := &exitError{code: 1, err: errors.New(strings.Join(bad, "; ")), hint: "run 'difflore enqueue -h' for usage"}
	reason := "bad usage: " + strings.Join(append(bad, notes...), "; ") + "; arguments: " + quoteArgs(args)
	payload, what := arg, "the payload"
	var dead *deadLetterIn
	if arg == nil {
		if isTerminal(cfg.stdin) {
			return usage
		}
		what = "standard input"
		var err error
		if payload, dead, err = readPayloadWithin(cfg.stdin, cfg.waits.stdinWait); err != nil {
			reason += "; " + err.Error()
		}
	}
	if id == "" {
		id = newEventID(time.Now())
	}
	raw := true
	if dead == nil {
		// A payload that would have been queued stays sendable: once
		// the hook is fixed, 'outbox retry' can still deliver it.
		payload, dead, _ = judgePayload(payload, false, id)
		raw = dead != nil && dead.raw
	}
	if dead != nil {
		reason += "; " + dead.reason
	}
	h, err := openHome(cfg.home, true)
	if err == nil {
		err = keepEvent(cfg, h, id, kind, payload, &deadLetterIn{reason: reason, raw: raw})
	}
	if err != nil {
		usage.hint += fmt.Sprintf("; %s could not be kept: %v", what, err)
		return usage
	}
	usage.hint += fmt.Sprintf("; %s is kept as dead letter %s", what, id)
	return usage
}

// readPayload reads the payload from standard input. Beyond maxDeadPayload
// bytes it is cut, and the rest drained, and it comes back as a dead letter
// that says so; with strict, it is refused beyond maxPayload, as before dead
// letters were kept.
func readPayload(r io.Reader, strict bool) ([]byte, *deadLetterIn, error) {
	if strict {
		// The slack lets a 1 MiB value through with the newline that echo
		// and most tools add; checkPayload measures the value itself.
		b, err := io.ReadAll(io.LimitReader(r, maxPayload+payloadSlack+1))
		if err != nil {
			return nil, nil, withCode(2, fmt.Errorf("read standard input: %w", err))
		}
		if len(b) > maxPayload+payloadSlack {
			return nil, nil, usageError("payload is larger than 1 MiB")
		}
		return b, nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDeadPayload+1))
	if err != nil {
		return b, &deadLetterIn{reason: fmt.Sprintf("read standard input: %v; what was read (%s) is kept", err, plural(len(b), "byte")), raw: true}, nil
	}
	if len(b) > maxDeadPayload {
		n, _ := io.Copy(io.Discard, io.LimitReader(r, maxDrain))
		return b[:maxDeadPayload], &deadLetterIn{
			reason: fmt.Sprintf("payload is larger than 64 MiB (%d bytes or more): cut, only its first 64 MiB are kept", int64(len(b))+n),
			raw:    true,
		}, nil
	}
	return b, nil, nil
}

// readPayloadWithin is readPayload for a caller that may have left standard
// input open: it gives up after wait, and the read goes on only until the
// process exits.
func readPayloadWithin(r io.Reader, wait time.Duration) ([]byte, *deadLetterIn, error) {
	type result struct {
		b    []byte
		dead *deadLetterIn
	}
	done := make(chan result, 1)
	go func() {
		b, dead, _ := readPayload(r, false)
		done <- result{b, dead}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case res := <-done:
		return res.b, res.dead, nil
	case <-t.C:
		return nil, nil, fmt.Errorf("standard input did not end within %s, not kept", wait)
	}
}

// deadPayload is what a dead letter keeps of p: the JSON value without the
// white space around it when p is one (too large, say), so that 'outbox
// retry' can send it as it sends any event; else p exactly, marked raw.
func deadPayload(p []byte) ([]byte, bool) {
	v := bytes.Trim(p, " \t\r\n")
	if len(v) > 0 && json.Valid(v) && utf8.Valid(v) {
		return v, false
	}
	return p, true
}

// strictArg reports whether args ask for --strict, for when they cannot be
// parsed: the flag package stops at a bad flag before a --strict after it.
func strictArg(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-strict", "--strict", "-strict=true", "--strict=true", "-strict=1", "--strict=1":
			return true
		}
	}
	return false
}

// quoteArgs quotes a command line for a dead letter's reason, cut at 1 KiB,
// so that a person sees what the hook was given.
func quoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(a))
		if b.Len() > 1<<10 {
			return b.String()[:1<<10] + "…"
		}
	}
	return b.String()
}

// errText is an error's message without its hint line.
func errText(err error) string {
	var e *exitError
	if errors.As(err, &e) {
		return e.err.Error()
	}
	return err.Error()
}

// checkPayload accepts exactly one JSON value of at most maxPayload bytes,
// returned without the white space around it.
func checkPayload(p []byte) ([]byte, error) {
	// Only JSON's own white space is dropped: bytes.TrimSpace would also
	// strip Unicode spaces (U+00A0, U+0085) and accept "\u00a0{}", which is
	// not JSON.
	p = bytes.Trim(p, " \t\r\n")
	if len(p) > maxPayload {
		return nil, usageError("payload is larger than 1 MiB (%d bytes)", len(p))
	}
	if len(p) == 0 {
		return nil, &exitError{code: 2, err: errors.New("empty payload: give one JSON value as the argument or on standard input"),
			hint: `difflore enqueue '{"hello":"world"}'`}
	}
	if !json.Valid(p) {
		var v any
		err := json.Unmarshal(p, &v)
		if err == nil { // json.Valid and Unmarshal disagree only on trailing data.
			err = errors.New("more than one value")
		}
		return nil, usageError("payload is not one valid JSON value: %v", err)
	}
	// json.Valid lets invalid UTF-8 through inside strings, but JSON is
	// UTF-8 (RFC 8259): such bytes would reach the endpoint as they are and
	// be replaced by U+FFFD in a spill file, so the event would change.
	if !utf8.Valid(p) {
		return nil, usageError("payload is not valid UTF-8")
	}
	return p, nil
}

// checkName validates an event id or kind: short, and made of characters
// that are safe in a file name and a log line.
func checkName(what, s string, emptyOK bool) error {
	if s == "" {
		if emptyOK {
			return nil
		}
		return usageError("--%s must not be empty", what)
	}
	if len(s) > 128 {
		return usageError("--%s is longer than 128 characters", what)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)
		if !ok {
			return usageError("--%s %q: use only letters, digits, '.', '_', ':' and '-'", what, s)
		}
	}
	if s[0] == '.' || s[0] == '-' {
		return usageError("--%s %q must start with a letter or digit", what, s)
	}
	// The kinds that start with "difflore." are difflore's own: a hook
	// that could enqueue a difflore.gap would make an event that eviction
	// never takes and that a receiver reads as a loss report.
	if what == "kind" && len(s) >= len(reservedKindPrefix) && strings.EqualFold(s[:len(reservedKindPrefix)], reservedKindPrefix) {
		return usageError("--kind %q: kinds that start with %q are difflore's own", s, reservedKindPrefix)
	}
	return nil
}

// reservedKindPrefix starts the kinds of the events difflore makes itself
// (gapKind).
const reservedKindPrefix = "difflore."

// newEventID returns a UUIDv7: 48 bits of Unix milliseconds then random
// bits, so ids sort by creation time and never collide in practice.
func newEventID(t time.Time) string {
	var b [16]byte
	rand.Read(b[6:])
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16|uint64(binary.BigEndian.Uint16(b[6:8])))
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// maxTraceparent bounds the TRACEPARENT kept with an event: a W3C
// traceparent is 55 characters (a later version may add fields after
// them); anything longer is not one, and is not kept.
const maxTraceparent = 512

// hookTraceparent is the hook's TRACEPARENT, which Claude Code (with its
// tracing on) and Qwen Code set for their hooks: the agent's span that the
// daemon makes this event's spans children of. It is kept as it is; the
// daemon reads it (parseTraceparent) and ignores one it cannot.
func hookTraceparent(getenv func(string) string) string {
	tp := getenv("TRACEPARENT")
	if len(tp) > maxTraceparent {
		return ""
	}
	return tp
}
