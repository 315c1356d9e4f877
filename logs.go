package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// The detached daemon's log rotates at defaultLogMax bytes and keeps
// defaultLogKeep old files: daemon.log.1 (newest) to daemon.log.3.
const (
	defaultLogMax  = 10 << 20
	defaultLogKeep = 3
)

// newLogger logs text for a person reading a terminal or journald, and JSON
// lines in daemon.log for tools.
func newLogger(w io.Writer, jsonLines bool) *slog.Logger {
	if jsonLines {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
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
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|oNoFollow, 0o600)
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
		// A failed rotation (Windows refuses to rename a file another
		// handle holds open) keeps logging to the current file.
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
