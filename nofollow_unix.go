//go:build unix

package main

import (
	"syscall"

	"zombiezen.com/go/sqlite"
)

// oNoFollow makes opening a file fail when its last element is a symlink,
// so that difflore never writes through a symlink planted in its home.
const oNoFollow = syscall.O_NOFOLLOW

// sqliteNoFollow is SQLITE_OPEN_NOFOLLOW: SQLite refuses a database path
// that is a symlink.
const sqliteNoFollow = sqlite.OpenFlags(0x01000000)

// oNonBlock makes opening a FIFO return at once rather than wait for a
// writer; the caller then refuses what is not a regular file.
const oNonBlock = syscall.O_NONBLOCK
