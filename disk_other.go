//go:build !linux && !darwin && !freebsd && !openbsd && !netbsd && !windows

package main

// statDisk reports errNoDiskInfo on systems whose free space difflore does
// not read: there, max_size alone bounds the outbox.
func statDisk(dir string) (diskFigures, error) {
	return diskFigures{}, errNoDiskInfo
}
