package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// meteredLog is a log of size bytes that holds no data: every byte reads
// as fill, so a test can have a 2 GiB log without a 2 GiB file. It counts
// what is read of it and fails once more than budget bytes are read, so
// that a tail that reads the whole log fails the test at once rather than
// running for minutes.
type meteredLog struct {
	size   int64
	fill   byte
	budget int64
	read   int64
}

var errOverBudget = errors.New("read more of the log than the budget allows")

func (l *meteredLog) ReadAt(p []byte, off int64) (int, error) {
	if off >= l.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), l.size-off))
	l.read += int64(n)
	if l.read > l.budget {
		return 0, errOverBudget
	}
	for i := range p[:n] {
		p[i] = l.fill
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestTailWithoutNewlines asks for the last lines of a 2 GiB log that has
// no newline in it: what is read of it, and what is printed, must be
// bounded by the longest line logs prints, not by the size of the log.
// (The test counts bytes rather than timing the call: a count does not
// depend on how busy the machine is.)
func TestTailWithoutNewlines(t *testing.T) {
	const budget = 1 << 20
	for _, n := range []int{1, 5, 20} {
		log := &meteredLog{size: 2 << 30, fill: 'x', budget: budget}
		var out bytes.Buffer
		if err := printTail(&out, log, log.size, n); err != nil {
			t.Fatalf("-n %d: %v (read %d bytes of a %d-byte log)", n, err, log.read, log.size)
		}
		if out.Len() > maxTailLine+200 {
			t.Errorf("-n %d printed %d bytes, want at most one cut line", n, out.Len())
		}
		if !strings.Contains(out.String(), "cut") || !strings.HasSuffix(out.String(), strings.Repeat("x", 100)) {
			t.Errorf("-n %d printed %.100q…, want the end of the line, marked as cut", n, out.String())
		}
		t.Logf("-n %d: read %d bytes, printed %d", n, log.read, out.Len())
	}
}

// TestTail checks which lines printTail prints.
func TestTail(t *testing.T) {
	long := strings.Repeat("y", maxTailLine+10)
	tests := []struct {
		name string
		log  string
		n    int
		want string
	}{
		{"empty", "", 5, ""},
		{"zero lines", "a\nb\n", 0, ""},
		{"fewer than asked", "a\nb\n", 5, "a\nb\n"},
		{"last two", "a\nb\nc\n", 2, "b\nc\n"},
		{"last one", "a\nb\nc\n", 1, "c\n"},
		{"no final newline", "a\nb\nc", 2, "b\nc"},
		{"blank lines", "a\n\n\n", 2, "\n\n"},
		{"only a newline", "\n", 1, "\n"},
		{"a long line ends the look back", "a\n" + long + "\nb\n", 3, "[line cut: only its last 65536 bytes follow] " + long[10:] + "\nb\n"},
		{"a long line not asked for", "a\n" + long + "\nb\nc\n", 2, "b\nc\n"},
		{"a line of exactly the limit", "a\n" + long[10:] + "\nb\n", 2, long[10:] + "\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			r := strings.NewReader(tt.log)
			if err := printTail(&out, r, r.Size(), tt.n); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("last %d lines of %.40q…: got %.80q…, want %.80q…", tt.n, tt.log, got, tt.want)
			}
		})
	}
}

func TestLogsTail(t *testing.T) {
	dir := testHome(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 100 {
		lines = append(lines, `{"n":`+strings.Repeat("9", i%7)+`0}`)
	}
	if err := os.WriteFile(filepath.Join(dir, logFileName), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := mustCLI(t, "logs", "-n", "3")
	if want := strings.Join(lines[97:], "\n") + "\n"; got != want {
		t.Errorf("logs -n 3 = %q, want %q", got, want)
	}
}

func TestRotatingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	r, err := openRotatingFile(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	line := []byte(strings.Repeat("x", 39) + "\n")
	for range 10 {
		if _, err := r.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi.Size() > 100 {
			t.Errorf("%s is %d bytes, over the 100-byte limit", p, fi.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("kept more than 2 old files")
	}
}
