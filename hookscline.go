package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Cline 3.0.65 has no hooks file: it runs, for each event, the executable
// named after the event in its hooks folder (~/.cline/hooks/TaskStart, …;
// .clinerules/hooks/ in a project), handing it the event's JSON on
// standard input. difflore's hook for an event is a small sh script there
// that runs 'difflore enqueue'. A file of that name that is not
// difflore's is the user's own hook: it is left as it is, and the event is
// not wired (an event has room for one executable only). On Windows the
// same script is written: Cline documents running hooks there through Git
// Bash or WSL; difflore has not seen it run there.

// clineInstaller is Cline's hookInstaller.
func clineInstaller() *hookInstaller {
	return &hookInstaller{print: clinePrint, install: clineInstall, uninstall: clineUninstall, status: clineStatus}
}

// clineScript is difflore's executable for event.
func clineScript(a agentSpec, program, event string, autostart bool) []byte {
	return []byte("#!/bin/sh\n# difflore: " + a.display + "'s " + event + " hook; 'difflore hooks uninstall " + a.name + "' removes it.\nexec " +
		a.hookCommand(program, event, autostart) + "\n")
}

func clinePrint(cfg config, a agentSpec, opts hookOptions) error {
	prog, err := opts.program(a)
	if err != nil {
		return err
	}
	dir, err := a.settingsPath(cfg.getenv, "")
	if err != nil {
		dir = filepath.Join("~", ".cline", "hooks")
	}
	fmt.Fprintf(cfg.stderr, "difflore: %s hooks: one executable file per event in %s (or run 'difflore hooks install %s')\n", a.name, dir, a.name)
	for _, ev := range a.events {
		fmt.Fprintf(cfg.stdout, "# %s\n%s\n", filepath.Join(dir, ev), clineScript(a, prog, ev, opts.autostart))
	}
	return nil
}

// clineFile is one event's executable as install finds it.
type clineFile struct {
	path   string
	data   []byte
	exists bool
}

func readClineFile(dir, event string) (clineFile, error) {
	f := clineFile{path: filepath.Join(dir, event)}
	data, err := os.ReadFile(f.path)
	switch {
	case err == nil:
		f.data, f.exists = data, true
	case !errors.Is(err, fs.ErrNotExist):
		return f, err
	}
	return f, nil
}

func clineInstall(cfg config, a agentSpec, opts hookOptions, project string, dryRun bool) error {
	prog, err := opts.program(a)
	if err != nil {
		return err
	}
	dir, err := a.settingsPath(cfg.getenv, project)
	if err != nil {
		return err
	}
	made := missingDirs(dir)
	wrote := 0
	var theirs []string
	for _, ev := range a.events {
		f, err := readClineFile(dir, ev)
		if err != nil {
			return err
		}
		want := clineScript(a, prog, ev, opts.autostart)
		switch {
		case f.exists && bytes.Equal(f.data, want):
			continue
		case f.exists && !a.isOurs(string(f.data)):
			theirs = append(theirs, ev)
			continue
		}
		wrote++
		if dryRun {
			old := f.path
			if !f.exists {
				old = "/dev/null"
			}
			fmt.Fprint(cfg.stdout, lineDiff(old, f.path, f.data, want))
			continue
		}
		if err := writeClineFile(cfg, f, want, made); err != nil {
			return err
		}
		made = nil // recorded once, with the first file
	}
	switch {
	case wrote == 0:
		fmt.Fprintf(cfg.stdout, "%s hooks already installed in %s; nothing changed\n", a.name, dir)
	case dryRun:
		fmt.Fprintf(cfg.stderr, "difflore: dry run: nothing was written in %s\n", dir)
	default:
		fmt.Fprintf(cfg.stdout, "installed %s in %s\n", plural(wrote, a.name+" hook"), dir)
	}
	for _, ev := range theirs {
		fmt.Fprintf(cfg.stderr, "difflore: warning: %s is a hook of your own; Cline runs one per event, so %s is not wired\n", filepath.Join(dir, ev), ev)
	}
	return nil
}

// writeClineFile writes one event's executable, keeping a copy of the one
// it replaces (an older difflore's) in the data home, and records the
// folders it made, deepest first, for uninstall to remove.
func writeClineFile(cfg config, f clineFile, data []byte, made []string) error {
	if f.exists {
		if _, err := saveBackup(cfg, f.path, f.data, time.Now()); err != nil {
			return fmt.Errorf("back up %s: %w", f.path, err)
		}
	}
	dir := filepath.Dir(f.path)
	if len(made) > 0 {
		if err := noteClineDirs(cfg, dir, made); err != nil {
			return fmt.Errorf("record %s for uninstall: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeFileAtomicMode(f.path, data, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// noteClineDirs records, in the data home, the folders install made for
// Cline's hooks folder dir, so that uninstall removes them again.
func noteClineDirs(cfg config, dir string, made []string) error {
	data, err := json.MarshalIndent(restoreRecord{Path: dir, Dirs: made}, "", "  ")
	if err != nil {
		return err
	}
	bd, err := openBackupDir(cfg, dir)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(bd, restoreFileName), data)
}

func clineUninstall(cfg config, a agentSpec, project string, dryRun bool) error {
	dir, err := a.settingsPath(cfg.getenv, project)
	if err != nil {
		return err
	}
	removed := 0
	for _, ev := range a.events {
		f, err := readClineFile(dir, ev)
		if err != nil {
			return err
		}
		if !f.exists || !a.isOurs(string(f.data)) {
			continue
		}
		removed++
		if dryRun {
			fmt.Fprint(cfg.stdout, lineDiff(f.path, "/dev/null", f.data, nil))
			continue
		}
		if _, err := saveBackup(cfg, f.path, f.data, time.Now()); err != nil {
			return fmt.Errorf("back up %s: %w", f.path, err)
		}
		if err := os.Remove(f.path); err != nil {
			return err
		}
	}
	switch {
	case removed == 0:
		fmt.Fprintf(cfg.stdout, "no difflore hooks in %s; nothing changed\n", dir)
	case dryRun:
		fmt.Fprintf(cfg.stderr, "difflore: dry run: nothing was removed from %s\n", dir)
	default:
		fmt.Fprintf(cfg.stdout, "removed %d %s hooks from %s\n", removed, a.name, dir)
	}
	if !dryRun {
		if rec := readRestoreRecord(cfg, dir); rec != nil {
			removeEmptyDirs(rec.Dirs)
			if !dirExists(dir) {
				dropRestoreRecord(cfg, dir)
			}
		}
	}
	return nil
}

func clineStatus(cfg config, a agentSpec, project string) (string, bool, string) {
	dir, err := a.settingsPath(cfg.getenv, project)
	if err != nil {
		return err.Error(), false, ""
	}
	var events, programs, notExec []string
	for _, ev := range a.events {
		f, err := readClineFile(dir, ev)
		if err != nil {
			return "cannot read " + f.path + ": " + err.Error(), false, ""
		}
		if !f.exists || !a.isOurs(string(f.data)) {
			continue
		}
		events = append(events, ev)
		if fi, err := os.Stat(f.path); err == nil && fi.Mode()&0o111 == 0 && runtime.GOOS != "windows" {
			notExec = append(notExec, ev)
		}
		for _, line := range strings.Split(string(f.data), "\n") {
			if cmd, ok := strings.CutPrefix(line, "exec "); ok {
				if p := commandProgram(cmd); p != "" && !slices.Contains(programs, p) {
					programs = append(programs, p)
				}
			}
		}
	}
	if len(events) == 0 {
		return "not wired (no hook script of difflore's in " + dir + ")", true, ""
	}
	line, ok := wiredLine(a, events, programs, dir)
	if len(notExec) > 0 {
		return line + "; not executable: " + strings.Join(notExec, ", "), false, "run 'difflore hooks install " + a.name + "' again"
	}
	if !ok {
		return line, false, "run 'difflore hooks install " + a.name + "' to point them at this difflore"
	}
	return line, true, ""
}
