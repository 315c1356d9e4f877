package main

import (
	"fmt"
	"net"
)

// sdNotify tells systemd about the daemon's state (READY=1, STOPPING=1) when
// systemd started it as a Type=notify service: it sends state as one
// datagram to the socket $NOTIFY_SOCKET names, and does nothing when that is
// unset. A name starting with '@' is an abstract socket; Go's net package
// turns the '@' into the leading NUL byte such names have in the kernel.
// The protocol is this one datagram, so it takes a few lines here rather
// than a dependency on the hook path.
func sdNotify(getenv func(string) string, state string) error {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
