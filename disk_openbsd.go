package main

import "golang.org/x/sys/unix"

// diskSpace is the space free for this user and the size of the file
// system that holds dir, in bytes.
func diskSpace(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return uint64(st.F_bavail) * uint64(st.F_bsize), st.F_blocks * uint64(st.F_bsize), nil
}
