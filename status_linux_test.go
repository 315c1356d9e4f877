package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readOnlyHome makes the data home read-only in a way that binds even for
// root, who ignores permission bits: a read-only bind mount of the home onto
// itself, undone when the test ends. Without root, a home of mode 0500 with
// a lock file of mode 0400 does the same for the commands that look.
func readOnlyHome(t *testing.T, home string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(filepath.Join(home, lockFileName), 0o400); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(home, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(home, 0o700) })
		return
	}
	if err := syscall.Mount(home, home, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v (a read-only home needs a mount when running as root)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(home, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", home, err)
		}
	})
	if err := syscall.Mount("", home, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("remount read-only: %v", err)
	}
	if err := os.WriteFile(filepath.Join(home, "probe"), nil, 0o600); err == nil {
		t.Fatal("the home is still writable after the read-only remount")
	}
}

// TestStatusReadOnlyHome runs status on a data home that cannot be written:
// it cannot take the lock to see whether a daemon holds it, so the state is
// unknown, which LSB's status codes say with 4. Exit 1 means a stale PID
// file, which would tell a service manager something false.
func TestStatusReadOnlyHome(t *testing.T) {
	home := testHome(t)
	mustCLI(t, "enqueue", `{"n":1}`)
	h, err := openHome(home, false)
	if err != nil {
		t.Fatal(err)
	}
	l := newLock(h) // a lock file, as any daemon leaves behind
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Fatalf("lock: %v, %v", ok, err)
	}
	l.Unlock()
	readOnlyHome(t, home)
	for _, args := range [][]string{{"status"}, {"status", "--json"}} {
		out, errOut, code := runProc(t, command(t, args...), 30*time.Second)
		if code != 4 {
			t.Errorf("difflore %s on a read-only home: exit %d, want 4 (unknown)\nstdout: %s\nstderr: %s",
				strings.Join(args, " "), code, out, errOut)
		}
		if !strings.Contains(out, "unknown") {
			t.Errorf("difflore %s does not say the state is unknown:\n%s%s", strings.Join(args, " "), out, errOut)
		}
	}
}
