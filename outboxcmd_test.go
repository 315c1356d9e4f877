package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestOutboxCommandsCreateNothing checks that the outbox commands, which
// only inspect or change what is queued, show an empty queue in a data home
// that does not exist yet, or has no outbox, and create neither.
func TestOutboxCommandsCreateNothing(t *testing.T) {
	cmds := []struct {
		args     []string
		out      string
		wantCode int
	}{
		{[]string{"outbox", "list"}, "0 pending, 0 inflight, 0 dead\n", 0},
		{[]string{"outbox", "retry", "--all"}, "0 dead letters back in the queue, 0 waiting events ready now\n", 0},
		{[]string{"outbox", "show", "evt-1"}, "", 1},
		{[]string{"outbox", "purge", "--dead", "--yes"}, "", 0},
	}
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	for _, c := range cmds {
		out, errOut, code := e.cli("", c.args...)
		if code != c.wantCode || (c.out != "" && out != c.out) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", c.args, code, out, errOut, c.wantCode, c.out)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v created the data home %s (err %v)", c.args, dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		e.cli("", c.args...)
		if _, err := os.Lstat(filepath.Join(dir, dbFileName)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v created the outbox (err %v)", c.args, err)
		}
	}
}
