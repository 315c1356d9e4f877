//go:build linux || darwin || freebsd

package main

import "golang.org/x/sys/unix"

// statDisk reads the size and free space of the file system that holds
// dir (see diskFigures).
func statDisk(dir string) (diskFigures, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return diskFigures{}, err
	}
	// Bavail is signed on FreeBSD, and goes below zero once root writes
	// into its reserve.
	return diskFigures{total: uint64(st.Blocks) * uint64(st.Bsize), free: uint64(st.Bfree) * uint64(st.Bsize), avail: uint64(max(st.Bavail, 0)) * uint64(st.Bsize)}, nil
}
