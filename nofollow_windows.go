package main

import "zombiezen.com/go/sqlite"

// oNoFollow is 0 on Windows: os.OpenFile has no such flag there, and
// creating a symlink needs a privilege (or Developer Mode) that Unix does
// not ask for.
const oNoFollow = 0

// sqliteNoFollow is 0 on Windows, for the same reason.
const sqliteNoFollow = sqlite.OpenFlags(0)

// oNonBlock is 0 on Windows: no file in the data home can be a FIFO there.
const oNonBlock = 0
