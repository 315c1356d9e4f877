package main

import "golang.org/x/sys/windows"

// statDisk reads the size and free space of the file system that holds
// dir (see diskFigures).
func statDisk(dir string) (diskFigures, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return diskFigures{}, err
	}
	// What Windows gives the caller already counts its quota, and keeps
	// no reserve for administrators: the volume's own free space would
	// only blur that.
	var f diskFigures
	var volumeFree uint64
	if err := windows.GetDiskFreeSpaceEx(p, &f.avail, &f.total, &volumeFree); err != nil {
		return diskFigures{}, err
	}
	f.free = f.avail
	return f, nil
}
