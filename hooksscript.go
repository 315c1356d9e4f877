package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Auggie 0.36 runs a hook's command as a file, without a shell, and the
// command must be a .sh path: its hooks all run one sh script of
// difflore's beside the settings file, which hands the event to
// 'difflore enqueue' under the kind its first argument names.

// agentScript is the script's text, running difflore, the program as
// written for a shell (shellWord).
func agentScript(a agentSpec, difflore string, autostart bool) []byte {
	c := "exec " + difflore + ` enqueue --kind "$1"`
	if autostart {
		c += " --ensure-daemon"
	}
	return []byte("#!/bin/sh\n# difflore: " + a.display + "'s hooks run this; 'difflore hooks uninstall " + a.name + "' removes it.\n" + c + "\n")
}

// isAgentScript reports whether data is a script agentScript wrote.
func isAgentScript(data []byte) bool {
	return bytes.HasPrefix(data, []byte("#!/bin/sh\n# difflore: ")) && bytes.Contains(data, []byte(` enqueue --kind "$1"`))
}

// writeAgentScript writes the script at path, executable, unless it holds
// that already; a file there that is not difflore's is refused. It
// reports whether it wrote (or, on a dry run, would write).
func writeAgentScript(cfg config, a agentSpec, path, difflore string, autostart, dryRun bool) (bool, error) {
	want := agentScript(a, difflore, autostart)
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, want):
		return false, nil
	case err == nil && !isAgentScript(old):
		return false, &exitError{code: 1, err: fmt.Errorf("%s is not difflore's script; it was left as it is", path),
			hint: "move it aside and run 'difflore hooks install " + a.name + "' again"}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	if dryRun {
		from := path
		if err != nil {
			from = "/dev/null"
		}
		_, werr := fmt.Fprint(cfg.stdout, lineDiff(from, path, old, want))
		return true, werr
	}
	if err == nil {
		if _, err := saveBackup(cfg, path, old, time.Now()); err != nil {
			return false, fmt.Errorf("back up %s: %w", path, err)
		}
	}
	if err := writeFileAtomicMode(path, want, 0o755); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// removeAgentScript removes difflore's script at path, when it is there
// and difflore's.
func removeAgentScript(cfg config, a agentSpec, path string, dryRun bool) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !isAgentScript(old) {
		return nil
	}
	if err != nil {
		return err
	}
	if dryRun {
		_, err := fmt.Fprint(cfg.stdout, lineDiff(path, "/dev/null", old, nil))
		return err
	}
	if _, err := saveBackup(cfg, path, old, time.Now()); err != nil {
		return fmt.Errorf("back up %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fmt.Fprintf(cfg.stdout, "removed %s\n", path)
	return nil
}
