package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// An agent's settings file is given back by uninstall as it was before
// install, byte for byte, or removed when install created it. install
// keeps, in the data home and never beside the file (where 'git add .' or
// a dotfiles repository would pick it up), a record of the file: what it
// held before the first install, and what difflore wrote. While the file
// still holds what difflore wrote, uninstall writes back what it held
// before; when the agent or the user changed it since, uninstall takes
// difflore's hooks out of it as they are now, keeping the change, and
// removes the file if install created it and nothing else is left in it.
// Each write also keeps a copy of the file as it was, the last maxBackups
// of them per file.

// backupsDirName is the folder of the data home that holds the copies and
// records of agents' settings files, a folder per file.
const backupsDirName = "backups"

// restoreFileName is the record of a settings file, in its folder.
const restoreFileName = "restore.json"

// restoreRecord is what uninstall needs to give a settings file back.
type restoreRecord struct {
	Path    string      `json:"path"`    // the file, for a person reading the record
	Existed bool        `json:"existed"` // the file was there before the first install
	Mode    fs.FileMode `json:"mode"`    // its permissions then
	// Before is the file before the first install, valid while Exact is
	// set: an install over a file changed since the last one cannot tell
	// the user's change from difflore's hooks, and clears it.
	Before []byte `json:"before"`
	Exact  bool   `json:"exact"`
	After  []byte `json:"after"` // what difflore wrote last
	// Dirs are the folders install made for the file, deepest first,
	// removed again when empty.
	Dirs []string `json:"dirs,omitempty"`
}

// backupDir is the folder in the data home for the settings file at
// target: its name and a hash of its absolute path.
func backupDir(cfg config, target string) string {
	abs, err := filepath.Abs(target)
	if err != nil {
		abs = target
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(cfg.home, backupsDirName, filepath.Base(abs)+"-"+hex.EncodeToString(sum[:6]))
}

// readRestoreRecord reads the record of the settings file at target; nil
// when there is none or it cannot be read, and then uninstall edits the
// file as it finds it.
func readRestoreRecord(cfg config, target string) *restoreRecord {
	data, err := os.ReadFile(filepath.Join(backupDir(cfg, target), restoreFileName))
	if err != nil {
		return nil
	}
	var rec restoreRecord
	if json.Unmarshal(data, &rec) != nil {
		return nil
	}
	return &rec
}

// openBackupDir makes the folder for target's copies and record in the
// data home, which it makes too when needed (mode 0700).
func openBackupDir(cfg config, target string) (string, error) {
	if _, err := openHome(cfg.home, true); err != nil {
		return "", err
	}
	dir := backupDir(cfg, target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// saveBackup keeps a copy of data, the settings file at target as it was,
// in its folder of the data home, named for the time, and removes all but
// the last maxBackups copies. It returns the copy's name.
func saveBackup(cfg config, target string, data []byte, now time.Time) (string, error) {
	dir, err := openBackupDir(cfg, target)
	if err != nil {
		return "", err
	}
	name := filepath.Join(dir, now.UTC().Format("20060102T150405.000000000Z")+".bak")
	if err := writeFileAtomic(name, data); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.bak"))
	slices.Sort(old) // the names sort by time
	for len(old) > maxBackups {
		os.Remove(old[0])
		old = old[1:]
	}
	return name, nil
}

// noteInstall updates the record of the settings file f after install
// wrote out over it, having made the folders made.
func noteInstall(cfg config, f *settingsFile, out []byte, made []string) error {
	rec := readRestoreRecord(cfg, f.target)
	switch {
	case rec == nil:
		rec = &restoreRecord{Path: f.target, Existed: f.exists, Mode: f.mode, Before: f.data, Exact: true, Dirs: made}
	case !f.exists || !bytes.Equal(f.data, rec.After):
		// Changed since the last install: what it held before is no
		// longer known byte for byte; whether install created it is.
		rec.Before, rec.Exact = nil, false
	}
	rec.After = out
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	dir, err := openBackupDir(cfg, f.target)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, restoreFileName), data)
}

// dropRestoreRecord removes the record of target after uninstall.
func dropRestoreRecord(cfg config, target string) {
	os.Remove(filepath.Join(backupDir(cfg, target), restoreFileName))
}

// uninstallPlan is what uninstall does to a settings file: write data, or
// remove the file (and the empty folders install made for it).
type uninstallPlan struct {
	data   []byte
	mode   fs.FileMode
	remove bool
	dirs   []string
}

// planUninstall decides what uninstall writes to f, whose edited text is
// out (empty says whether out holds nothing but an empty object or
// document): what the file held before install when it still holds what
// install wrote, else out, or nothing when install created the file and
// out is empty.
func planUninstall(rec *restoreRecord, f *settingsFile, out []byte, empty bool) uninstallPlan {
	switch {
	case rec == nil:
		return uninstallPlan{data: out, mode: f.mode}
	case rec.Exact && f.exists && bytes.Equal(f.data, rec.After):
		if !rec.Existed {
			return uninstallPlan{remove: true, dirs: rec.Dirs}
		}
		return uninstallPlan{data: rec.Before, mode: rec.Mode}
	case !rec.Existed && empty:
		return uninstallPlan{remove: true, dirs: rec.Dirs}
	}
	return uninstallPlan{data: out, mode: f.mode}
}

// applyUninstall carries out p on f, refusing, as write does, when the
// file changed since it was read; it returns the copy kept of the file.
func applyUninstall(cfg config, f *settingsFile, p uninstallPlan) (string, error) {
	if !p.remove {
		f.mode = p.mode
		backup, err := f.write(cfg, p.data, time.Now(), cfg.settingsPause)
		if err == nil {
			dropRestoreRecord(cfg, f.target)
		}
		return backup, err
	}
	if !f.unchanged() {
		return "", fmt.Errorf("%s %w", f.path, errSettingsChanged)
	}
	backup, err := saveBackup(cfg, f.target, f.data, time.Now())
	if err != nil {
		return "", fmt.Errorf("back up %s: %w", f.path, err)
	}
	if err := os.Remove(f.target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	removeEmptyDirs(p.dirs)
	dropRestoreRecord(cfg, f.target)
	return backup, nil
}

// removeEmptyDirs removes the folders install made, deepest first, those
// that are empty: the agent may keep more there.
func removeEmptyDirs(dirs []string) {
	for _, d := range dirs {
		os.Remove(d)
	}
}

// missingDirs are the folders that do not exist on the way to dir, deepest
// first: those a MkdirAll of dir makes.
func missingDirs(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return out
		}
		out = append(out, d)
		if filepath.Dir(d) == d {
			return out
		}
	}
}

// emptyJSONObject reports whether text is a JSON object with no members.
func emptyJSONObject(doc *jsonValue) bool { return doc.kind == '{' && len(doc.members) == 0 }

// emptyTOML reports whether a TOML text holds nothing at all: a comment
// is the user's, and keeps the file.
func emptyTOML(text string) bool { return strings.TrimSpace(text) == "" }
