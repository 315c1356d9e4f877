package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/BurntSushi/toml"
)

// Codex 0.169.0 runs a hook from a hooks.json only when its config.toml
// trusts that very hook: a table
//
//	[hooks.state."<hooks.json path>:<event_snake>:<group>:<handler>"]
//	trusted_hash = "sha256:<hex>"
//
// whose hash is that of the hook as Codex normalises it. A hook without
// one is skipped, silently in 'codex exec'; a hook whose entry holds
// another hash (its command changed) is "modified" and skipped too.

// codexTrust is the trust Codex needs for one hook: its key in
// hooks.state and the hash that trusts it.
type codexTrust struct{ key, hash string }

// codexTrustEntries returns the trust entries of difflore's hooks in doc,
// the hooks.json at hooksPath, in the order of the file.
func (a agentSpec) codexTrustEntries(hooksPath string, doc *jsonValue) []codexTrust {
	hooks := doc.get("hooks")
	if hooks == nil || hooks.kind != '{' {
		return nil
	}
	// Codex keys trust by the file's absolute path.
	if abs, err := filepath.Abs(hooksPath); err == nil {
		hooksPath = abs
	}
	var out []codexTrust
	for _, m := range hooks.members {
		if m.value.kind != '[' {
			continue
		}
		event := snakeCase(m.key)
		for gi, g := range m.value.elems {
			hs := g.get("hooks")
			if hs == nil || hs.kind != '[' {
				continue
			}
			for hi, h := range hs.elems {
				if !a.isOurHook(h) {
					continue
				}
				key := fmt.Sprintf("%s:%s:%d:%d", hooksPath, event, gi, hi)
				out = append(out, codexTrust{key, codexHookHash(event, g, h)})
			}
		}
	}
	return out
}

// codexHookHash is the hash Codex 0.169.0 trusts a hook by: the SHA-256 of
// the compact JSON, keys sorted, of the hook's identity as Codex
// normalises it, with its effective timeout and unset fields left out.
func codexHookHash(event string, group, h *jsonValue) string {
	// Codex allows SessionEnd and Interrupt hooks 1 s unless they say
	// more, and at most 3 s; any other hook 600 s. Every hook gets at
	// least 1 s.
	short := event == "session_end" || event == "interrupt"
	timeout := int64(600)
	if short {
		timeout = 1
	}
	if t := h.get("timeout"); t != nil && t.kind == 0 {
		if f, err := strconv.ParseFloat(string(t.raw), 64); err == nil {
			timeout = int64(f)
		}
	}
	if short {
		timeout = min(timeout, 3)
	}
	timeout = max(timeout, 1)
	command, _ := h.get("command").str()
	handler := map[string]any{"async": h.get("async").isTrue(), "command": command, "timeout": timeout, "type": "command"}
	if s, ok := h.get("statusMessage").str(); ok {
		handler["statusMessage"] = s
	}
	identity := map[string]any{"event_name": event, "hooks": []any{handler}}
	if s, ok := group.get("matcher").str(); ok {
		identity["matcher"] = s
	}
	// encoding/json sorts map keys; Codex's serializer escapes no HTML
	// characters.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(identity) // maps of strings, numbers and bools always encode
	sum := sha256.Sum256(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// snakeCase turns an event name into the form Codex keys trust by:
// PreToolUse → pre_tool_use.
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// codexConfigPath is Codex's config.toml, which holds the trust of the
// user's hooks and the projects' alike.
func codexConfigPath(getenv func(string) string) (string, error) {
	a, err := findAgent("codex")
	if err != nil {
		return "", err
	}
	userHooks, err := a.settingsPath(getenv, "")
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(userHooks), "config.toml"), nil
}

// codexState is what config.toml says of the hooks it trusts.
type codexState struct {
	Hooks struct {
		State map[string]struct {
			TrustedHash string `toml:"trusted_hash"`
			Enabled     *bool  `toml:"enabled"`
		} `toml:"state"`
	} `toml:"hooks"`
}

// readCodexState reads the hooks.state tables of a config.toml; a missing
// or empty file trusts nothing.
func readCodexState(path string) (codexState, error) {
	var st codexState
	f, err := readSettings(path)
	if err != nil {
		return st, err
	}
	if _, err := toml.Decode(string(f.data), &st); err != nil {
		return st, fmt.Errorf("%s is not valid TOML: %w", path, err)
	}
	return st, nil
}

// codexTrustCount counts, of entries, the hooks config.toml trusts and
// those it trusts by another hash (changed since they were trusted).
func codexTrustCount(st codexState, entries []codexTrust) (trusted, stale, disabled int) {
	for _, e := range entries {
		s, ok := st.Hooks.State[e.key]
		switch {
		case !ok || s.TrustedHash == "":
		case s.TrustedHash != e.hash:
			stale++
		case s.Enabled != nil && !*s.Enabled:
			disabled++
		default:
			trusted++
		}
	}
	return trusted, stale, disabled
}

// codexTrustHint says how to have Codex trust difflore's hooks, installed
// in project, or the user's file when it is empty.
func codexTrustHint(project string) string {
	flags := ""
	if project != "" {
		flags = "--project " + project + " "
	}
	return "run 'difflore hooks install --trust " + flags + "codex', or start codex" + codexTrustHintRest
}

const codexTrustHintRest = ` (in a folder it trusts, or answer "Trust this folder?") and, when it says "Hooks need review", choose "Trust all" ("Review hooks", the default, lists them to trust one by one); 'codex exec' skips untrusted hooks without a word`

// The trust tables difflore writes, and finds again to update or remove:
// a header line and a trusted_hash line, after an empty line.
func trustHeader(key string) string { return "[hooks.state." + tomlString(key) + "]" }

func trustBlock(e codexTrust) string {
	return "\n" + trustHeader(e.key) + "\ntrusted_hash = " + tomlString(e.hash) + "\n"
}

// editCodexTrust rewrites config.toml as text, never through a TOML
// encoder, so that the user's comments, order and formatting stay: trust
// entries in add are appended, or their hash replaced in place where the
// key already has a table; the tables of the keys in remove are taken
// out. The result is checked by decoding both texts: apart from those
// keys, they must hold the same values, or nothing is written.
func editCodexTrust(cfg config, path string, add []codexTrust, remove []string, dryRun bool) (changed bool, backup string, err error) {
	f, err := readSettings(path)
	if err != nil {
		return false, "", err
	}
	var before map[string]any
	if _, err := toml.Decode(string(f.data), &before); err != nil {
		return false, "", &exitError{code: 1, err: fmt.Errorf("%s is not valid TOML, so it was left as it is: %w", path, err), hint: "trust them in Codex instead: start codex" + codexTrustHintRest}
	}
	var st codexState
	toml.Decode(string(f.data), &st) // it decoded above
	lines := strings.SplitAfter(string(f.data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	lines, appended, want, err := addTrustLines(path, lines, st, add)
	if err != nil {
		return false, "", err
	}
	if lines, err = removeTrustLines(path, lines, st, remove); err != nil {
		return false, "", err
	}
	text := strings.Join(lines, "")
	if appended != "" && text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if text == "" {
		// A new file starts with its first table, not an empty line.
		text = strings.TrimPrefix(appended, "\n")
	} else {
		text += appended
	}
	if text == string(f.data) {
		return false, "", nil
	}
	if err := checkTrustEdit(before, text, want, remove); err != nil {
		return false, "", &exitError{code: 1, err: fmt.Errorf("%s: %w; it was left as it is", path, err), hint: "trust them in Codex instead: start codex" + codexTrustHintRest}
	}
	backup, err = f.commitEdit(cfg, []byte(text), len(add) > 0, emptyTOML(text), dryRun)
	return true, backup, err
}

// addTrustLines sets the trust entries of add in config.toml's lines: a
// hash replaced in place where the key already has a table, the text of new
// tables returned to be appended. want is every key's hash.
func addTrustLines(path string, lines []string, st codexState, add []codexTrust) (_ []string, appended string, want map[string]string, err error) {
	var b strings.Builder
	want = map[string]string{}
	for _, e := range add {
		want[e.key] = e.hash
		s, ok := st.Hooks.State[e.key]
		if ok && s.TrustedHash == e.hash {
			continue
		}
		if !ok {
			b.WriteString(trustBlock(e))
			continue
		}
		i, end := findTrustTable(lines, e.key)
		replaced := false
		for j := i + 1; i >= 0 && j < end; j++ {
			if k, _, _ := strings.Cut(lines[j], "="); strings.TrimSpace(k) == "trusted_hash" {
				lines[j] = "trusted_hash = " + tomlString(e.hash) + "\n"
				replaced = true
			}
		}
		if !replaced {
			return nil, "", nil, &exitError{code: 1, err: fmt.Errorf("%s trusts %q in a form difflore does not edit; it was left as it is", path, e.key), hint: "trust them in Codex instead: start codex" + codexTrustHintRest}
		}
	}
	return lines, b.String(), want, nil
}

// removeTrustLines takes the tables of the keys in remove out of
// config.toml's lines.
func removeTrustLines(path string, lines []string, st codexState, remove []string) ([]string, error) {
	for _, key := range remove {
		if _, ok := st.Hooks.State[key]; !ok {
			continue
		}
		i, end := findTrustTable(lines, key)
		if i < 0 {
			return nil, &exitError{code: 1, err: fmt.Errorf("%s trusts %q in a form difflore does not edit; it was left as it is", path, key),
				hint: "remove the [hooks.state] entry of that key by hand"}
		}
		// The empty line difflore wrote before the table goes with it.
		if i > 0 && strings.TrimSpace(lines[i-1]) == "" {
			i--
		}
		lines = append(lines[:i], lines[end:]...)
	}
	return lines, nil
}

// findTrustTable finds the table difflore writes for key: the index of its
// header line and of the line after its last line (the next table's header,
// or the end). It returns -1 when there is none in that form.
func findTrustTable(lines []string, key string) (start, end int) {
	header := trustHeader(key)
	start = -1
	for i, l := range lines {
		if strings.TrimSpace(l) == header {
			start = i
			break
		}
	}
	if start < 0 {
		return -1, -1
	}
	end = start + 1
	for end < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[end]), "[") {
		end++
	}
	// Empty lines and comments at the end belong to what follows.
	for end > start+1 {
		t := strings.TrimSpace(lines[end-1])
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		end--
	}
	return start, end
}

// checkTrustEdit decodes the edited config.toml and checks that it trusts
// exactly what was wanted and holds every other value as it was.
func checkTrustEdit(before map[string]any, text string, want map[string]string, remove []string) error {
	var after map[string]any
	if _, err := toml.Decode(text, &after); err != nil {
		return fmt.Errorf("the edit would not be valid TOML: %w", err)
	}
	strip := func(doc map[string]any) map[string]any {
		hooks, _ := doc["hooks"].(map[string]any)
		state, _ := hooks["state"].(map[string]any)
		for key := range want {
			delete(state, key)
		}
		for _, key := range remove {
			delete(state, key)
		}
		if state != nil && len(state) == 0 {
			delete(hooks, "state")
		}
		if hooks != nil && len(hooks) == 0 {
			delete(doc, "hooks")
		}
		return doc
	}
	var st codexState
	toml.Decode(text, &st) // it decoded above
	for key, hash := range want {
		if st.Hooks.State[key].TrustedHash != hash {
			return fmt.Errorf("the edit would not trust %q", key)
		}
	}
	for _, key := range remove {
		if _, ok := st.Hooks.State[key]; ok {
			return fmt.Errorf("the edit would still trust %q", key)
		}
	}
	if before == nil {
		before = map[string]any{}
	}
	if !reflect.DeepEqual(strip(before), strip(after)) {
		return errors.New("the edit would change other settings")
	}
	return nil
}

// codexInstallTrust trusts difflore's hooks in doc, the hooks.json at
// path, in Codex's config.toml when the user asked for it with --trust;
// otherwise it says how to.
func codexInstallTrust(cfg config, a agentSpec, path, project string, doc *jsonValue, trust, dryRun bool) error {
	configPath, err := codexConfigPath(cfg.getenv)
	if err != nil {
		return err
	}
	entries := a.codexTrustEntries(path, doc)
	if !trust {
		// The way to trust them is told only while it is needed: an
		// install that changed nothing of trusted hooks has nothing to say.
		st, err := readCodexState(configPath)
		if err != nil {
			fmt.Fprintf(cfg.stderr, "difflore: warning: cannot tell whether Codex trusts these hooks: %v\n", err)
		}
		if trusted, _, _ := codexTrustCount(st, entries); err != nil || trusted < len(entries) {
			fmt.Fprintf(cfg.stderr, "difflore: note: Codex runs these hooks only once you trust them: %s\n", codexTrustHint(project))
		}
		return nil
	}
	changed, backup, err := editCodexTrust(cfg, configPath, entries, nil, dryRun)
	if err != nil {
		return err
	}
	switch {
	case !changed:
		fmt.Fprintf(cfg.stdout, "Codex already trusts the %s (%s)\n", plural(len(entries), "difflore hook"), configPath)
	case dryRun:
		fmt.Fprintf(cfg.stderr, "difflore: dry run: %s was not written\n", configPath)
	default:
		fmt.Fprintf(cfg.stdout, "Codex trusts the %s: trust written to %s\n", plural(len(entries), "difflore hook"), configPath)
		if backup != "" {
			fmt.Fprintf(cfg.stdout, "the file as it was: %s\n", backup)
		}
	}
	return nil
}

// codexUninstallTrust takes the trust of difflore's hooks that uninstall
// removed out of Codex's config.toml: a key names one hook's place in one
// hooks.json, so nothing else is touched.
func codexUninstallTrust(cfg config, trust []codexTrust, dryRun bool) error {
	configPath, err := codexConfigPath(cfg.getenv)
	if err != nil {
		return err
	}
	keys := make([]string, len(trust))
	for i, e := range trust {
		keys[i] = e.key
	}
	changed, backup, err := editCodexTrust(cfg, configPath, nil, keys, dryRun)
	if err != nil || !changed {
		return err
	}
	if dryRun {
		fmt.Fprintf(cfg.stderr, "difflore: dry run: %s was not written\n", configPath)
		return nil
	}
	fmt.Fprintf(cfg.stdout, "removed the trust of difflore's hooks from %s\n", configPath)
	if backup != "" {
		fmt.Fprintf(cfg.stdout, "the file as it was: %s\n", backup)
	}
	return nil
}

// codexTrustStatus adds to line, the status of difflore's hooks in the
// hooks.json at path, how many of them Codex trusts: it runs no other.
func (a agentSpec) codexTrustStatus(cfg config, line, path, project string, doc *jsonValue) (string, bool, string) {
	configPath, err := codexConfigPath(cfg.getenv)
	if err != nil {
		return line + "; " + err.Error(), false, ""
	}
	st, err := readCodexState(configPath)
	if err != nil {
		return line + "; cannot read Codex's trust: " + err.Error(), false, ""
	}
	entries := a.codexTrustEntries(path, doc)
	trusted, stale, disabled := codexTrustCount(st, entries)
	line += fmt.Sprintf("; Codex trusts %d of %d", trusted, len(entries))
	if stale > 0 {
		line += fmt.Sprintf(" (%d changed since they were trusted)", stale)
	}
	if disabled > 0 {
		line += fmt.Sprintf(" (%d disabled in %s)", disabled, configPath)
	}
	if trusted < len(entries) {
		line += ", and runs no other"
		return line, false, codexTrustHint(project)
	}
	return line, true, ""
}
