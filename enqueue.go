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
	"strings"
	"time"
	"unicode/utf8"
)

// maxPayload is the largest event payload enqueue accepts.
const maxPayload = 1 << 20

// payloadSlack is how much white space around the payload enqueue reads
// beyond maxPayload before it gives up on standard input.
const payloadSlack = 4 << 10

// enqueueBusy is how long enqueue waits for a locked database before it
// spills the event to a file instead.
const enqueueBusy = 2 * time.Second

const enqueueUsage = `
Usage: difflore enqueue [--kind KIND] [--id ID] [--ensure-daemon] [JSON]

Queues one event for delivery and returns at once. The payload is the
argument, or standard input when there is none; it must be one JSON value of
at most 1 MiB. When the outbox cannot be written in time, the event is saved
in the spill folder instead and the daemon picks it up later. With
--ensure-daemon (or DIFFLORE_AUTOSTART=1), a daemon is started in the
background when none runs, at the cost of one lock probe.

Example:
  echo '{"tool":"Bash"}' | difflore enqueue --kind claude.PostToolUse
`

func cmdEnqueue(ctx context.Context, cfg config, args []string) error {
	fs := newFlagSet(cfg, "enqueue", enqueueUsage)
	kind := fs.String("kind", "event", "the event's `kind`, e.g. claude.PostToolUse")
	id := fs.String("id", "", "the event's `id` (default: a new time-ordered id); a repeated id is stored once")
	ensure := fs.Bool("ensure-daemon", cfg.getenv("DIFFLORE_AUTOSTART") == "1", "start the daemon in the background if none runs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkName("kind", *kind, false); err != nil {
		return err
	}
	if err := checkName("id", *id, true); err != nil {
		return err
	}
	var payload []byte
	switch fs.NArg() {
	case 0:
		// The slack lets a 1 MiB value through with the newline that echo
		// and most tools add; checkPayload measures the value itself.
		b, err := io.ReadAll(io.LimitReader(cfg.stdin, maxPayload+payloadSlack+1))
		if err != nil {
			return withCode(2, fmt.Errorf("read standard input: %w", err))
		}
		if len(b) > maxPayload+payloadSlack {
			return usageError("payload is larger than 1 MiB")
		}
		payload = b
	case 1:
		payload = []byte(fs.Arg(0))
	default:
		return usageError("enqueue takes one JSON argument, got %d", fs.NArg())
	}
	payload, err := checkPayload(payload)
	if err != nil {
		return err
	}
	if *id == "" {
		*id = newEventID(time.Now())
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
	now := time.Now().UTC()
	dbErr := enqueueDB(h.path(dbFileName), enqueueBusy, *id, *kind, payload, now)
	if dbErr == nil {
		return nil
	}
	// The database could not take the event: keep it in a file rather than
	// fail the hook that called us.
	path, err := spillEvent(h, spilled{ID: *id, Kind: *kind, CreatedAt: now, Payload: string(payload)})
	if err != nil {
		return fmt.Errorf("event not saved: outbox: %v; spill: %w", dbErr, err)
	}
	fmt.Fprintf(cfg.stderr, "difflore: warning: outbox not writable (%v); event %s saved to %s\n", dbErr, *id, path)
	return nil
}

// checkPayload accepts exactly one JSON value of at most maxPayload bytes,
// returned without the white space around it.
func checkPayload(p []byte) ([]byte, error) {
	// Only JSON's own white space is dropped: bytes.TrimSpace would also
	// strip Unicode spaces (U+00A0, U+0085) and accept "\u00a0{}", which is
	// not JSON.
	p = bytes.Trim(p, " \t\r\n")
	if len(p) > maxPayload {
		return nil, usageError("payload is larger than 1 MiB")
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

// spilled is an event saved in the spill folder.
type spilled struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	Payload   string    `json:"payload"` // a string, so the bytes survive exactly
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

// replaySpill moves spilled events into the outbox. Insertion is by event id,
// so a file replayed twice (a crash between insert and remove) is stored
// once. A file that cannot be parsed is renamed to .bad and kept for a person.
func replaySpill(h home, o *outbox) (moved int, err error) {
	dir := h.path(spillDirName)
	if err := checkSpillDir(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read spill folder: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		// A file that cannot be read or parsed is set aside, not retried:
		// stopping at it would keep every later spilled event out.
		data, rerr := os.ReadFile(path)
		var ev spilled
		if rerr != nil || json.Unmarshal(data, &ev) != nil || checkName("id", ev.ID, false) != nil ||
			checkName("kind", ev.Kind, false) != nil || !json.Valid([]byte(ev.Payload)) {
			if err := os.Rename(path, path+".bad"); err != nil {
				return moved, fmt.Errorf("set aside bad spill file: %w", err)
			}
			continue
		}
		if err := o.insert(ev.ID, ev.Kind, []byte(ev.Payload), ev.CreatedAt); err != nil {
			return moved, fmt.Errorf("replay spilled event %s: %w", ev.ID, err)
		}
		if err := os.Remove(path); err != nil {
			return moved, fmt.Errorf("remove replayed spill file: %w", err)
		}
		moved++
	}
	return moved, nil
}
