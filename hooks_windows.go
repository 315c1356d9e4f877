package main

import "golang.org/x/sys/windows"

// shortPathName returns the 8.3 short name of an existing path, which has
// no spaces: C:\Program Files\x → C:\PROGRA~1\x. A volume where short names
// are turned off returns the long name unchanged.
func shortPathName(path string) (string, error) {
	long, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return "", err
	}
	buf := make([]uint16, windows.MAX_PATH)
	for {
		n, err := windows.GetShortPathName(long, &buf[0], uint32(len(buf)))
		if err != nil {
			return "", err
		}
		if n <= uint32(len(buf)) {
			return windows.UTF16ToString(buf[:n]), nil
		}
		buf = make([]uint16, n) // n is the size needed, terminator included
	}
}
