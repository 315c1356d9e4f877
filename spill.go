package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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
	// Traceparent is the hook's TRACEPARENT (enqueue.go).
	Traceparent string `json:"traceparent,omitempty"`
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
	// unreadable counts the spill files this round could not read (an
	// error opening, inspecting or reading one, which may pass): they stay
	// where they are for the next round, and unreadableErr says why the
	// first of them could not be read.
	unreadable    int
	unreadableErr error
}

// badSpillSuffix is what older releases added to the name of a spill
// file they could not read, hiding it from every count. Replay reads such
// files again: one set aside for an error that has passed is an event.
const badSpillSuffix = ".bad"

// isSpillName reports whether a name in the spill folder is a spill file:
// not a temporary file (a dot first) nor one set aside unread (.toobig,
// .notfile). A .json.bad file, set aside by an older release, is one.
func isSpillName(name string) bool {
	name = strings.TrimSuffix(name, badSpillSuffix)
	return strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, ".")
}

// spillStem is a spill file's name without its suffixes: the event id
// given to the dead letter that records it when it holds no event.
func spillStem(path string) string {
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), badSpillSuffix), ".json")
}

// replaySpill moves one round of spilled events into the outbox. Insertion
// is by event id, so a file replayed twice (a crash between insert and
// remove) is stored once. Nothing is hidden: a file that cannot be read
// now stays for the next round and is counted (spillRound.unreadable); one
// that is read whole but holds no event becomes a raw dead letter with its
// bytes and the reason, and one larger than maxSpillFile, or that is not a
// file (a named pipe, a device), is set aside unread (.toobig, .notfile)
// and recorded as a dead letter. A payload that enqueue would not have
// queued (over 1 MiB, not JSON) becomes a dead letter, as enqueue would
// have made it. Cancelling ctx ends the round before the next file,
// leaving the rest for later.
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
			it, err := readSpill(filepath.Join(dir, name))
			if err != nil {
				if r.unreadable++; r.unreadableErr == nil {
					r.unreadableErr = err
				}
				continue
			}
			batch = append(batch, *it)
			read += it.size
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
		return insertEventTP(o.conn, it.ev.ID, it.ev.Kind, it.ev.Bytes, it.ev.CreatedAt, it.ev.Traceparent)
	}
	return o.insertDead(it.ev.ID, it.ev.Kind, it.ev.Bytes, it.ev.CreatedAt, it.dead.reason, it.dead.raw)
}

// readSpill reads a spill file without ever blocking on it or reading more
// than maxSpillFile: it is opened without following a symlink and without
// waiting for a FIFO's writer, and checked to be a regular file of a size
// enqueue writes before it is read. An error means that it could not be
// read now, which may pass (the file is left for the next round); a file
// read whole that holds no event comes back as a dead letter of its bytes.
func readSpill(path string) (*spillItem, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow|oNonBlock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		// A named pipe or a device: never enqueue's, and reading it could
		// block or never end.
		return setAsideUnread(path, fi, ".notfile", fmt.Sprintf("spill file is not a file (%s)", fi.Mode().Type())), nil
	}
	if fi.Size() > maxSpillFile {
		return setAsideUnread(path, fi, ".toobig", fmt.Sprintf("spill file is %s (%d bytes), more than enqueue ever writes (%s)",
			formatSize(fi.Size()), fi.Size(), formatSize(maxSpillFile))), nil
	}
	// A folder reads as an error here (EISDIR), left for a later round
	// like any read error: whatever made it, it is not proof that an
	// event is lost.
	data, err := io.ReadAll(io.LimitReader(f, maxSpillFile+1))
	if err != nil {
		return nil, err
	}
	it := &spillItem{path: path, size: int64(len(data))}
	if err := decodeSpill(it, data); err != nil {
		it.ev = spilled{ID: spillDeadID(path, fi), Kind: "event", CreatedAt: fi.ModTime(), Bytes: data}
		it.dead = &deadLetterIn{raw: true, reason: fmt.Sprintf("spill file %s holds no event (%v): its bytes are kept here", filepath.Base(path), err)}
		if len(data) > maxDeadPayload {
			it.ev.Bytes = data[:maxDeadPayload]
			it.dead.reason += "; cut to 64 MiB"
		}
	}
	return it, nil
}

// decodeSpill reads the event or dead letter a spill file holds into it,
// or says why the bytes are not one.
func decodeSpill(it *spillItem, data []byte) error {
	var ev spilled
	if len(data) > maxSpillFile {
		return fmt.Errorf("more than %s", formatSize(maxSpillFile))
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return err
	}
	if err := checkName("id", ev.ID, false); err != nil {
		return err
	}
	if err := checkName("kind", ev.Kind, false); err != nil {
		return err
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
		return nil
	}
	// An event's payload goes into the outbox from Bytes too, checked as
	// enqueue checks it.
	p, dead, _ := judgePayload([]byte(ev.Payload), false, ev.ID)
	if dead != nil {
		dead.reason = "spilled payload: " + dead.reason
	}
	it.ev.Bytes, it.dead = p, dead
	return nil
}

// spillDeadID is the id of the dead letter that records a spill file
// holding no event: the same for the same file, should a round be replayed
// again after a crash.
func spillDeadID(path string, fi os.FileInfo) string {
	if stem := spillStem(path); checkName("id", stem, false) == nil {
		return "spill-" + stem
	}
	return "spill-" + newEventID(fi.ModTime())
}

// setAsideUnread is the item of a spill file that replay must not read:
// a dead letter that records it, and the name it is kept under for a
// person (path with suffix), out of later rounds.
func setAsideUnread(path string, fi os.FileInfo, suffix, why string) *spillItem {
	aside := strings.TrimSuffix(path, badSpillSuffix) + suffix
	return &spillItem{
		path: path, aside: aside,
		ev:   spilled{ID: spillDeadID(path, fi), Kind: "event", CreatedAt: fi.ModTime()},
		dead: &deadLetterIn{raw: true, reason: why + ": set aside unread as " + aside},
	}
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
