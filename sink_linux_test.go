package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileSinkFullDisk delivers to a file on a 64 KiB tmpfs that fills up
// in the middle of a batch: the failed batch must leave no torn line behind
// for its retry to be glued onto, and once there is room again every line of
// the file is JSON and every event is in it exactly once. (At least once
// would allow a duplicate only when a batch was written and synced but its
// acknowledgement was lost; nothing here loses one.) Root only: it mounts.
func TestFileSinkFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	path := filepath.Join(mnt, "out.jsonl")

	h, err := openHome(testHome(t), true)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	ob := mustOutbox(t, h, clk.now)
	t.Cleanup(func() { ob.Close() })
	d := newDrainer(ob, &fileSink{path: path}, defaultBatch, slog.New(slog.DiscardHandler), clk.now)
	d.jitter = func(x time.Duration) time.Duration { return x }
	payload := `{"pad":"` + strings.Repeat("x", 500) + `"}`
	var ids []string
	add := func(prefix string, n int) {
		for i := range n {
			id := fmt.Sprintf("%s-%02d", prefix, i)
			if err := ob.insert(id, "k", []byte(payload), clk.now()); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	drain := func() {
		for i := 0; ; i++ {
			sent, err := d.step(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !sent || i > 100 {
				return
			}
		}
	}

	add("first", 10)
	drain()
	fi, err := os.Stat(path)
	if err != nil || fi.Size()%4096 == 0 {
		t.Fatalf("after the first batch: %v, size %d; want a size that leaves room in the last page", err, fi.Size())
	}
	// Fill the file system: what is left is the slack in out.jsonl's last
	// page, so the next batch is cut there.
	fillFS(t, filepath.Join(mnt, "filler"))

	add("second", 40)
	if sent, err := d.step(t.Context()); err != nil || !sent {
		t.Fatalf("step on a full disk: sent %v, %v", sent, err)
	}
	if c, _ := ob.counts(); c.Pending != 40 {
		t.Fatalf("%d pending after the write failed, want the 40 of the failed batch", c.Pending)
	}
	if data, err := os.ReadFile(path); err != nil || len(data) == 0 || data[len(data)-1] != '\n' {
		t.Errorf("after the failed batch the file ends in %q (%v), want a whole line", data[max(0, len(data)-40):], err)
	}

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	clk.advance(maxWait)
	drain()
	if c, _ := ob.counts(); c.Pending != 0 || c.Dead != 0 {
		t.Fatalf("counts %+v after space came back, want every event delivered", c)
	}
	checkJSONLines(t, path, ids)
}

// fillFS writes a file at path until the file system it is on is full
// (a 64 KiB tmpfs: it fails the test after more).
func fillFS(t *testing.T, path string) {
	t.Helper()
	filler, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		if i > 64 {
			t.Fatal("the 64 KiB tmpfs never filled")
		}
	}
	filler.Close()
}

// fsizeChildEnv runs TestFileSinkFailedWriteIsUndone's child: the part
// that lowers the file size limit, which holds for the whole process.
const fsizeChildEnv = "DIFFLORE_TEST_FSIZE_CHILD"

// TestFileSinkFailedWriteIsUndone makes a write fail part way without root:
// a child process lowers its file size limit (RLIMIT_FSIZE) below what the
// batch needs, so the write stops inside a line, as on a full disk. The
// failed batch must be cut off again, and its retry must leave every line
// JSON and every event in the file once.
func TestFileSinkFailedWriteIsUndone(t *testing.T) {
	t.Parallel()
	if path := os.Getenv(fsizeChildEnv); path != "" {
		fileSinkUnderFsizeLimit(t, path)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.jsonl")
	cmd := exec.Command(exe, "-test.run=^TestFileSinkFailedWriteIsUndone$", "-test.count=1")
	cmd.Env = append(os.Environ(), fsizeChildEnv+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	checkJSONLines(t, path, eventIDs(append(testEvents(3, `{"n":1}`), testEvents(30, `{"n":2}`)[3:]...)))
}

func fileSinkUnderFsizeLimit(t *testing.T, path string) {
	s := &fileSink{path: path}
	first, second := testEvents(3, `{"n":1}`), testEvents(30, `{"n":2}`)[3:]
	if r := s.send(context.Background(), first); r.verdict != delivered {
		t.Fatalf("first batch: %+v", r)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(fi.Size()) + 150 // a line and a half of the second batch
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &low); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	r := s.send(context.Background(), second)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if r.verdict != retryLater {
		t.Fatalf("batch past the size limit: %+v, want retryLater", r)
	}
	if data, _ := os.ReadFile(path); int64(len(data)) != fi.Size() {
		t.Errorf("after the failed batch the file is %d bytes, want %d as before it: %q", len(data), fi.Size(),
			data[fi.Size():])
	}
	if r := s.send(context.Background(), second); r.verdict != delivered {
		t.Fatalf("retried batch: %+v", r)
	}
}
