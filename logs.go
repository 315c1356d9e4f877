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
	"path/filepath"
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
		// What encoding/json leaves raw of an endpoint's answer is
		// escaped too, so that 'difflore logs' prints it harmlessly.
		return slog.New(slog.NewJSONHandler(jsonEscaper{w}, opts))
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
	// stdio says that the process's standard output and error follow the
	// file (followStdio).
	stdio bool
}

func openRotatingFile(path string, max int64, keep int) (*rotatingFile, error) {
	r := &rotatingFile{path: path, max: max, keep: keep}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := openRegular(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
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
	return r.replace()
}

// replace opens the file at the path in place of the one the log has
// open, points standard output and error at it when they follow the log,
// and closes the old one. The caller holds r.mu.
func (r *rotatingFile) replace() error {
	old := r.f
	if err := r.open(); err != nil {
		r.f = old
		return err
	}
	if r.stdio {
		if err := redirectStdio(r.f); err != nil {
			fmt.Fprintf(r.f, "{\"level\":\"WARN\",\"msg\":\"redirect output to log\",\"error\":%q}\n", err.Error())
		}
	}
	old.Close()
	return nil
}

// followStdio points the process's standard output and error at the log,
// now and after every rotation and reopen: what the Go runtime writes
// there (a panic's stack traces, a fatal error) and what main prints as
// the daemon fails land in the log that is current, not in a file renamed
// away, which rotation would delete.
func (r *rotatingFile) followStdio() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stdio = true
	return redirectStdio(r.f)
}

// reopen opens the file at the path again, for a log moved away by
// another program (logrotate): the lines after it go to a new file there.
func (r *rotatingFile) reopen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replace()
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
across rotations, until interrupted. A line longer than 64 KiB is printed
cut, as its end after a marker, and no line before it is printed.

Examples:
  difflore logs -n 50
  difflore logs -f | jq -r .msg
`

// followPoll is how often 'logs -f' looks for new lines, as tail -f does:
// a log file gives no portable notice of growth.
const followPoll = 250 * time.Millisecond

// tailLog prints the last n lines of the log at path and returns its size
// then; found is false when there is no log yet.
func tailLog(w io.Writer, path string, n int) (size int64, found bool, err error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil {
		err = printTail(w, f, fi.Size(), n)
	}
	if err != nil {
		return 0, true, fmt.Errorf("read log: %w", err)
	}
	return fi.Size(), true, nil
}

// sayNoLogYet says that there is no log at path yet, which is no error: a
// daemon in the foreground logs to its terminal.
func sayNoLogYet(cfg config, path string) {
	fmt.Fprintf(cfg.stderr, "difflore: no log yet at %s (only a detached daemon writes one)\n", path)
}

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
	if errors.Is(err, fs.ErrNotExist) && !*follow {
		// Nothing ran here yet, so no daemon wrote a log either.
		dir, _ := filepath.Abs(cfg.home)
		sayNoLogYet(cfg, filepath.Join(dir, logFileName))
		return nil
	}
	if err != nil {
		return err
	}
	path := h.path(logFileName)
	offset, found, err := tailLog(cfg.stdout, path, *n)
	if err != nil {
		return err
	}
	if !*follow {
		if !found {
			sayNoLogYet(cfg, path)
		}
		return nil
	}
	ctx, stop, err := stopContext(ctx)
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
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // Between a rotation's rename and the new file.
		}
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("read log: %w", notRegular(path, fi.Mode()))
		}
		if fi.Size() < offset {
			offset = 0 // Rotated: the file at path is a new one.
		}
		if fi.Size() == offset {
			continue
		}
		f, err := openRegular(path, os.O_RDONLY, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read log: %w", err)
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

// maxTailLine bounds a line that 'logs' prints. A longer one is printed
// cut, as its last maxTailLine bytes after a marker, and the look back ends
// at it: finding where it starts could mean reading the whole log (a log
// with no newline in it, say), and logs reads only the end of a log.
const maxTailLine = 64 << 10

// tailBlock is how much of the log printTail reads at a time.
const tailBlock = 64 << 10

// printTail prints the last n lines of the first size bytes of r. It reads
// backwards a block at a time until it has found where those lines start,
// so what it reads is bounded by n lines of at most maxTailLine bytes each,
// whatever the size of the log.
func printTail(w io.Writer, r io.ReaderAt, size int64, n int) error {
	if n <= 0 || size == 0 {
		return nil
	}
	start, cut, err := tailStart(r, size, n)
	if err != nil {
		return err
	}
	if cut {
		if _, err := fmt.Fprintf(w, "[line cut: only its last %d bytes follow] ", maxTailLine); err != nil {
			return err
		}
	}
	_, err = io.Copy(w, io.NewSectionReader(r, start, size-start))
	return err
}

// tailStart finds the offset where the last n lines of r start, reading
// backwards from size. cut reports that the first of them is longer than
// maxTailLine and that start is maxTailLine bytes before its end.
func tailStart(r io.ReaderAt, size int64, n int) (start int64, cut bool, err error) {
	buf := make([]byte, tailBlock)
	// lineEnd is where the content of the line being looked at ends: at
	// its newline, or at the end of the log for a last line without one.
	lineEnd := size
	found := 0
	for pos := size; pos > 0; {
		step := min(int64(tailBlock), pos)
		pos -= step
		chunk := buf[:step]
		if _, err := r.ReadAt(chunk, pos); err != nil && err != io.EOF {
			return 0, false, err
		}
		for i := len(chunk); ; {
			j := bytes.LastIndexByte(chunk[:i], '\n')
			if j < 0 {
				break
			}
			i = j
			nl := pos + int64(j)
			if nl == size-1 {
				// The last line's own newline: the line goes on before it.
				lineEnd = nl
				continue
			}
			if lineEnd-(nl+1) > maxTailLine {
				return lineEnd - maxTailLine, true, nil
			}
			if found++; found == n {
				return nl + 1, false, nil
			}
			lineEnd = nl
		}
		if lineEnd-pos > maxTailLine {
			return lineEnd - maxTailLine, true, nil
		}
	}
	return 0, false, nil
}
