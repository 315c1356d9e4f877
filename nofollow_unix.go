//go:build unix

package main

import (
	"syscall"

	"zombiezen.com/go/sqlite"
)

// oNoFollow makes opening a file fail when its last element is a symlink,
// so that difflore never writes through a symlink planted in its home.
const oNoFollow = syscall.O_NOFOLLOW

// oNonBlock makes opening a named pipe return at once instead of waiting
// for the other end: a FIFO planted in the home, under the name of the PID
// file or the log, would otherwise hang whoever opens it. It changes
// nothing for a regular file.
const oNonBlock = syscall.O_NONBLOCK

// sqliteNoFollow is SQLITE_OPEN_NOFOLLOW: SQLite refuses a database path
// that is a symlink.
const sqliteNoFollow = sqlite.OpenFlags(0x01000000)
