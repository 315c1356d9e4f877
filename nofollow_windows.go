package main

import "zombiezen.com/go/sqlite"

// oNoFollow is 0 on Windows: os.OpenFile has no such flag there, and
// creating a symlink needs a privilege (or Developer Mode) that Unix does
// not ask for.
const oNoFollow = 0

// oNonBlock is 0 on Windows, where a named pipe lives in its own namespace
// (\\.\pipe\) and cannot stand in a folder in place of a file.
const oNonBlock = 0

// sqliteNoFollow is 0 on Windows, for the same reason as oNoFollow.
const sqliteNoFollow = sqlite.OpenFlags(0)
