package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestOpenShared checks that files opened with openShared append as O_APPEND
// does and can be renamed and removed while open, which log rotation and the
// daemon's PID file rely on: a plain open on Windows forbids both.
func TestOpenShared(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	const appendFlags = os.O_WRONLY | os.O_APPEND | os.O_CREATE
	w1, err := openShared(path, appendFlags, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := openShared(path, appendFlags, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	for _, w := range []*os.File{w1, w2, w1} {
		if _, err := w.WriteString(w.Name()[len(dir):] + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	r, err := openShared(path, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatalf("rename while open for reading and appending: %v", err)
	}
	if _, err := w2.WriteString("after rename\n"); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	name := string(os.PathSeparator) + "x.log\n"
	if want := name + name + name + "after rename\n"; string(data) != want {
		t.Errorf("file holds %q, want %q: writes must append, and follow the file when it is renamed", data, want)
	}
	if err := os.Remove(path + ".1"); err != nil {
		t.Errorf("remove while open: %v", err)
	}

	if _, err := openShared(filepath.Join(dir, "missing"), os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open a missing file: %v, want fs.ErrNotExist", err)
	}
	if runtime.GOOS != "windows" {
		fi, err := w1.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("new file has mode %v, want no access for others", perm)
		}
	}
}
