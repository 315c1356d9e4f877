package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallFullDisk mounts a 32 MiB ext4 file system (a loop device on a file
// in the test's folder) and fills it with another file until less than
// 5 % of it is free, as df counts it (Use% over 95). It unmounts it when the
// test ends, whatever happened. It skips the test where it cannot.
func smallFullDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a small file system")
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-qF", img).CombinedOutput(); err != nil {
		t.Skipf("cannot make a small file system: mkfs.ext4: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small file system: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	bsize := uint64(st.Bsize)
	// Leave 4 % free as df counts it (available over used plus
	// available): under the 5 % reserve, enough for a small outbox and
	// its WAL. Filling moves blocks from available to used, so the sum
	// stays.
	fill := (st.Bavail - (st.Blocks-st.Bfree+st.Bavail)*4/100) * bsize
	f, err := os.Create(filepath.Join(mnt, "other-file"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for fill > 0 {
		n := min(fill, uint64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			t.Fatal(err)
		}
		fill -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if used := 100 - st.Bavail*100/(st.Blocks-st.Bfree+st.Bavail); used <= 100-minFreeDisk {
		t.Fatalf("the file system is %d %% used, want more than %d %%", used, 100-minFreeDisk)
	}
	t.Logf("%s: %d of %d blocks free (%d available to other users)", mnt, st.Bfree, st.Blocks, st.Bavail)
	return mnt
}

// TestNearlyFullDiskDeliversEverything runs the daemon with its data home
// on a small file system that another file fills past 95 %, against a
// healthy endpoint: the free-disk reserve may keep the outbox from
// growing, but never evicts an event before its first delivery attempt
// while the endpoint takes events. All 20 events arrive, no gap.
func TestNearlyFullDiskDeliversEverything(t *testing.T) {
	t.Parallel()
	mnt := smallFullDisk(t)
	home := filepath.Join(mnt, "home")
	e := newTestEnv(t)
	e.home = home
	e.setenv("DIFFLORE_HOME", home)
	e.useQuickWaits()
	ep := newEndpoint(t, always(answer{status: 200}))
	e.startDaemon("--endpoint", ep.URL)
	const n = 20
	for i := range n {
		if _, stderr, code := e.cli(fmt.Sprintf(`{"n":%d}`, i), "enqueue", "--id", fmt.Sprintf("full-%02d", i)); code != 0 {
			t.Fatalf("enqueue: exit %d: %s", code, stderr)
		}
	}
	// The acknowledgement after the endpoint's answer signals nothing a test can wait on.
	waitFor(t, 30*time.Second, "the outbox to be drained", func() bool {
		c := outboxCounts(t, home)
		return c.Pending == 0 && c.Inflight == 0
	})
	var got []wireEvent
	for _, req := range ep.requests() {
		got = append(got, req.batch.Events...)
	}
	events, gaps := gapsIn(t, got)
	c := outboxCounts(t, home)
	checkAccounting(t, n, int64(len(events)), c.Dead, gaps)
	if len(events) != n || len(gaps) != 0 {
		t.Errorf("delivered %d events and %d gaps, want all %d events and no gap", len(events), len(gaps), n)
	}
}
