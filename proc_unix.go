//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// stopContext is cancelled when the daemon is asked to stop: SIGTERM (what
// 'difflore stop', systemd and launchd send), SIGINT (Ctrl-C) or SIGHUP (its
// terminal went away).
func stopContext(ctx context.Context, _ home) (context.Context, context.CancelFunc, error) {
	ctx, cancel := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return ctx, cancel, nil
}

// requestStop asks the daemon to stop gracefully.
func (p *proc) requestStop(home) error { return p.signal(unix.SIGTERM) }

// kill ends the process at once.
func (p *proc) kill() error { return p.signal(unix.SIGKILL) }

// startDetachedProcess starts cmd in a session of its own, so that the
// daemon outlives the terminal and the shell that started it.
func startDetachedProcess(cmd *exec.Cmd) (*exec.Cmd, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, cmd.Start()
}

// redirectStdio points standard output and error at f, so that the detached
// daemon stops writing to the pipe of the process that started it.
func redirectStdio(f *os.File) error {
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("dup2: %w", err)
		}
	}
	return nil
}

// openShared is os.OpenFile: on Unix an open file may always be renamed or
// removed. (Windows needs a share mode for that.)
func openShared(path string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag, perm)
}

// checkPrivate refuses a data home that someone else could have written
// to, as ssh does for ~/.ssh: one owned by another user, one that group or
// others may write (a sticky bit, as on /tmp, keeps them from removing
// files of ours, not from adding their own), or one that holds, under one
// of names, a file or folder of another user, planted before the home was
// private: an outbox of theirs would let them read every event.
func checkPrivate(dir string, fi fs.FileInfo, names []string) error {
	if err := checkOwner(fi); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		mode := uint32(fi.Mode().Perm())
		if fi.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		return fmt.Errorf("it is writable by others (mode %04o); refusing it", mode)
	}
	for _, name := range names {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			continue // Not there; or the open that needs it will say why.
		}
		if err := checkOwner(fi); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if fi.IsDir() && fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s: it is writable by others (mode %04o); refusing it", name, fi.Mode().Perm())
		}
	}
	return nil
}

// fileID identifies the file fi describes for as long as it exists: its
// device and inode.
func fileID(_ string, fi fs.FileInfo) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("stat %s: %w", fi.Name(), errors.ErrUnsupported)
	}
	return fmt.Sprintf("%x:%x", uint64(st.Dev), uint64(st.Ino)), nil
}

// checkOwner refuses a file or folder owned by another user.
func checkOwner(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not by you (uid %d); refusing it", st.Uid, uid)
	}
	return nil
}
