package main

import "golang.org/x/sys/unix"

// swapFiles exchanges the files at a and b in one step (renameat2 with
// RENAME_EXCHANGE, Linux 3.15): each name then holds what the other held,
// and nobody can see either name missing or catch a moment between two
// renames. It fails with EINVAL on a file system that cannot.
func swapFiles(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// renameNoReplace renames a to b unless b exists (RENAME_NOREPLACE), in
// which case it fails with EEXIST and changes nothing.
func renameNoReplace(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE)
}
