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
	"io/fs"
	"os"
	"path/filepath"
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
Usage: difflore enqueue [--kind KIND] [--id ID] [--ensure-daemon] [--strict] [JSON]

Queues one event for delivery and returns at once. The payload is the
argument, or standard input when there is none: one JSON value of at most
1 MiB. When the outbox cannot be written in time, the event is saved in the
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
	if fs.NArg() > 1 {
		err := usageError("enqueue takes one JSON argument, got %d", fs.NArg())
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
	var payload []byte
	var dead *deadLetterIn
	if fs.NArg() == 1 {
		payload = []byte(fs.Arg(0))
	} else {
		var err error
		if payload, dead, err = readPayload(cfg.stdin, *strict); err != nil {
			return err
		}
	}
	if *id == "" {
		*id = newEventID(time.Now())
	}
	if dead == nil {
		var err error
		if payload, dead, err = judgePayload(payload, *strict, *id); err != nil {
			return err
		}
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
	var dbErr error
	if dead == nil {
		dbErr = enqueueDB(h.path(dbFileName), enqueueBusy, id, kind, payload, now)
	} else {
		dbErr = enqueueDeadDB(h.path(dbFileName), enqueueBusy, id, kind, payload, now, dead.reason, dead.raw)
	}
	if dbErr == nil {
		return nil
	}
	// The database could not take the event: keep it in a file rather than
	// fail the hook that called us.
	ev := spilled{ID: id, Kind: kind, CreatedAt: now}
	if dead == nil {
		ev.Payload = string(payload)
	} else {
		ev.Reason, ev.Bytes, ev.Raw = dead.reason, payload, dead.raw
	}
	path, err := spillEvent(h, ev)
	if err != nil {
		return fmt.Errorf("event not saved: outbox: %v; spill: %w", dbErr, err)
	}
	fmt.Fprintf(cfg.stderr, "difflore: warning: outbox not writable (%v); event %s saved to %s\n", dbErr, id, path)
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
		if payload, dead, err = readPayloadWithin(cfg.stdin, usageStdinWait); err != nil {
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
		return b, &deadLetterIn{reason: fmt.Sprintf("read standard input: %v; the %d bytes read are kept", err, len(b)), raw: true}, nil
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
	return nil
}

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

// spilled is an event saved in the spill folder. A dead letter has a
// reason, and its bytes in Bytes (base64, since they need not be UTF-8)
// rather than in Payload; a daemon older than dead letters sets such a file
// aside as unreadable rather than lose it.
type spilled struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	Payload   string    `json:"payload"` // a string, so the bytes survive exactly
	Reason    string    `json:"reason,omitempty"`
	Bytes     []byte    `json:"bytes,omitempty"`
	Raw       bool      `json:"raw,omitempty"`
}

// spillEvent saves an event as spill/<uuid>.json, atomically and synced, so
// that a crash leaves either the whole file or none. The name is new for
// each spill, not the event id: ids that differ only in case ("Evt", "evt")
// name one file on macOS and Windows, and the second would replace the
// first; an id such as "CON" names a device on Windows. The id is in the
// file, and replay stores a repeated id once.
func spillEvent(h home, ev spilled) (string, error) {
	dir := h.path(spillDirName)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if err := checkSpillDir(dir); err != nil {
		return "", err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, newEventID(time.Now())+".json")
	return path, writeFileAtomic(path, data)
}

// checkSpillDir refuses a spill folder that is a symlink: events would be
// written where it leads, and replaySpill would rename and delete the files
// it found there.
func checkSpillDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("spill folder %q is not a folder (a symlink?); refusing it", dir)
	}
	return nil
}

// Spill replay works in rounds, so that the daemon delivers between them
// and notices a stop request: a round reads at most spillRoundFiles files,
// and starts no new file once it has read spillRoundBytes.
const (
	spillRoundFiles = 256
	spillRoundBytes = 8 << 20
)

// maxSpillFile is the largest spill file replay reads: a dead letter of
// maxDeadPayload bytes in base64, with its reason and room to spare. enqueue
// never writes a larger one, so a larger one is set aside unread.
const maxSpillFile = (maxDeadPayload+2)/3*4 + 1<<20

// spillTempStale is how old a temporary file in the spill folder must be
// before the daemon removes it at start. enqueue writes, syncs and renames
// its spill file within moments, and an agent kills a hook long before an
// hour has passed (Claude Code's default hook timeout, the longest, is ten
// minutes), so a temporary file an hour old is litter from an enqueue that
// was killed mid-write, never one still being written.
const spillTempStale = time.Hour

// spillRound is what one round of spill replay did.
type spillRound struct {
	moved int  // spill files now in the outbox, dead letters included
	dead  int  // of those, dead letters
	more  bool // files are left for another round
}

// isSpillName reports whether a name in the spill folder is a spill file:
// not a temporary file (a dot first) nor one set aside (.bad, .toobig).
func isSpillName(name string) bool {
	return strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, ".")
}

// replaySpill moves one round of spilled events into the outbox. Insertion
// is by event id, so a file replayed twice (a crash between insert and
// remove) is stored once. A file that cannot be read or parsed is renamed to
// .bad and kept for a person; one larger than maxSpillFile is renamed to
// .toobig, unread, and recorded as a dead letter. A payload that enqueue
// would not have queued (over 1 MiB, not JSON) becomes a dead letter, as
// enqueue would have made it. Cancelling ctx ends the round before the next
// file, leaving the rest for later.
func replaySpill(ctx context.Context, h home, o *outbox) (spillRound, error) {
	var r spillRound
	dir := h.path(spillDirName)
	if err := checkSpillDir(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return r, nil
		}
		return r, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return r, fmt.Errorf("read spill folder: %w", err)
	}
	defer d.Close()
	var batch []spillItem
	read := int64(0)
scan:
	for {
		names, err := d.Readdirnames(spillRoundFiles)
		if err != nil && !errors.Is(err, io.EOF) {
			return r, fmt.Errorf("read spill folder: %w", err)
		}
		if len(names) == 0 {
			break
		}
		for _, name := range names {
			if !isSpillName(name) {
				continue
			}
			if len(batch) == spillRoundFiles || read >= spillRoundBytes || ctx.Err() != nil {
				r.more = true
				break scan
			}
			it, err := loadSpill(filepath.Join(dir, name))
			if err != nil {
				return r, err
			}
			if it != nil {
				batch = append(batch, *it)
				read += it.size
			}
		}
	}
	if ctx.Err() != nil {
		return r, nil
	}
	err = o.immediate(func() error {
		for _, it := range batch {
			if err := it.insert(o); err != nil {
				return fmt.Errorf("replay spilled event %s: %w", it.ev.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	for _, it := range batch {
		// Removed, or set aside, only once the outbox holds it.
		if it.aside != "" {
			err = os.Rename(it.path, it.aside)
		} else {
			err = os.Remove(it.path)
		}
		if err != nil {
			return r, fmt.Errorf("clear replayed spill file: %w", err)
		}
		r.moved++
		if it.dead != nil {
			r.dead++
		}
	}
	return r, nil
}

// spillItem is a spill file read for replay: the event or dead letter it
// holds, and where the file goes once the outbox holds that.
type spillItem struct {
	path  string
	size  int64
	ev    spilled
	dead  *deadLetterIn // nil for an event to queue
	aside string        // not empty: rename the file here rather than remove it
}

func (it spillItem) insert(o *outbox) error {
	if it.dead == nil {
		return o.insert(it.ev.ID, it.ev.Kind, it.ev.Bytes, it.ev.CreatedAt)
	}
	return o.insertDead(it.ev.ID, it.ev.Kind, it.ev.Bytes, it.ev.CreatedAt, it.dead.reason, it.dead.raw)
}

// loadSpill reads one spill file for replay. It returns nil, having set the
// file aside as .bad, when the file cannot be used.
func loadSpill(path string) (*spillItem, error) {
	it := readSpill(path)
	if it == nil {
		// Closed by now: Windows refuses to rename an open file.
		return nil, setAsideBad(path)
	}
	return it, nil
}

// readSpill reads a spill file without ever blocking on it or reading more
// than maxSpillFile: it is opened without following a symlink and without
// waiting for a FIFO's writer, and checked to be a regular file of a size
// enqueue writes before it is read. It returns nil when the file cannot be
// used.
func readSpill(path string) *spillItem {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow|oNonBlock, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	it := &spillItem{path: path, size: fi.Size()}
	if fi.Size() > maxSpillFile {
		// Not enqueue's: record it and keep it for a person, unread.
		it.aside = path + ".toobig"
		it.ev = spilled{ID: "spill-" + newEventID(fi.ModTime()), Kind: "event", CreatedAt: fi.ModTime()}
		if stem := strings.TrimSuffix(filepath.Base(path), ".json"); checkName("id", stem, false) == nil {
			// The same id for the same file, should this round be
			// replayed again after a crash.
			it.ev.ID = "spill-" + stem
		}
		it.dead = &deadLetterIn{raw: true, reason: fmt.Sprintf("spill file is %s (%d bytes), more than enqueue ever writes (%s): set aside unread as %s",
			formatSize(fi.Size()), fi.Size(), formatSize(maxSpillFile), it.aside)}
		return it
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSpillFile+1))
	var ev spilled
	if err != nil || len(data) > maxSpillFile || json.Unmarshal(data, &ev) != nil ||
		checkName("id", ev.ID, false) != nil || checkName("kind", ev.Kind, false) != nil {
		return nil
	}
	it.ev = ev
	if ev.Reason != "" {
		it.dead = &deadLetterIn{reason: ev.Reason}
		it.ev.Bytes, it.dead.raw = deadPayload(ev.Bytes)
		it.dead.raw = it.dead.raw || ev.Raw
		if len(it.ev.Bytes) > maxDeadPayload {
			it.ev.Bytes = it.ev.Bytes[:maxDeadPayload]
			it.dead.raw = true
			it.dead.reason += "; cut to 64 MiB when replayed"
		}
		return it
	}
	// An event's payload goes into the outbox from Bytes too, checked as
	// enqueue checks it.
	p, dead, _ := judgePayload([]byte(ev.Payload), false, ev.ID)
	if dead != nil {
		dead.reason = "spilled payload: " + dead.reason
	}
	it.ev.Bytes, it.dead = p, dead
	return it
}

// setAsideBad renames a spill file that cannot be used to .bad, so that
// replay goes on with the others and a person can look at it.
func setAsideBad(path string) error {
	if err := os.Rename(path, path+".bad"); err != nil {
		return fmt.Errorf("set aside bad spill file: %w", err)
	}
	return nil
}

// formatSize writes a byte count for a person: 1.0 GiB, 85.3 MiB, 512 B.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// countSpilled counts the spill files waiting for replay, from their names
// alone.
func countSpilled(h home) (int, error) {
	dir := h.path(spillDirName)
	if err := checkSpillDir(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if isSpillName(name) {
				n++
			}
		}
		if errors.Is(err, io.EOF) || len(names) == 0 {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// removeStaleSpillTemps removes temporary files that enqueues killed while
// writing them left in the spill folder, once they are spillTempStale old.
func removeStaleSpillTemps(h home, now time.Time) (removed int, err error) {
	dir := h.path(spillDirName)
	if err := checkSpillDir(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		name := e.Name()
		// writeFileAtomic's temporary name for spill/X.json.
		if !e.Type().IsRegular() || !strings.HasPrefix(name, ".") || !strings.Contains(name, ".json.tmp") {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < spillTempStale {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
