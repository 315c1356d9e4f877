package main

import "golang.org/x/sys/unix"

// statDisk reads the size and free space of the file system that holds
// dir (see diskFigures).
func statDisk(dir string) (diskFigures, error) {
	var st unix.Statvfs_t
	if err := unix.Statvfs(dir, &st); err != nil {
		return diskFigures{}, err
	}
	return diskFigures{total: st.Blocks * st.Frsize, free: st.Bfree * st.Frsize, avail: st.Bavail * st.Frsize}, nil
}
