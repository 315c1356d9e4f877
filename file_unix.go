//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"zombiezen.com/go/sqlite"
)

// oNoFollow makes opening a file fail when its last element is a symlink,
// so that difflore never writes through a symlink planted in its home.
const oNoFollow = syscall.O_NOFOLLOW

// oNonBlock makes opening a named pipe return at once instead of waiting
// for the other end: a FIFO planted in the home, under the name of the PID
// file or the log, would otherwise hang whoever opens it. It changes
// nothing for a regular file.
const oNonBlock = syscall.O_NONBLOCK

// sqliteNoFollow is SQLITE_OPEN_NOFOLLOW: SQLite refuses a database path
// that is a symlink.
const sqliteNoFollow = sqlite.OpenFlags(0x01000000)

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

// checkAncestors walks up from the data home's parent to the root, as ssh
// does for the folders above a key (StrictModes): each folder must be owned
// by root or by us, and group or others may write it only if it is sticky.
// A symlink on the way is checked where it leads too, after the folders
// that hold it. It costs an lstat per folder, on the path of every enqueue.
func checkAncestors(dir string) (string, error) {
	uid := os.Geteuid()
	symlinked := false
	walk := func(start string) (string, error) {
		for d := start; ; d = filepath.Dir(d) {
			fi, err := os.Lstat(d)
			if err != nil {
				return d, err
			}
			if fi.Mode()&fs.ModeSymlink != 0 {
				symlinked = true
			} else if err := checkAncestor(fi, uid); err != nil {
				return d, err
			}
			if filepath.Dir(d) == d {
				return "", nil
			}
		}
	}
	if d, err := walk(filepath.Dir(dir)); err != nil || !symlinked {
		return d, err
	}
	real, err := filepath.EvalSymlinks(filepath.Dir(dir))
	if err != nil {
		return filepath.Dir(dir), err
	}
	return walk(real)
}

// checkAncestor refuses a folder above the data home that a user other
// than root or uid could change.
func checkAncestor(fi fs.FileInfo, uid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Uid != 0 && int(st.Uid) != uid {
		return fmt.Errorf("it is owned by uid %d, neither you (uid %d) nor root; refusing it", st.Uid, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("mode %04o: %w", fi.Mode().Perm(), errWritableByOthers)
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

// checkSecretMode refuses a file holding a secret that group or others may
// read, as ssh refuses such a private key.
func checkSecretMode(fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("is readable by group or others (mode %04o); refusing it", fi.Mode().Perm())
	}
	return nil
}
