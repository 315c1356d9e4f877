package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofrs/flock"
	"github.com/shirou/gopsutil/v4/process"
)

// startTolerance is how far a process's create time may be from the
// started_at its PID file records and still count as the same process. Linux
// derives create times from the boot time, which drifts, so exact equality
// would reject a genuine daemon.
const startTolerance = 3 * time.Second

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
		return pidInfo{}, errors.New("pid file is empty: no pid")
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
// the PID file's started_at compares like with like in verifyProcess; to
// the tick on Linux (procStartLinux), where the OS's figure is up to a
// second early (it counts from the boot time in whole seconds), which
// startTolerance allows for and which status would otherwise show.
func selfStartTime() time.Time {
	// Only on Linux: under Wine, a Windows program reads Linux's /proc
	// through drive Z: and would take the Wine process's figures.
	if runtime.GOOS == "linux" {
		if t, ok := procStartLinux(time.Now, "/proc"); ok {
			return t
		}
	}
	if p, err := process.NewProcess(int32(os.Getpid())); err == nil {
		if ms, err := p.CreateTime(); err == nil {
			return time.UnixMilli(ms).UTC()
		}
	}
	return time.Now().UTC()
}

// procStartLinux is when this process started, from Linux's /proc under
// proc: the time now says right after the uptime is read (so that a pause
// between the two cannot make the start look early), less the time since,
// which is the system's uptime
// (/proc/uptime, to the hundredth of a second) less the uptime at which the
// process started (field 22 of /proc/self/stat, in clock ticks of 1/100 s:
// USER_HZ is 100 on every architecture Linux runs on). ok is false where
// there is no such /proc: another OS.
func procStartLinux(now func() time.Time, proc string) (time.Time, bool) {
	stat, err := os.ReadFile(filepath.Join(proc, "self", "stat"))
	if err != nil {
		return time.Time{}, false
	}
	up, err := os.ReadFile(filepath.Join(proc, "uptime"))
	at := now()
	if err != nil {
		return time.Time{}, false
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis, which is field 2.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return time.Time{}, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startField = 22 - 3 // fields[0] is field 3
	if len(fields) <= startField {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(fields[startField], 10, 64)
	upFields := strings.Fields(string(up))
	if err != nil || len(upFields) == 0 {
		return time.Time{}, false
	}
	uptime, err := strconv.ParseFloat(upFields[0], 64)
	if err != nil {
		return time.Time{}, false
	}
	// The uptime is written to the hundredth: counted in ticks, as the
	// start is, it is exact, where uptime*1e9 may fall a nanosecond short
	// of the start in the tick the process started in.
	since := time.Duration(int64(math.Round(uptime*100))-ticks) * 10 * time.Millisecond
	if since < 0 {
		return time.Time{}, false
	}
	return at.Add(-since).UTC(), true
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

// pidFileError is lockHolder's error when the PID file cannot be used at
// all, as opposed to one that names a process that is not the lock's holder.
type pidFileError struct{ err error }

func (e *pidFileError) Error() string { return "pid file: " + e.err.Error() }
func (e *pidFileError) Unwrap() error { return e.err }

// lockHolder answers which daemon holds the lock of h, as far as anyone can
// tell without asking it: it reads the PID file and checks that it describes
// the holder (verifyHolder). With open set it opens the process before the
// check and returns the handle, so that what is checked is what gets
// signalled, even if the PID is reused in between; the caller closes it.
// The PID file's contents are returned whenever it could be read, also when
// the check fails; a PID file that cannot be read is a *pidFileError.
func lockHolder(h home, open bool) (pidInfo, *proc, error) {
	info, err := readPIDFile(h.path(pidFileName))
	if err != nil {
		return pidInfo{}, nil, &pidFileError{err}
	}
	var p *proc
	if open {
		if p, err = openProc(info.PID); err != nil {
			return info, nil, err
		}
	}
	if err := verifyHolder(h, info); err != nil {
		if p != nil {
			p.close()
		}
		return info, nil, err
	}
	return info, p, nil
}

// clearIfStale takes the lock if it is free, and while holding it (so no
// daemon can start and write a new PID file in between) removes a PID file
// left by a daemon that died. done reports that the lock was free: no daemon
// runs, and msg says what was found.
func clearIfStale(h home) (msg string, done bool, err error) {
	lock := newLock(h)
	ok, err := tryLock(lock)
	if err != nil {
		return "", false, fmt.Errorf("probe lock: %w", err)
	}
	if !ok {
		return "", false, nil
	}
	defer lock.Unlock()
	pidPath := h.path(pidFileName)
	fi, err := os.Lstat(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "not running", true, nil
	}
	if err == nil && !fi.Mode().IsRegular() {
		// Not something a daemon left: difflore never makes one, so it
		// does not remove one either.
		return "", true, &exitError{code: 1, err: fmt.Errorf("pid file %w", notRegular(pidPath, fi.Mode())),
			hint: "no daemon runs; remove it by hand"}
	}
	who := "unreadable"
	if info, err := parsePIDFileAt(pidPath); err == nil {
		who = "pid " + strconv.Itoa(info.PID)
	}
	if err := os.Remove(pidPath); err != nil {
		return "", true, fmt.Errorf("remove stale pid file: %w", err)
	}
	return fmt.Sprintf("removed stale pid file (%s)", who), true, nil
}

// parsePIDFileAt reads a PID file for a message only: unlike readPIDFile it
// does not mind whose it is, since nothing is signalled on its strength.
func parsePIDFileAt(path string) (pidInfo, error) {
	data, err := readShared(path)
	if err != nil {
		return pidInfo{}, err
	}
	return parsePIDFile(data)
}

// writePIDFile publishes the PID file of this process, the daemon that
// holds lock, naming the lock file it holds and the endpoint s (nil for
// none).
func writePIDFile(h home, lock *flock.Flock, s sink) (pidInfo, error) {
	lockID, err := heldLockID(lock)
	if err != nil {
		return pidInfo{}, fmt.Errorf("lock: %w", err)
	}
	exe, _ := os.Executable()
	info := pidInfo{PID: os.Getpid(), StartedAt: selfStartTime(), Exe: exe, Version: buildVersion(), Lock: lockID}
	if s != nil {
		info.Endpoint = s.String()
	}
	pidPath := h.path(pidFileName)
	if fi, err := os.Lstat(pidPath); err == nil && !fi.Mode().IsRegular() {
		return pidInfo{}, fmt.Errorf("pid file %q is not a regular file; refusing to replace it", pidPath)
	}
	if err := writeFileAtomic(pidPath, formatPIDFile(info)); err != nil {
		return pidInfo{}, fmt.Errorf("write pid file: %w", err)
	}
	return info, nil
}

// sleepCtx sleeps for d or until ctx is done, and reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
