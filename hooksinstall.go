package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tailscale/hujson"
)

// Installing merges difflore's hooks into an agent's settings file the way
// a careful person would by hand: every other key and hook stays, in its
// order; difflore's entries (recognised by their command, whatever path it
// names) are updated in place, so a second install changes no byte and an
// install after the binary moved replaces the old entries; the file is
// replaced atomically, keeping its mode, after a copy of it is saved beside
// it. A settings file that is a symlink, as dotfiles managers make them, is
// followed: the file it leads to is rewritten in place, so the link, and
// the user's dotfiles repository behind it, stay as they are.

// maxSettingsFile bounds what is read of a settings file; real ones are a
// few KiB.
const maxSettingsFile = 16 << 20

// merge adds the agent's hooks to doc, a settings file's top-level object,
// and returns warnings for the user. A difflore hook on an event difflore no
// longer wires is removed.
func (a agentSpec) merge(doc *jsonValue, program string, autostart bool) ([]string, error) {
	hooks := a.hooksObject(doc)
	if hooks == nil {
		hooks = newObject()
		doc.set("hooks", hooks)
	}
	if hooks.kind != '{' {
		return nil, errors.New(`"hooks" is not an object`)
	}
	var notes []string
	if (a.style == styleFlat || a.style == styleCopilot) && doc.get("version") == nil {
		doc.members = slices.Insert(doc.members, 0, jsonMember{key: "version", rawKey: []byte(`"version"`), value: jsonScalar(1)})
	}
	if a.name == "gemini" && geminiHooksOff(doc) {
		// hooksConfig.enabled is the user's switch for all their hooks
		// (Gemini CLI 0.61.0 defaults it to true): difflore wires its
		// hooks but leaves the switch as the user set it.
		notes = append(notes, geminiHooksOffNote)
	}
	a.removeHooks(hooks, func(event string) bool { return !slices.Contains(a.events, event) })
	for _, event := range a.events {
		if err := a.mergeEvent(hooks, event, a.hookCommand(program, event, autostart)); err != nil {
			return nil, err
		}
	}
	return notes, nil
}

// mergeEvent makes exactly one difflore hook run command on event: the
// first one found is updated in place, others are removed, and a new one
// is appended when there is none.
func (a agentSpec) mergeEvent(hooks *jsonValue, event, command string) error {
	list := hooks.get(event)
	if list == nil {
		list = newArray()
		hooks.set(event, list)
	}
	if list.kind != '[' {
		return fmt.Errorf("hooks.%s is not an array", event)
	}
	found := false
	keep := func(h *jsonValue) bool {
		if !a.isOurHook(h) {
			return true
		}
		if found {
			return false
		}
		found = true
		a.fillHook(h, command, event)
		return true
	}
	if a.style != styleGroups {
		list.elems = slices.DeleteFunc(list.elems, func(h *jsonValue) bool { return !keep(h) })
	} else {
		a.filterGroups(list, keep)
	}
	if found {
		return nil
	}
	h := newObject()
	a.fillHook(h, command, event)
	if a.style != styleGroups {
		list.elems = append(list.elems, h)
		return nil
	}
	g := newObject()
	g.set("hooks", newArray(h))
	list.elems = append(list.elems, g)
	return nil
}

// fillHook sets the fields of a difflore hook, leaving any other field a
// user added, and the text of those that already hold the right value.
func (a agentSpec) fillHook(h *jsonValue, command, event string) {
	timeout := a.timeout(event)
	setIfDiffers := func(key string, val *jsonValue) {
		if old := h.get(key); old == nil || !old.equal(val) {
			h.set(key, val)
		}
	}
	switch a.style {
	case styleGroups:
		setIfDiffers("type", jsonScalar("command"))
		setIfDiffers("command", jsonScalar(command))
		setIfDiffers("timeout", jsonScalar(timeout))
	case styleFlat:
		setIfDiffers("command", jsonScalar(command))
		setIfDiffers("timeout", jsonScalar(timeout))
	case styleCopilot:
		// Copilot CLI runs bash on Unix and PowerShell on Windows. The
		// program is written for this machine's shell (shellWord): a
		// plain path, or one single-quoted on Unix, which PowerShell
		// runs only through its call operator, &.
		setIfDiffers("type", jsonScalar("command"))
		setIfDiffers("bash", jsonScalar(command))
		setIfDiffers("powershell", jsonScalar("& "+command))
		setIfDiffers("timeoutSec", jsonScalar(timeout))
	case styleAugment:
		// Auggie runs command as a file, without a shell, with args as
		// its arguments: the script names the kind from its first one.
		// No timeout: Auggie 0.36's unit for it is not documented, and
		// its default stands.
		setIfDiffers("type", jsonScalar("command"))
		setIfDiffers("command", jsonScalar(command))
		args := newArray(jsonScalar(a.name + "." + event))
		if old := h.get("args"); old == nil || !old.equal(args) {
			h.set("args", args)
		}
	case styleWindsurf:
		// Windsurf hooks have no timeout; show_output false keeps the
		// hook out of Cascade's view (enqueue prints nothing anyway).
		setIfDiffers("command", jsonScalar(command))
		setIfDiffers("show_output", jsonScalar(false))
	}
}

func (a agentSpec) isOurHook(h *jsonValue) bool {
	cmd, ok := h.get(a.commandKey()).str()
	return ok && a.isOurs(cmd)
}

// hooksObject is the object of doc, a settings file's top-level object,
// whose keys are the events: its "hooks" member, or doc itself for an
// agent that keeps them at the top level; nil when there is none yet.
func (a agentSpec) hooksObject(doc *jsonValue) *jsonValue {
	if a.topLevel {
		return doc
	}
	return doc.get("hooks")
}

// eachHook calls fn for every hook entry of one event's list.
func (a agentSpec) eachHook(list *jsonValue, fn func(h *jsonValue)) {
	if list == nil || list.kind != '[' {
		return
	}
	for _, e := range list.elems {
		if a.style != styleGroups {
			fn(e)
			continue
		}
		if hs := e.get("hooks"); hs != nil && hs.kind == '[' {
			for _, h := range hs.elems {
				fn(h)
			}
		}
	}
}

// filterGroups keeps, in each group of an event's list, the hooks for
// which keep holds, and removes the groups this leaves empty. Codex keys a
// hook's trust by its group's index in the list: there, a group emptied
// before a group that stays is kept as {"hooks": []}, so that the user's
// hooks after it keep their index, and their trust.
func (a agentSpec) filterGroups(list *jsonValue, keep func(h *jsonValue) bool) {
	emptied := make([]bool, len(list.elems))
	for i, g := range list.elems {
		hs := g.get("hooks")
		if hs == nil || hs.kind != '[' || len(hs.elems) == 0 {
			continue
		}
		hs.elems = slices.DeleteFunc(hs.elems, func(h *jsonValue) bool { return !keep(h) })
		emptied[i] = len(hs.elems) == 0
	}
	end := len(list.elems)
	for end > 0 && emptied[end-1] {
		end--
	}
	var kept []*jsonValue
	for i, g := range list.elems {
		if !emptied[i] || (a.indexedTrust && i < end) {
			kept = append(kept, g)
		}
	}
	list.elems = kept
}

// removeHooks removes difflore's hooks from the events for which which
// holds, and the groups and event lists that held only them. It returns
// how many it removed.
func (a agentSpec) removeHooks(hooks *jsonValue, which func(event string) bool) int {
	removed := 0
	drop := func(h *jsonValue) bool {
		if a.isOurHook(h) {
			removed++
			return true
		}
		return false
	}
	hooks.members = slices.DeleteFunc(hooks.members, func(m jsonMember) bool {
		list := m.value
		if !which(m.key) || list.kind != '[' {
			return false
		}
		before := removed
		if a.style != styleGroups {
			list.elems = slices.DeleteFunc(list.elems, drop)
		} else {
			a.filterGroups(list, func(h *jsonValue) bool { return !drop(h) })
		}
		return removed > before && len(list.elems) == 0
	})
	return removed
}

// unmerge removes difflore's hooks from doc, and what install added around
// them when nothing else is left in it, so that the file returns to what
// it was. It returns how many hooks it removed.
func (a agentSpec) unmerge(doc *jsonValue) int {
	hooks := a.hooksObject(doc)
	if hooks == nil || hooks.kind != '{' {
		return 0
	}
	removed := a.removeHooks(hooks, func(string) bool { return true })
	if removed == 0 {
		return 0
	}
	if len(hooks.members) == 0 && !a.topLevel {
		doc.remove("hooks")
	}
	if a.style == styleFlat || a.style == styleCopilot {
		if len(doc.members) == 1 && doc.members[0].key == "version" {
			doc.remove("version")
		}
	}
	return removed
}

// settingsFile is an agent's settings file as read before a change.
type settingsFile struct {
	path   string // the path the agent reads
	target string // the file written: path, or where a symlink at path leads
	data   []byte
	exists bool
	mode   fs.FileMode
	info   fs.FileInfo // the file's as it was read, nil when it did not exist
	made   []string    // the folders write made for it, deepest first
}

func readSettings(path string) (*settingsFile, error) {
	f := &settingsFile{path: path, target: path, mode: 0o600}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, fmt.Errorf("%s is a symlink that leads nowhere: %w", path, err)
		}
		f.target = target
	}
	fi, err := os.Stat(f.target)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxSettingsFile {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a settings file", path, maxSettingsFile>>20)
	}
	f.info = fi
	if f.data, err = readSettingsData(f.target); err != nil {
		return nil, err
	}
	f.exists, f.mode = true, fi.Mode().Perm()
	return f, nil
}

// parse returns the file's top-level object; an empty or missing file is
// an empty object. Comments are allowed (parseJSONC). A file that is not a
// JSON object is refused: merging into a file that cannot be read would
// destroy it.
func (f *settingsFile) parse(agent string) (*jsonValue, error) {
	_, doc, err := f.parseTree(agent)
	return doc, err
}

// parseTree is parse, and the file as written, for patchJSONC; the tree is
// empty for an empty file.
func (f *settingsFile) parseTree(agent string) (hujson.Value, *jsonValue, error) {
	if len(bytes.TrimSpace(f.data)) == 0 {
		return hujson.Value{}, newObject(), nil
	}
	tree, doc, err := parseJSONC(f.data)
	if err == nil && doc.kind != '{' {
		err = errors.New("it is not a JSON object")
	}
	if err != nil {
		return hujson.Value{}, nil, &exitError{code: 1, err: fmt.Errorf("%s is not valid JSON, so it was left as it is: %w", f.path, err),
			hint: "mend the file, or merge the output of 'difflore hooks print " + agent + "' by hand"}
	}
	return tree, doc, nil
}

// readSettingsData reads a settings file, up to maxSettingsFile and a byte,
// without keeping the agent from renaming its own save over it meanwhile
// (which a plain read does on Windows).
func readSettingsData(path string) ([]byte, error) {
	f, err := openShared(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxSettingsFile+1))
}

// errSettingsChanged is write's error when the file changed since it was
// read.
var errSettingsChanged = errors.New("changed while difflore was editing it; nothing was written")

// write saves a copy of the file as it was in the data home (saveBackup;
// returning the copy's name, empty when there was no file) and replaces
// the file with data, making the folders it needs (f.made). It refuses,
// with errSettingsChanged, when the file changed since it was read, as
// when the agent saved its settings meanwhile: it reads the file again
// just before the rename, after the slow part (the new file written and
// synced), so that a save of the agent's is lost only if it lands in the
// microseconds between that read and the rename.
func (f *settingsFile) write(cfg config, data []byte, now time.Time, pause func(string)) (backup string, err error) {
	if !f.unchanged() {
		return "", fmt.Errorf("%s %w", f.path, errSettingsChanged)
	}
	if f.exists {
		if backup, err = saveBackup(cfg, f.target, f.data, now); err != nil {
			return "", fmt.Errorf("back up %s: %w", f.path, err)
		}
	}
	f.made = missingDirs(filepath.Dir(f.target))
	if err := os.MkdirAll(filepath.Dir(f.target), 0o700); err != nil {
		return "", err
	}
	err = writeFileAtomicWith(f.target, data, f.mode, func() error {
		if pause != nil {
			pause(stepSettingsWritten)
		}
		if !f.unchanged() {
			return fmt.Errorf("%s %w", f.path, errSettingsChanged)
		}
		if pause != nil {
			pause(stepSettingsChecked)
		}
		return nil
	}, f.replace)
	if err != nil {
		if backup != "" {
			os.Remove(backup)
		}
		if errors.Is(err, errSettingsChanged) {
			return "", err
		}
		return "", fmt.Errorf("write %s: %w", f.target, err)
	}
	return backup, nil
}

// commitEdit writes out, the edited text of f, for install (recording
// the file for uninstall: noteInstall) or for uninstall (giving the file
// back: planUninstall), or shows the difference on a dry run. empty says
// whether out holds nothing.
func (f *settingsFile) commitEdit(cfg config, out []byte, install, empty, dryRun bool) (backup string, err error) {
	if install {
		if dryRun {
			return "", f.showDiff(cfg, out, false)
		}
		if backup, err = f.write(cfg, out, time.Now(), cfg.settingsPause); err != nil {
			return "", err
		}
		if err := noteInstall(cfg, f, out, f.made); err != nil {
			return backup, fmt.Errorf("record %s for uninstall: %w", f.path, err)
		}
		return backup, nil
	}
	plan := planUninstall(readRestoreRecord(cfg, f.target), f, out, empty)
	if dryRun {
		return "", f.showDiff(cfg, plan.data, plan.remove)
	}
	return applyUninstall(cfg, f, plan)
}

// showDiff prints, for --dry-run, how the file would change to out, or be
// removed.
func (f *settingsFile) showDiff(cfg config, out []byte, remove bool) error {
	old, now := f.path, f.path
	if !f.exists {
		old = "/dev/null"
	}
	if remove {
		now, out = "/dev/null", nil
	}
	_, err := io.WriteString(cfg.stdout, lineDiff(old, now, f.data, out))
	return err
}

// replace puts tmp, the edited file, in place of the file the edit read.
// The check just before it leaves a moment of a system call or two in
// which the agent may still save its settings; a plain rename would then
// throw that save away. Where the system can (Linux), replace closes that
// moment: it swaps the two files in one step, which gives back the file
// it took out, and when that is not the one it read (the agent saved
// meanwhile), it swaps once more to put the agent's save back and reports
// errSettingsChanged, so that the edit is merged again into that save. A
// file that did not exist is created only if it still does not. Should
// the agent also save in the moment between the two swaps, on top of the
// edited file, that newer save is the one put back.
func (f *settingsFile) replace(tmp, path string) error {
	if !f.exists {
		err := renameNoReplace(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s %w", f.path, errSettingsChanged)
		}
		if !canSwapNot(err) {
			return err
		}
		return renameOver(tmp, path)
	}
	ours, err := os.Lstat(tmp)
	if err != nil {
		return err
	}
	if err := swapFiles(tmp, path); canSwapNot(err) {
		return renameOver(tmp, path)
	} else if err != nil {
		return err
	}
	out, err := os.Lstat(tmp)
	if err == nil && f.sameAsRead(out) {
		return nil // tmp now holds the file as read; the caller removes it.
	}
	if err := swapFiles(tmp, path); err != nil {
		return err
	}
	if back, err := os.Lstat(tmp); err == nil && !os.SameFile(back, ours) {
		// The agent saved again, on top of the edited file, between the
		// two swaps: that save, now in tmp, is its newest and goes back.
		if err := swapFiles(tmp, path); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s %w", f.path, errSettingsChanged)
}

// canSwapNot reports whether err says that the system or the file system
// has no swapping rename, so that a plain one must do.
func canSwapNot(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS)
}

// sameAsRead reports whether fi is the file as the edit read it: the same
// file, of the same size and time.
func (f *settingsFile) sameAsRead(fi fs.FileInfo) bool {
	return os.SameFile(fi, f.info) && fi.Size() == f.info.Size() && fi.ModTime().Equal(f.info.ModTime())
}

// unchanged reports whether the file is still as it was read: the same
// bytes, or still missing. The bytes are compared first; then, as the last
// thing, a single stat checks that it is still the same file, of the same
// size and time, which narrows the moment in which a save can slip in
// before the rename to that of one system call.
func (f *settingsFile) unchanged() bool {
	current, err := readSettingsData(f.target)
	if err != nil {
		return !f.exists && errors.Is(err, fs.ErrNotExist)
	}
	if !f.exists || !bytes.Equal(current, f.data) {
		return false
	}
	fi, err := os.Stat(f.target)
	return err == nil && f.sameAsRead(fi)
}

// stepSettingsWritten is the step of a settings edit after the new file
// is written beside the old one, before the old one is replaced.
const stepSettingsWritten = "written"

// stepSettingsChecked is the last step of a settings edit: the old file
// was found unchanged, and the new one is about to take its place.
const stepSettingsChecked = "checked"

// editSettings reads an agent's settings file, applies change to its
// top-level object and, when that changed anything, shows the difference
// (dry run) or writes the file. It returns whether the file changed and
// the backup's name.
func editSettings(cfg config, a agentSpec, path string, install, dryRun bool, change func(doc *jsonValue) error) (changed bool, backup string, err error) {
	// An agent that saved its settings meanwhile has the merge done again,
	// into what it saved, a bounded number of times.
	for range maxSettingsTries {
		changed, backup, err = editSettingsOnce(cfg, a, path, install, dryRun, change)
		if !errors.Is(err, errSettingsChanged) {
			return changed, backup, err
		}
	}
	return false, "", &exitError{code: 1, err: fmt.Errorf("%s kept changing while difflore was editing it (%d tries); nothing was written", path, maxSettingsTries),
		hint: "run the command again once the agent has saved its settings, or with the agent closed"}
}

// maxSettingsTries bounds how many times editSettings merges again into a
// settings file that changed under it.
const maxSettingsTries = 5

// editSettingsOnce is one try of editSettings.
func editSettingsOnce(cfg config, a agentSpec, path string, install, dryRun bool, change func(doc *jsonValue) error) (changed bool, backup string, err error) {
	f, err := readSettings(path)
	if err != nil {
		return false, "", err
	}
	tree, doc, err := f.parseTree(a.name)
	if err != nil {
		return false, "", err
	}
	before, _ := f.parse(a.name)
	if err := change(doc); err != nil {
		return false, "", &exitError{code: 1, err: fmt.Errorf("%s: %w; it was left as it is", path, err),
			hint: "merge the output of 'difflore hooks print " + a.name + "' by hand"}
	}
	if doc.equal(before) {
		return false, "", nil
	}
	out := encodeJSON(doc, detectIndent(f.data))
	if tree.Value != nil {
		patchJSONC(&tree, before, doc, detectIndent(f.data), 0)
		out = tree.Pack()
	}
	backup, err = f.commitEdit(cfg, out, install, emptyJSONObject(doc), dryRun)
	return true, backup, err
}

func hooksInstall(cfg config, a agentSpec, opts hookOptions, project string, dryRun bool) error {
	program, err := opts.program(a)
	if err != nil {
		return err
	}
	path, err := a.settingsPath(cfg.getenv, project)
	if err != nil {
		return err
	}
	difflore := program
	if a.script != "" {
		// The settings name the script, which runs difflore; it is
		// written after them, in the folder their write made (and
		// recorded for uninstall).
		program = filepath.Join(filepath.Dir(path), a.script)
	}
	var notes []string
	var merged *jsonValue
	changed, backup, err := editSettings(cfg, a, path, true, dryRun, func(doc *jsonValue) error {
		merged = doc
		notes, err = a.merge(doc, program, opts.autostart)
		return err
	})
	if err != nil {
		return err
	}
	if a.script != "" {
		wrote, err := writeAgentScript(cfg, a, program, difflore, opts.autostart, dryRun)
		if err != nil {
			return err
		}
		changed = changed || wrote
	}
	switch {
	case !changed:
		fmt.Fprintf(cfg.stdout, "%s hooks already installed in %s; nothing changed\n", a.name, path)
	case dryRun:
		fmt.Fprintf(cfg.stderr, "difflore: dry run: %s was not written\n", path)
	default:
		fmt.Fprintf(cfg.stdout, "installed %s in %s\n", plural(len(a.events), a.name+" hook"), path)
		if backup != "" {
			fmt.Fprintf(cfg.stdout, "the file as it was: %s\n", backup)
		}
	}
	for _, n := range notes {
		fmt.Fprintf(cfg.stderr, "difflore: warning: %s\n", n)
	}
	if opts.command != "" {
		if _, err := os.Stat(program); err != nil {
			fmt.Fprintf(cfg.stderr, "difflore: warning: the hooks run %s, which is not there (%v); every hook will fail until it is\n", program, errors.Unwrap(err))
		}
	}
	if opts.command == "" && strings.Contains(program, "go-build") {
		fmt.Fprintf(cfg.stderr, "difflore: warning: the hooks run %s, a temporary build that 'go run' deletes; install difflore ('go install .') and run this again\n", program)
	}
	if a.name == "codex" {
		if err := codexInstallTrust(cfg, a, path, project, merged, opts.trust, dryRun); err != nil {
			return err
		}
		if legacyNotify(filepath.Join(filepath.Dir(path), "config.toml")) {
			fmt.Fprintf(cfg.stderr, "difflore: note: %s still runs difflore as its notify program, as older releases set it up; remove that notify line, or Codex reports each turn twice\n", filepath.Join(filepath.Dir(path), "config.toml"))
		}
	}
	return nil
}

// legacyNotify reports whether a Codex config.toml runs difflore enqueue as
// its notify program, which 'hooks print codex' printed before Codex had
// hooks. The line is the user's to remove: difflore does not rewrite TOML.
func legacyNotify(configTOML string) bool {
	data, err := os.ReadFile(configTOML)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "notify") && strings.Contains(line, `"enqueue"`) {
			return true
		}
	}
	return false
}

func hooksUninstall(cfg config, a agentSpec, project string, dryRun bool) (err error) {
	path, err := a.settingsPath(cfg.getenv, project)
	if err != nil {
		return err
	}
	removed := 0
	var trust []codexTrust
	// Codex's config.toml shares the folder install made for hooks.json:
	// the folder goes once both are gone.
	var made []string
	if rec := readRestoreRecord(cfg, path); rec != nil && !rec.Existed {
		made = rec.Dirs
	}
	if a.script != "" {
		// First, so that the folder install made is empty again when
		// the settings file goes.
		if err := removeAgentScript(cfg, a, filepath.Join(filepath.Dir(path), a.script), dryRun); err != nil {
			return err
		}
	}
	changed, backup, err := editSettings(cfg, a, path, false, dryRun, func(doc *jsonValue) error {
		if a.name == "codex" {
			trust = a.codexTrustEntries(path, doc)
		}
		removed = a.unmerge(doc)
		return nil
	})
	if err != nil {
		return err
	}
	defer func() {
		if err == nil && len(trust) > 0 {
			err = codexUninstallTrust(cfg, trust, dryRun)
		}
		if err == nil && !dryRun {
			removeEmptyDirs(made)
		}
	}()
	switch {
	case !changed:
		fmt.Fprintf(cfg.stdout, "no difflore hooks in %s; nothing changed\n", path)
	case dryRun:
		fmt.Fprintf(cfg.stderr, "difflore: dry run: %s was not written\n", path)
	default:
		fmt.Fprintf(cfg.stdout, "removed %d %s hooks from %s\n", removed, a.name, path)
		if backup != "" {
			fmt.Fprintf(cfg.stdout, "the file as it was: %s\n", backup)
		}
	}
	return nil
}

// hooksStatus reports, for one agent or all, whether difflore's hooks are
// wired and whether the program they run exists. It fails when a settings
// file cannot be read or a hook runs a program that does not exist: every
// event of that agent is then lost.
func hooksStatus(cfg config, name, project string) error {
	list := agents
	if name != "" {
		a, err := findAgent(name)
		if err != nil {
			return err
		}
		list = []agentSpec{a}
	}
	var broken, hints []string
	for _, a := range list {
		line, ok, hint := a.status(cfg, project)
		fmt.Fprintf(cfg.stdout, "%-8s %s\n", a.name, line)
		if hooksWired(line) {
			fmt.Fprintf(cfg.stdout, "%-8s %s\n", "", a.versionTruth(a.installedVersion()))
		}
		if !ok {
			broken = append(broken, a.name)
			if hint != "" {
				hints = append(hints, a.name+": "+hint)
			}
		}
	}
	if len(broken) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("the hooks of %s cannot work", strings.Join(broken, ", ")),
			hint: strings.Join(hints, "\nhint: ")}
	}
	return nil
}

// status is one agent's line of 'hooks status', whether all is well and,
// when not, what to do about it.
func (a agentSpec) status(cfg config, project string) (string, bool, string) {
	if a.custom != nil {
		return a.custom.status(cfg, a, project)
	}
	path, err := a.settingsPath(cfg.getenv, project)
	if err != nil {
		return err.Error(), false, ""
	}
	f, err := readSettings(path)
	if err != nil {
		return "cannot read settings: " + err.Error(), false, ""
	}
	if !f.exists {
		return "not wired (" + path + " does not exist)", true, ""
	}
	doc, err := f.parse(a.name)
	if err != nil {
		return "cannot read settings: " + path + " is not valid JSON", false, "mend the file, or move it aside and run 'difflore hooks install " + a.name + "'"
	}
	events, programs := a.wiredEvents(doc)
	if len(events) == 0 {
		return "not wired (no difflore hooks in " + path + ")", true, ""
	}
	line, ok := wiredLine(a, events, programs, path)
	if a.name == "gemini" && geminiHooksOff(doc) {
		line += "; but hooksConfig.enabled is " + string(doc.get("hooksConfig").get("enabled").raw) + ", so Gemini CLI runs no hook"
		return line, false, "set hooksConfig.enabled to true in " + path + ", or remove it (true is the default)"
	}
	if !ok {
		return line, false, "run 'difflore hooks install " + a.name + "' to point them at this difflore"
	}
	if a.name == "codex" {
		return a.codexTrustStatus(cfg, line, path, project, doc)
	}
	return line, true, ""
}

// wiredLine says which of the agent's events are wired in path and which
// programs they run; ok is false when one of those does not exist.
func wiredLine(a agentSpec, events, programs []string, path string) (string, bool) {
	state := "wired"
	if len(events) < len(a.events) {
		state = "partly wired"
	}
	line := fmt.Sprintf("%s, %d of %s, in %s", state, len(events), plural(len(a.events), "event"), path)
	ok := true
	for _, p := range programs {
		if programExists(p) {
			line += "; runs " + p
		} else {
			line += "; runs " + p + ", which does not exist"
			ok = false
		}
	}
	return line, ok
}

// programExists reports whether a hook's program can be found: a path as
// it is, a bare name on PATH, as the agent's shell would look it up.
func programExists(p string) bool {
	if !strings.ContainsAny(p, `/\`) {
		_, err := exec.LookPath(p)
		return err == nil
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// geminiHooksOffNote tells how to switch Gemini CLI's hooks back on.
const geminiHooksOffNote = `Gemini CLI runs no hook, difflore's included, while hooksConfig.enabled is false in its settings: set it to true, or remove it (true is the default), for the hooks to run`

// geminiHooksOff reports whether a Gemini CLI settings file switches off
// every hook, with hooksConfig.enabled set to anything but true.
func geminiHooksOff(doc *jsonValue) bool {
	en := doc.get("hooksConfig").get("enabled")
	return en != nil && !en.isTrue()
}

// maxBackups is how many copies of one settings file the data home keeps.
const maxBackups = 5
