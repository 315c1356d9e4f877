package main

import "golang.org/x/sys/unix"

// diskSpace is the space free for this user and the size of the file
// system that holds dir, in bytes.
func diskSpace(dir string) (free, total uint64, err error) {
	var st unix.Statvfs_t
	if err := unix.Statvfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * st.Frsize, st.Blocks * st.Frsize, nil
}
