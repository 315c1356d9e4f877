package main

import "golang.org/x/sys/unix"

// statDisk reads the size and free space of the file system that holds
// dir (see diskFigures).
func statDisk(dir string) (diskFigures, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return diskFigures{}, err
	}
	// F_bavail goes below zero once root writes into its reserve.
	avail := uint64(max(st.F_bavail, 0))
	return diskFigures{total: st.F_blocks * uint64(st.F_bsize), free: st.F_bfree * uint64(st.F_bsize), avail: avail * uint64(st.F_bsize)}, nil
}
