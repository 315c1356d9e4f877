package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"
)

// The detached daemon's log rotates at defaultLogMax bytes and keeps
// defaultLogKeep old files: daemon.log.1 (newest) to daemon.log.3.
const (
	defaultLogMax  = 10 << 20
	defaultLogKeep = 3
)

// newLogger logs text for a person reading a terminal or journald, and JSON
// lines in daemon.log for tools.
func newLogger(w io.Writer, jsonLines bool, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if jsonLines {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// rotatingFile is an append-only log file that renames itself aside when it
// grows past max bytes.
type rotatingFile struct {
	mu   sync.Mutex
	path string
	max  int64
	keep int
	f    *os.File
	size int64
}

func openRotatingFile(path string, max int64, keep int) (*rotatingFile, error) {
	r := &rotatingFile{path: path, max: max, keep: keep}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := openShared(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|oNoFollow, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, fi.Size()
	return nil
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.size+int64(len(p)) > r.max && r.size > 0 {
		// A failed rotation keeps logging to the current file. (Windows
		// refuses to rename a file that another program holds open
		// without sharing delete access; difflore's own opens share it.)
		if err := r.rotate(); err != nil {
			fmt.Fprintf(r.f, "{\"level\":\"WARN\",\"msg\":\"log rotation failed\",\"error\":%q}\n", err.Error())
			r.size = 0
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

func (r *rotatingFile) rotate() error {
	for i := r.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return err
	}
	old := r.f
	if err := r.open(); err != nil {
		r.f = old
		return err
	}
	old.Close()
	return nil
}

func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

const logsUsage = `
Usage: difflore logs [-f] [-n N]

Prints the end of the detached daemon's log (daemon.log in the data home),
one JSON object a line. With -f, keeps printing lines as they are written,
across rotations, until interrupted.

Examples:
  difflore logs -n 50
  difflore logs -f | jq -r .msg
`

// followPoll is how often 'logs -f' looks for new lines, as tail -f does:
// a log file gives no portable notice of growth.
const followPoll = 250 * time.Millisecond

func cmdLogs(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "logs", logsUsage)
	follow := fl.Bool("f", false, "follow: keep printing new lines")
	n := fl.Int("n", 20, "print the last `N` lines")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("logs takes no arguments, got %q", fl.Arg(0))
	}
	if *n < 0 {
		return usageError("-n must not be negative")
	}
	h, err := openHome(cfg.home, false)
	if err != nil {
		return err
	}
	path := h.path(logFileName)
	f, err := openShared(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) && !*follow {
		fmt.Fprintf(cfg.stderr, "difflore: no log yet at %s (only a detached daemon writes one)\n", path)
		return nil
	}
	var offset int64
	if err == nil {
		offset, err = printTail(cfg.stdout, f, *n)
		f.Close()
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
	}
	if !*follow {
		return nil
	}
	ctx, stop, err := stopContext(ctx, h)
	if err != nil {
		return err
	}
	defer stop()
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			continue // Between a rotation's rename and the new file.
		}
		if fi.Size() < offset {
			offset = 0 // Rotated: the file at path is a new one.
		}
		if fi.Size() == offset {
			continue
		}
		f, err := openShared(path, os.O_RDONLY, 0)
		if err != nil {
			continue
		}
		f.Seek(offset, io.SeekStart)
		m, err := io.Copy(cfg.stdout, f)
		f.Close()
		offset += m
		if err != nil {
			return err
		}
	}
}

// printTail prints the last n lines of f and returns the offset of its end.
func printTail(w io.Writer, f *os.File, n int) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	// Read backwards in blocks until n line ends are in hand: a log may be
	// large, and only its end is wanted.
	const block = 64 << 10
	var buf []byte
	pos := size
	for pos > 0 && bytes.Count(buf, []byte("\n")) <= n {
		step := min(block, pos)
		pos -= step
		chunk := make([]byte, step)
		if _, err := f.ReadAt(chunk, pos); err != nil && err != io.EOF {
			return 0, err
		}
		buf = append(chunk, buf...)
	}
	lines := bytes.SplitAfter(buf, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		if _, err := w.Write(l); err != nil {
			return 0, err
		}
	}
	return size, nil
}
