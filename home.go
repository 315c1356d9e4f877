package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// The names of the files in the data home; the README's Files section
// describes each.
const (
	pidFileName  = "daemon.pid"
	lockFileName = "daemon.pid.lock"
	dbFileName   = "outbox.db"
	logFileName  = "daemon.log"
	spillDirName = "spill"
	gateFileName = "outbox.gate"
	idFileName   = "outbox.id"
)

// errWritableByOthers is checkAncestors' error for a folder that group or
// others may write, which its owner may mend with chmod.
var errWritableByOthers = errors.New("group or others may write it, and it is not sticky; refusing it")

// home is the data home: the folder that holds the outbox, the PID file, its
// lock, the log and the spill folder.
type home struct {
	dir string
}

func (h home) path(name string) string { return filepath.Join(h.dir, name) }

// openHome checks the data home and, when create is set, makes it, mode
// 0700, if it does not exist. A home that is a symlink, that another user
// may write, or that holds files of another user is refused (see
// checkPrivate): difflore keeps the events there, and writes PID files and
// signals processes on the strength of what it finds there. An existing
// folder is never chmodded: it may be shared, as /tmp is, and its mode is
// its owner's choice.
func openHome(dir string, create bool) (home, error) {
	if dir == "" {
		return home{}, errors.New("no data home: set DIFFLORE_HOME or HOME")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return home{}, fmt.Errorf("data home %q: %w", dir, err)
	}
	fi, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return home{}, fmt.Errorf("create data home: %w", err)
		}
		fi, err = os.Lstat(abs)
	}
	if err != nil {
		return home{}, fmt.Errorf("data home: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return home{}, fmt.Errorf("data home %q is a symlink; refusing to use it", abs)
	}
	if !fi.IsDir() {
		return home{}, fmt.Errorf("data home %q is not a directory", abs)
	}
	entries := []string{dbFileName, dbFileName + "-wal", dbFileName + "-shm", gateFileName, idFileName, spillDirName, pidFileName, lockFileName, logFileName}
	if err := checkPrivate(abs, fi, entries); err != nil {
		return home{}, &exitError{code: 1, err: fmt.Errorf("data home %q: %w", abs, err),
			hint: "point DIFFLORE_HOME at a folder that only you own and can write; a missing one is created with mode 0700"}
	}
	if folder, err := checkAncestors(abs); err != nil {
		hint := fmt.Sprintf("choose a DIFFLORE_HOME outside %q", folder)
		if errors.Is(err, errWritableByOthers) {
			hint = fmt.Sprintf("run 'chmod go-w %s' (or 'chmod +t' to make it sticky, as /tmp is), or %s", folder, hint)
		}
		return home{}, &exitError{code: 1, err: fmt.Errorf("data home %q: the folder %q above it: %w", abs, folder, err), hint: hint}
	}
	return home{dir: abs}, nil
}

// readShared reads a whole regular file without keeping anyone from
// replacing or removing it meanwhile: on Windows a plain os.ReadFile of the
// PID file, by 'status' say, would make the daemon's rename or removal of
// it fail.
func readShared(path string) ([]byte, error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A PID file is two short lines: a planted huge one is cut, not read
	// whole, and then fails to parse.
	return io.ReadAll(io.LimitReader(f, maxPIDFile))
}

// maxPIDFile bounds what is read of a PID file.
const maxPIDFile = 64 << 10

// openRegular opens a file of the data home as openShared does, and refuses
// anything but a regular file. A named pipe planted under the name of the
// PID file or the log would make a plain open wait for ever for its other
// end, and a symlink would lead out of the home: so the open neither waits
// (oNonBlock) nor follows a symlink (oNoFollow), and the file it opened is
// checked, not the name, so that nothing can be swapped in between.
func openRegular(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := openShared(path, flag|oNoFollow|oNonBlock, perm)
	if err != nil {
		// The open fails on some of them (ELOOP for a symlink, ENXIO for
		// a FIFO opened to write with no reader): say why in plain words.
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return nil, notRegular(path, fi.Mode())
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(path, fi.Mode())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// notRegular is the error for a file of the data home that is not a
// regular file.
func notRegular(path string, mode fs.FileMode) error {
	kind := "special file"
	switch mode.Type() {
	case fs.ModeNamedPipe:
		kind = "named pipe"
	case fs.ModeSocket:
		kind = "socket"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		kind = "device"
	case fs.ModeDir:
		kind = "folder"
	case fs.ModeSymlink:
		kind = "symlink"
	}
	return fmt.Errorf("%q is a %s, not a regular file; refusing it", path, kind)
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path. Renaming replaces a symlink at path rather than
// writing through it.
func writeFileAtomic(path string, data []byte) error {
	return writeFileAtomicMode(path, data, 0o600)
}

// writeFileAtomicMode is writeFileAtomic for a file of the given mode.
func writeFileAtomicMode(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomicIf(path, data, mode, nil)
}

// writeFileAtomicIf is writeFileAtomicMode that calls check, when it is
// set, after the new file is written and synced and just before the rename,
// and writes nothing when check fails: the moment to check that no one else
// changed path meanwhile is the last one.
func writeFileAtomicIf(path string, data []byte, mode os.FileMode, check func() error) error {
	return writeFileAtomicWith(path, data, mode, check, renameOver)
}

// writeFileAtomicWith is writeFileAtomicIf that puts the new file, tmp, in
// place with replace instead of a rename.
func writeFileAtomicWith(path string, data []byte, mode os.FileMode, check func() error, replace func(tmp, path string) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // Fails harmlessly once the rename has happened.
	if err := f.Chmod(mode); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	return replace(tmp, path)
}

// The file primitives differ by OS. file_unix.go and file_windows.go define
// them under the same names, and what they promise is stated here, once:
//
//   - oNoFollow makes an open fail when the last element of the path is a
//     symlink, oNonBlock makes it not wait for the other end of a named
//     pipe, and sqliteNoFollow is oNoFollow for SQLite; each is 0 where the
//     OS has no such trap.
//   - openShared opens a file as os.OpenFile does and lets other processes
//     rename and remove it while it is open.
//   - fileID identifies a file for as long as it exists.
//   - checkOwner refuses a file or folder of another user, and checkPrivate
//     a data home that another user could have written to.
//   - checkAncestors refuses a data home below a folder that a user other
//     than its owner or root could change, and returns that folder: she
//     could rename a folder of the path away and put a symlink in its place
//     between the check of the home and the open of a file in it, which
//     oNoFollow does not see (it guards the last element only), and have
//     the events written to an outbox of hers. A folder that others may
//     write but that is sticky, as /tmp is, is safe: no one may rename
//     there what is not theirs. The error is errWritableByOthers for a
//     folder whose mode is to blame.

// renameOver renames tmp over path. On Windows a rename over a file that
// another process has open fails with access denied for as long as it
// holds it, unless it opened it sharing delete access, as difflore's own
// readers do (openShared) but Wine does not always honour: a command that
// reads the PID file for an instant (status, a losing run) then makes the
// daemon's write fail. So the rename is tried again for a bounded while.
func renameOver(tmp, path string) error {
	err := os.Rename(tmp, path)
	if runtime.GOOS != "windows" {
		return err
	}
	for wait := time.Millisecond; err != nil && errors.Is(err, fs.ErrPermission) && wait < time.Second; wait *= 2 {
		time.Sleep(wait)
		err = os.Rename(tmp, path)
	}
	return err
}

// userHomeDir is os.UserHomeDir read through getenv, so that a command
// sees the home folder of the environment it was given (a test's, never
// the real one) rather than the process's.
func userHomeDir(getenv func(string) string) (string, error) {
	key := "HOME"
	if runtime.GOOS == "windows" {
		key = "USERPROFILE"
	}
	if h := getenv(key); h != "" {
		return h, nil
	}
	return "", fmt.Errorf("$%s is not set", key)
}
