//go:build !linux && !darwin && !freebsd && !openbsd && !netbsd && !windows

package main

// diskSpace reports errNoDiskInfo on systems whose free space difflore does
// not read: there, max_size alone bounds the outbox.
func diskSpace(dir string) (free, total uint64, err error) {
	return 0, 0, errNoDiskInfo
}
