package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofrs/flock"
	"github.com/shirou/gopsutil/v4/process"
)

// The names of the files in the data home; DESIGN.md describes each.
const (
	pidFileName  = "daemon.pid"
	lockFileName = "daemon.pid.lock"
	dbFileName   = "outbox.db"
	logFileName  = "daemon.log"
	spillDirName = "spill"
)

// startTolerance is how far a process's create time may be from the
// started_at its PID file records and still count as the same process. Linux
// derives create times from the boot time, which drifts, so exact equality
// would reject a genuine daemon.
const startTolerance = 3 * time.Second

var (
	errNotRunning  = errors.New("not running")
	errNoPID       = errors.New("no pid")
	errNoExitWatch = errors.New("no exit notification on this system")
)

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
	entries := []string{dbFileName, dbFileName + "-wal", dbFileName + "-shm", spillDirName, pidFileName, lockFileName, logFileName}
	if err := checkPrivate(abs, fi, entries); err != nil {
		return home{}, &exitError{code: 1, err: fmt.Errorf("data home %q: %w", abs, err),
			hint: "point DIFFLORE_HOME at a folder that only you own and can write; a missing one is created with mode 0700"}
	}
	return home{dir: abs}, nil
}

// pidInfo is what the PID file says about the daemon that wrote it.
type pidInfo struct {
	PID       int       `json:"-"`
	StartedAt time.Time `json:"started_at"`
	Exe       string    `json:"exe"`
	Version   string    `json:"version"`
	Endpoint  string    `json:"endpoint,omitempty"`
	// Lock identifies the lock file the daemon holds (fileID): the PID
	// file is good only beside that file, not in a copy of the home.
	Lock string `json:"lock,omitempty"`
}

// parsePIDFile reads a PID file: line 1 the PID alone, line 2 (optional, as
// older versions wrote none) a JSON object. Anything that is not a decimal PID
// above 1 is an error, so that no caller can be talked into signalling
// process 0, 1, a negative PID (a process group) or garbage.
func parsePIDFile(data []byte) (pidInfo, error) {
	line, rest, _ := bytes.Cut(data, []byte("\n"))
	s := strings.TrimSpace(string(line))
	if s == "" {
		return pidInfo{}, fmt.Errorf("pid file is empty: %w", errNoPID)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return pidInfo{}, fmt.Errorf("pid file line 1 is %.20q, not a pid", s)
		}
	}
	pid, err := strconv.ParseInt(s, 10, 32)
	if err != nil || pid <= 1 {
		return pidInfo{}, fmt.Errorf("pid file holds %.20q, not a usable pid", s)
	}
	info := pidInfo{PID: int(pid)}
	if meta := bytes.TrimSpace(rest); len(meta) > 0 {
		if err := json.Unmarshal(meta, &info); err != nil {
			return pidInfo{}, fmt.Errorf("pid file line 2: %w", err)
		}
	}
	return info, nil
}

// formatPIDFile is the inverse of parsePIDFile.
func formatPIDFile(info pidInfo) []byte {
	meta, _ := json.Marshal(info)
	return fmt.Appendf(nil, "%d\n%s\n", info.PID, meta)
}

// readPIDFile reads and parses the PID file, refusing a symlink or a file of
// another user.
func readPIDFile(path string) (pidInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return pidInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		return pidInfo{}, fmt.Errorf("pid file %q is not a regular file; refusing it", path)
	}
	if err := checkOwner(fi); err != nil {
		return pidInfo{}, fmt.Errorf("pid file %q: %w", path, err)
	}
	data, err := readShared(path)
	if err != nil {
		return pidInfo{}, err
	}
	return parsePIDFile(data)
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
	return os.Rename(tmp, path)
}

// newLock returns the single-instance lock of a home. The lock file is never
// deleted: deleting it would let a second daemon lock a new file of the same
// name while the first still holds the old one. It is opened without
// waiting, so that a named pipe in its place cannot hang the open; tryLock
// refuses one.
func newLock(h home) *flock.Flock {
	return flock.New(h.path(lockFileName), flock.SetFlag(os.O_CREATE|os.O_RDWR|oNoFollow|oNonBlock), flock.SetPermissions(0o600))
}

// tryLock takes l if it is free, as l.TryLock does, but refuses a lock file
// that is not a regular file: difflore never makes one, and a lock on it
// would prove nothing.
func tryLock(l *flock.Flock) (bool, error) {
	ok, err := l.TryLock()
	if err != nil || !ok {
		return ok, err
	}
	fi, err := l.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(l.Path(), fi.Mode())
	}
	if err != nil {
		l.Unlock()
		return false, err
	}
	return true, nil
}

// lockHeld reports whether some process holds the home's lock. It takes the
// lock for an instant when it is free, so it must not be called by the holder.
func lockHeld(h home) (bool, error) {
	if _, err := os.Stat(h.path(lockFileName)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	l := newLock(h)
	ok, err := tryLock(l)
	if err != nil {
		return false, fmt.Errorf("probe lock: %w", err)
	}
	if ok {
		l.Unlock()
	}
	return !ok, nil
}

// lockFileID is the identity (fileID) of the lock file now in the home.
func lockFileID(h home) (string, error) {
	path := h.path(lockFileName)
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", notRegular(path, fi.Mode())
	}
	return fileID(path, fi)
}

// heldLockID is the identity (fileID) of the lock file that lock, which the
// caller holds, has open. It comes from the open file, not from its name,
// and the file is not opened again where an OS needs no second open:
// with fcntl locks (gofrs/flock's on some systems), closing any descriptor
// of the file would release the lock.
func heldLockID(lock *flock.Flock) (string, error) {
	fi, err := lock.Stat()
	if err != nil {
		return "", err
	}
	return fileID(lock.Path(), fi)
}

// verifyHolder checks that the daemon info describes is the one that holds
// this home's lock, as far as can be told without asking it: the PID file
// records the lock file now in the home (so it was not copied or moved here
// from another home, whose daemon it describes), and the process is the one
// it describes (verifyProcess). A PID file that records no lock file, as
// older versions wrote, cannot be verified.
func verifyHolder(h home, info pidInfo) error {
	if info.Lock == "" {
		return fmt.Errorf("pid file names pid %d but records no lock file (an older difflore wrote it), so it cannot be verified", info.PID)
	}
	id, err := lockFileID(h)
	if err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	if id != info.Lock {
		return fmt.Errorf("pid file names pid %d as the holder of another lock file than this home's (was it copied or moved here from another data home?)", info.PID)
	}
	return verifyProcess(info.PID, info)
}

// verifyProcess checks that pid is the process that info describes: alive,
// created when info says (within startTolerance), and running an executable
// of the same name. A PID file without a start time cannot be verified.
func verifyProcess(pid int, info pidInfo) error {
	if pid <= 1 || pid == os.Getpid() {
		return fmt.Errorf("pid %d is not one difflore may signal", pid)
	}
	if info.StartedAt.IsZero() || info.Exe == "" {
		return fmt.Errorf("pid file names pid %d but records no start time or executable, so it cannot be verified", pid)
	}
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, errNotRunning)
	}
	ms, err := p.CreateTime()
	if err != nil {
		return fmt.Errorf("pid %d: start time: %w", pid, err)
	}
	created := time.UnixMilli(ms)
	if d := created.Sub(info.StartedAt).Abs(); d > startTolerance {
		return fmt.Errorf("pid %d started at %s, not at %s as the pid file says: it is another process",
			pid, created.UTC().Format(time.RFC3339), info.StartedAt.UTC().Format(time.RFC3339))
	}
	name, err := p.Name()
	if err != nil {
		return fmt.Errorf("pid %d: name: %w", pid, err)
	}
	if !sameExeName(name, filepath.Base(info.Exe)) {
		return fmt.Errorf("pid %d runs %q, not %q: it is another process", pid, name, filepath.Base(info.Exe))
	}
	return nil
}

// sameExeName compares a process name with an executable's base name. Linux
// truncates process names to 15 bytes, and Windows names keep ".exe".
// Both are first coerced to UTF-8 as encoding/json does: the PID file
// stores the executable in JSON, which turns each invalid byte into U+FFFD,
// and the name the OS reports keeps them, so a daemon installed under a path
// that is not UTF-8 would otherwise never be recognised by stop.
func sameExeName(name, exe string) bool {
	name = strings.TrimSuffix(strings.ToLower(jsonUTF8(name)), ".exe")
	exe = strings.TrimSuffix(strings.ToLower(jsonUTF8(exe)), ".exe")
	return name == exe || (len(name) == 15 && strings.HasPrefix(exe, name))
}

// selfStartTime is this process's create time as the OS reports it, so that
// the PID file's started_at compares like with like in verifyProcess.
func selfStartTime() time.Time {
	if p, err := process.NewProcess(int32(os.Getpid())); err == nil {
		if ms, err := p.CreateTime(); err == nil {
			return time.UnixMilli(ms).UTC()
		}
	}
	return time.Now().UTC()
}

// jsonUTF8 replaces each byte of s that is not part of valid UTF-8 with
// U+FFFD, byte by byte, as encoding/json does when it writes a string.
func jsonUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // utf8.RuneError for an invalid byte, which is U+FFFD
		i += size
	}
	return b.String()
}
