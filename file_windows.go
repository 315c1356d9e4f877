package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
	"zombiezen.com/go/sqlite"
)

// oNoFollow is 0 on Windows: os.OpenFile has no such flag there, and
// creating a symlink needs a privilege (or Developer Mode) that Unix does
// not ask for.
const oNoFollow = 0

// oNonBlock is 0 on Windows, where a named pipe lives in its own namespace
// (\\.\pipe\) and cannot stand in a folder in place of a file.
const oNonBlock = 0

// sqliteNoFollow is 0 on Windows, for the same reason as oNoFollow.
const sqliteNoFollow = sqlite.OpenFlags(0)

// openShared opens a file as os.OpenFile does, for reading (os.O_RDONLY) or
// appending (os.O_WRONLY|os.O_APPEND|os.O_CREATE), and lets other processes
// rename and delete it while it is open, as Unix does. os.OpenFile does not
// share delete access, so a log held open by the daemon, by 'logs -f' or by
// a detached daemon's standard output could never be rotated, and a PID file
// being read could not be replaced or removed.
func openShared(path string, flag int, perm fs.FileMode) (*os.File, error) {
	var access, disposition uint32
	switch flag {
	case os.O_RDONLY:
		access, disposition = windows.GENERIC_READ, windows.OPEN_EXISTING
	case os.O_WRONLY | os.O_APPEND | os.O_CREATE:
		// Append data without write data: every write goes to the end,
		// as O_APPEND does.
		access = windows.FILE_APPEND_DATA | windows.FILE_WRITE_ATTRIBUTES | windows.FILE_WRITE_EA |
			windows.FILE_READ_ATTRIBUTES | windows.STANDARD_RIGHTS_WRITE | windows.SYNCHRONIZE
		disposition = windows.OPEN_ALWAYS
	default:
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("flags %#x: %w", flag, errors.ErrUnsupported)}
	}
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if perm&0o200 == 0 && disposition == windows.OPEN_ALWAYS {
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	const share = windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE
	h, err := windows.CreateFile(name, access, share, nil, disposition, attrs, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// fileID identifies the file fi describes, which is at path, for as long
// as it exists: the serial number of its volume and its file index, which
// os.SameFile compares too. A FileInfo does not show them, so the file is
// opened again (closing that handle leaves a LockFileEx lock held through
// another handle alone) and checked to be the same file.
func fileID(path string, fi fs.FileInfo) (string, error) {
	f, err := openShared(path, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var d windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &d); err != nil {
		return "", fmt.Errorf("file information of %s: %w", path, err)
	}
	now, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !os.SameFile(fi, now) {
		return "", fmt.Errorf("%s was replaced while it was looked at", path)
	}
	return fmt.Sprintf("%x:%x", d.VolumeSerialNumber, uint64(d.FileIndexHigh)<<32|uint64(d.FileIndexLow)), nil
}

// checkPrivate does nothing on Windows, and difflore neither reads nor
// changes a home's ACL: there, a folder's ACL, not its owner or its mode
// bits (which Go reports as 0777 for every folder), says who may write it.
// The default home, under %USERPROFILE%, inherits the profile's ACL, which
// keeps other users out; a DIFFLORE_HOME elsewhere is trusted as it is.
func checkPrivate(string, fs.FileInfo, []string) error { return nil }

// checkAncestors is a no-op on Windows: a user's profile folder, where the
// default home lives, is closed to other users by its ACL.
func checkAncestors(string) (string, error) { return "", nil }

// checkOwner is a no-op on Windows, where the profile folder's ACL already
// keeps other users out.
func checkOwner(fs.FileInfo) error { return nil }

// checkSecretMode does nothing on Windows, where Go derives a file's mode
// bits from its read-only attribute alone: the file's ACL, inherited from
// the profile folder for the default home, says who may read it.
func checkSecretMode(fs.FileInfo) error { return nil }
