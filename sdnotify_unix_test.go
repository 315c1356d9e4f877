//go:build unix

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSystemdNotify runs a daemon as systemd would run a Type=notify
// service, with NOTIFY_SOCKET naming a datagram socket the test listens
// on: the daemon says READY=1 once it holds the lock, and STOPPING=1 when
// it is asked to stop.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	sockets := map[string]string{"path": filepath.Join(t.TempDir(), "notify")}
	if runtime.GOOS == "linux" {
		// systemd names an abstract socket with a leading '@'.
		sockets["abstract"] = fmt.Sprintf("@difflore-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	}
	for name, addr := range sockets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			e.setenv("NOTIFY_SOCKET", addr)
			d, _ := e.spawnDaemon()

			if got := readNotice(t, conn); got != "READY=1" {
				t.Fatalf("first notice %q, want READY=1\n%s", got, d.log)
			}
			if state, pid, _ := e.statusOf(); state != "running" || pid != d.cmd.Process.Pid {
				t.Errorf("at READY=1, status says %s pid %d, want running pid %d", state, pid, d.cmd.Process.Pid)
			}
			if out := e.mustCLI("stop"); !strings.HasPrefix(out, "stopped") {
				t.Errorf("stop: %q", out)
			}
			if got := readNotice(t, conn); got != "STOPPING=1" {
				t.Errorf("notice at stop %q, want STOPPING=1", got)
			}
			d.wait(t, 20*time.Second)
		})
	}
}

// readNotice reads one datagram, failing the test after 30 s.
func readNotice(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notice: %v", err)
	}
	return strings.TrimSpace(string(buf[:n]))
}
