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

// Some agents read no settings file of hooks but one file per hook, in a
// folder of their own: Cline runs the executable named after the event
// (hookscline.go), Kiro reads each .kiro.hook file (hookskiro.go). For
// them difflore writes one file of its own per event there, and uninstall
// removes those files and the folders install made, and nothing else. A
// file of that name that is not difflore's is the user's own hook: it is
// left as it is, and the event is not wired.

// eventFiles is what differs between such agents.
type eventFiles struct {
	// name is the file name of the hook for event.
	name func(event string) string
	// content is difflore's file for event, running program.
	content func(a agentSpec, program, event string, autostart bool) []byte
	// commands are the hook commands a file of difflore's holds, for
	// status to read the program back.
	commands func(data []byte) []string
	// mode is the file's mode; an executable's is checked by status.
	mode fs.FileMode
	// perProject: the agent reads hooks from a workspace only, so
	// install, uninstall and status need --project.
	perProject bool
}

// eventFilesInstaller is the hookInstaller of an agent with eventFiles.
func eventFilesInstaller() *hookInstaller {
	return &hookInstaller{print: eventFilesPrint, install: eventFilesInstall, uninstall: eventFilesUninstall, status: eventFilesStatus}
}

func eventFilesPrint(cfg config, a agentSpec, opts hookOptions) error {
	prog, err := opts.program(a)
	if err != nil {
		return err
	}
	dir := filepath.Join(a.projectDir, a.file)
	if !a.files.perProject {
		if dir, err = a.settingsPath(cfg.getenv, ""); err != nil {
			dir = filepath.Join("~", filepath.Base(a.projectDir), a.file)
		}
	}
	fmt.Fprintf(cfg.stderr, "difflore: %s hooks: one file per event in %s (or run 'difflore hooks install %s%s')\n", a.name, dir, a.projectFlag(), a.name)
	for _, ev := range a.events {
		fmt.Fprintf(cfg.stdout, "# %s\n%s\n", filepath.Join(dir, a.files.name(ev)), a.files.content(a, prog, ev, opts.autostart))
	}
	return nil
}

// projectFlag is what 'hooks install' needs before the agent's name in a
// hint: --project for an agent whose hooks are per workspace.
func (a agentSpec) projectFlag() string {
	if a.files != nil && a.files.perProject {
		return "--project DIR "
	}
	return ""
}

// eventDir is the folder an agent's hook files are in; an agent whose
// hooks are per workspace needs project.
func eventDir(cfg config, a agentSpec, project string) (string, error) {
	if a.files.perProject && project == "" {
		return "", &exitError{code: 2, err: fmt.Errorf("%s reads hooks from a workspace only: give its folder with --project", a.display),
			hint: "difflore hooks install --project . " + a.name}
	}
	return a.settingsPath(cfg.getenv, project)
}

// eventFile is one event's file as install finds it.
type eventFile struct {
	path   string
	data   []byte
	exists bool
}

func readEventFile(a agentSpec, dir, event string) (eventFile, error) {
	f := eventFile{path: filepath.Join(dir, a.files.name(event))}
	data, err := os.ReadFile(f.path)
	switch {
	case err == nil:
		f.data, f.exists = data, true
	case !errors.Is(err, fs.ErrNotExist):
		return f, err
	}
	return f, nil
}

func eventFilesInstall(cfg config, a agentSpec, opts hookOptions, project string, dryRun bool) error {
	prog, err := opts.program(a)
	if err != nil {
		return err
	}
	dir, err := eventDir(cfg, a, project)
	if err != nil {
		return err
	}
	made := missingDirs(dir)
	wrote := 0
	var theirs []string
	for _, ev := range a.events {
		f, err := readEventFile(a, dir, ev)
		if err != nil {
			return err
		}
		want := a.files.content(a, prog, ev, opts.autostart)
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
		if err := writeEventFile(cfg, f, want, a.files.mode, made); err != nil {
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
		fmt.Fprintf(cfg.stderr, "difflore: warning: %s is a hook of your own, so %s is not wired\n", filepath.Join(dir, a.files.name(ev)), ev)
	}
	return nil
}

// writeEventFile writes one event's file, keeping a copy of the one
// it replaces (an older difflore's) in the data home, and records the
// folders it made, deepest first, for uninstall to remove.
func writeEventFile(cfg config, f eventFile, data []byte, mode fs.FileMode, made []string) error {
	if f.exists {
		if _, err := saveBackup(cfg, f.path, f.data, time.Now()); err != nil {
			return fmt.Errorf("back up %s: %w", f.path, err)
		}
	}
	dir := filepath.Dir(f.path)
	if len(made) > 0 {
		if err := noteEventDirs(cfg, dir, made); err != nil {
			return fmt.Errorf("record %s for uninstall: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeFileAtomicMode(f.path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// noteEventDirs records, in the data home, the folders install made for
// the agent's hooks folder dir, so that uninstall removes them again.
func noteEventDirs(cfg config, dir string, made []string) error {
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

func eventFilesUninstall(cfg config, a agentSpec, project string, dryRun bool) error {
	dir, err := eventDir(cfg, a, project)
	if err != nil {
		return err
	}
	removed := 0
	for _, ev := range a.events {
		f, err := readEventFile(a, dir, ev)
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

func eventFilesStatus(cfg config, a agentSpec, project string) (string, bool, string) {
	if a.files.perProject && project == "" {
		return "per workspace: run 'difflore hooks status --project DIR " + a.name + "'", true, ""
	}
	dir, err := a.settingsPath(cfg.getenv, project)
	if err != nil {
		return err.Error(), false, ""
	}
	var events, programs, notExec []string
	for _, ev := range a.events {
		f, err := readEventFile(a, dir, ev)
		if err != nil {
			return "cannot read " + f.path + ": " + err.Error(), false, ""
		}
		if !f.exists || !a.isOurs(string(f.data)) {
			continue
		}
		events = append(events, ev)
		if fi, err := os.Stat(f.path); err == nil && a.files.mode&0o111 != 0 && fi.Mode()&0o111 == 0 && runtime.GOOS != "windows" {
			notExec = append(notExec, ev)
		}
		for _, cmd := range a.files.commands(f.data) {
			if p := commandProgram(cmd); p != "" && !slices.Contains(programs, p) {
				programs = append(programs, p)
			}
		}
	}
	if len(events) == 0 {
		return "not wired (no hook file of difflore's in " + dir + ")", true, ""
	}
	install := "difflore hooks install " + a.projectFlag() + a.name
	line, ok := wiredLine(a, events, programs, dir)
	if len(notExec) > 0 {
		return line + "; not executable: " + strings.Join(notExec, ", "), false, "run '" + install + "' again"
	}
	if !ok {
		return line, false, "run '" + install + "' to point them at this difflore"
	}
	return line, true, ""
}
