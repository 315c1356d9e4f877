package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"
)

// startFailureFileName is where a daemon that a hook started in the
// background (enqueue --ensure-daemon, DIFFLORE_AUTOSTART=1) records why it
// could not start. The hook itself stays silent and exits 0, so that the
// agent is not disturbed; status and doctor show the record instead, and the
// next daemon that gets ready removes it.
const startFailureFileName = "daemon.failed"

// startFailure is the record in startFailureFileName.
type startFailure struct {
	At    string `json:"at"`
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
}

// failedInBackground is what a daemon started by a hook does with the error
// that ends it before it is ready: one JSON line in the log (every line of
// daemon.log is one JSON object, for 'difflore logs | jq'), and the record
// that status and doctor show. It returns err's exit code, with nothing
// more to print.
func failedInBackground(cfg config, err error, now time.Time) error {
	msg, hint, _ := strings.Cut(err.Error(), "\nhint: ")
	rec := startFailure{At: now.UTC().Format(time.RFC3339Nano), Error: msg, Hint: hint}
	attrs := []any{"error", msg}
	if hint != "" {
		attrs = append(attrs, "hint", hint)
	}
	log := newLogger(cfg.stderr, true, slog.LevelInfo)
	if h, herr := openHome(cfg.home, true); herr == nil {
		if data, jerr := json.Marshal(rec); jerr == nil {
			if werr := writeFileAtomic(h.path(startFailureFileName), append(data, '\n')); werr != nil {
				attrs = append(attrs, "record_error", werr.Error())
			}
		}
	}
	log.Error("the daemon a hook started could not start", attrs...)
	return withCode(exitCode(err), errSilent)
}

// readStartFailure is the record of the last failed background start, or
// nil when there is none.
func readStartFailure(h home) (*startFailure, error) {
	data, err := readShared(h.path(startFailureFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec startFailure
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// clearStartFailure removes the record: a daemon is ready now.
func clearStartFailure(h home) {
	os.Remove(h.path(startFailureFileName))
}
