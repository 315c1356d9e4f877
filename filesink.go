package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fileSink appends events as JSON lines to a file and syncs it before they
// count as delivered.
type fileSink struct {
	path string
}

// String is the file's URL as config.toml and status write it,
// file:///home/me/events.jsonl (file:///C:/Users/… on Windows).
func (s *fileSink) String() string {
	p := filepath.ToSlash(s.path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return "file://" + p
}

func (s *fileSink) send(_ context.Context, events []event) result {
	var b []byte
	for _, e := range events {
		start := len(b)
		b = appendEvent(b, e)
		oneLine(b[start:])
		b = append(b, '\n')
	}
	// O_APPEND keeps each batch whole against another program appending
	// to the same file; reading is for the last byte (appendLines).
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return result{verdict: retryLater, err: err.Error()}
	}
	err = appendLines(f, s.path, b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return result{verdict: retryLater, err: err.Error()}
	}
	return result{verdict: delivered}
}

// oneLine turns the line breaks of an encoded event into spaces, in place,
// so that a payload a hook pretty-printed still takes one line of a file:
// endpoint. Its value is unchanged: JSON allows a raw line break only as
// white space between tokens, never inside a string.
func oneLine(b []byte) {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
}

// appendLines appends lines to f, the file at path, and syncs them, so that
// every line of the file stays one JSON value:
//
//   - A batch starts on a line of its own: when the file does not end in a
//     newline (another writer's line, or one a crash cut short), one comes
//     first, rather than gluing the batch's first event onto that line.
//   - A write or sync that fails (a full disk, a size limit) is undone: the
//     file is cut back to where the batch began, so no torn line is left
//     for the retried batch to follow. Only when another writer appended
//     after the batch is the file left as it is, since its lines are not
//     ours to cut; the next batch then still starts on a fresh line.
func appendLines(f *os.File, path string, lines []byte) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	start := fi.Size()
	if start > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], start-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			lines = append([]byte{'\n'}, lines...)
		}
	}
	n, err := f.Write(lines)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if uerr := undoAppend(f, path, start, start+int64(n)); uerr != nil {
			return fmt.Errorf("%w (and the part written stays: %v)", err, uerr)
		}
		return err
	}
	return nil
}

// undoAppend cuts the file f back to size start, if it is still end bytes
// long. It truncates through a handle of its own, opened without O_APPEND:
// Windows does not let a handle opened for appending set the file's end.
func undoAppend(f *os.File, path string, start, end int64) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() != end {
		return err // nothing we wrote, or another writer wrote after it
	}
	g, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer g.Close()
	if gi, err := g.Stat(); err != nil || !os.SameFile(fi, gi) {
		return fmt.Errorf("%q was replaced", path)
	}
	if err := g.Truncate(start); err != nil {
		return err
	}
	return g.Sync()
}
