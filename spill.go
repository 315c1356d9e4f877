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
