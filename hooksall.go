package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// hooksInstallAll is 'hooks install --all': it wires every agent found on
// this machine, through the same installer 'hooks install AGENT' runs, and
// says which it wired and which it skipped, and why. An agent that fails
// does not stop the others; the command fails when one did.
func hooksInstallAll(cfg config, opts hookOptions, dryRun bool) error {
	opts.all = false
	wired, err := hooksEachAgent(cfg, "install", opts, dryRun, func(a agentSpec) (bool, string) {
		found, why := a.found(cfg.getenv)
		if found {
			fmt.Fprintf(cfg.stdout, "%s: found (%s)\n", a.name, why)
		}
		return found, why
	})
	switch {
	case wired == nil && err == nil:
		fmt.Fprintln(cfg.stdout, "no agent found on this machine; nothing installed")
	case len(wired) > 0 && !dryRun:
		fmt.Fprintf(cfg.stdout, "wired: %s\n", strings.Join(wired, ", "))
		if !opts.autostart {
			// Without --ensure-daemon the hooks only queue: say so here,
			// not when status finds the outbox growing.
			fmt.Fprintln(cfg.stdout, "the hooks queue events; a daemon delivers them: run 'difflore run --detach' or 'difflore service install', or install again with --autostart")
		}
	}
	return err
}

// hooksPrintAll is 'hooks print --all': every agent's hooks, each after a
// line "# AGENT: DISPLAY" on standard output, so that one can be cut out.
// An agent whose print fails does not stop the others; the command fails
// when one did.
func hooksPrintAll(cfg config, opts hookOptions) error {
	var failed []string
	for _, a := range agents {
		fmt.Fprintf(cfg.stdout, "# %s: %s\n", a.name, a.display)
		if err := hooksDo(cfg, "print", a, opts, "", false); err != nil {
			fmt.Fprintf(cfg.stderr, "difflore: %s: %v\n", a.name, err)
			failed = append(failed, a.name)
		}
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("could not print %s", strings.Join(failed, ", ")),
			hint: "run 'difflore hooks print AGENT' for each to see why"}
	}
	return nil
}

// hooksUninstallAll is 'hooks uninstall --all': it gives back the files of
// every agent whose hooks (or plugin) status finds wired, through each
// agent's own uninstaller, and names the others as skipped.
func hooksUninstallAll(cfg config, dryRun bool) error {
	unwired, err := hooksEachAgent(cfg, "uninstall", hookOptions{}, dryRun, func(a agentSpec) (bool, string) {
		line, _, _ := a.status(cfg, "")
		return strings.HasPrefix(line, "wired"), "not wired"
	})
	switch {
	case unwired == nil && err == nil:
		fmt.Fprintln(cfg.stdout, "no agent is wired; nothing changed")
	case len(unwired) > 0 && !dryRun:
		fmt.Fprintf(cfg.stdout, "unwired: %s\n", strings.Join(unwired, ", "))
	}
	return err
}

// hooksEachAgent runs the hooks subcommand sub for every agent that take
// picks, naming each one it passes over with take's reason, and returns
// the agents it was done for. An agent that fails does not stop the
// others; the error names every one that failed.
func hooksEachAgent(cfg config, sub string, opts hookOptions, dryRun bool, take func(agentSpec) (bool, string)) ([]string, error) {
	var done, failed []string
	for _, a := range agents {
		if ok, why := take(a); !ok {
			fmt.Fprintf(cfg.stdout, "skipped %s: %s\n", a.name, why)
			continue
		}
		if err := hooksDo(cfg, sub, a, opts, "", dryRun); err != nil {
			fmt.Fprintf(cfg.stderr, "difflore: %s: %v\n", a.name, err)
			failed = append(failed, a.name)
			continue
		}
		done = append(done, a.name)
	}
	if len(failed) > 0 {
		verb := map[string]string{"install": "wire", "uninstall": "unwire"}[sub]
		return done, &exitError{code: 1, err: fmt.Errorf("could not %s %s", verb, strings.Join(failed, ", ")),
			hint: "run 'difflore hooks " + sub + " AGENT' for each to see why"}
	}
	return done, nil
}

// found reports whether the agent is on this machine, and why it was
// taken to be, or not: one of its programs is on PATH, or the folder of
// its settings exists (an agent installed outside PATH, as desktop
// applications are, has made it on its first run).
func (a agentSpec) found(getenv func(string) string) (bool, string) {
	if a.userDir == nil {
		// Kiro's hooks are per workspace: which workspaces is the
		// user's to say, not a folder's presence to guess.
		return false, "its hooks are per workspace: run 'difflore hooks install --project DIR " + a.name + "' in each"
	}
	for _, b := range a.binaries {
		if p, err := exec.LookPath(b); err == nil {
			return true, p + " is on PATH"
		}
	}
	userHome, err := userHomeDir(getenv)
	if err != nil {
		return false, "no home folder"
	}
	var dirs []string
	for _, d := range a.configDirs(getenv, userHome) {
		if dirExists(d) {
			return true, d + " exists"
		}
		dirs = append(dirs, d)
	}
	return false, fmt.Sprintf("no %s on PATH, no %s", strings.Join(a.binaries, " or "), strings.Join(dirs, " or "))
}

// configDirs are the folders whose presence says the agent has run here:
// the folder of its user settings, or the agent's own folder when that is
// a hooks/ folder difflore makes (Copilot CLI's).
func (a agentSpec) configDirs(getenv func(string) string, userHome string) []string {
	d := a.userDir(getenv, userHome)
	if filepath.Base(d) == "hooks" {
		d = filepath.Dir(d)
	}
	return []string{d}
}
