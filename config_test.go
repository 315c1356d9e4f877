package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestEnqueueNeverReadsConfig proves that the hook's fast path leaves
// config.toml alone: enqueue needs no setting, so it neither pays for
// reading and parsing the file nor fails on one that is refused.
func TestEnqueueNeverReadsConfig(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	mustOpenHomeCreate(t, env.home)
	// A file every reader refuses, on Unix: it holds a token and others may
	// read it.
	path := filepath.Join(env.home, configFileName)
	if err := os.WriteFile(path, []byte("token = \"t\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var reads int
	runCounted := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		cfg := loadConfig(env.getenv, strings.NewReader(""), &out, &errb)
		cfg.waits = quickWaits()
		read := cfg.readConfig
		cfg.readConfig = func(p string) (configFile, error) { reads++; return read(p) }
		err := runConfig(context.Background(), cfg, args)
		return out.String() + errb.String() + errMessage(err), exitCode(err)
	}
	for _, args := range [][]string{
		{"enqueue", `{"n":1}`},
		{"enqueue", "--kind", "x", "--id", "e-2", `{"n":2}`},
		{"enqueue", "not json"},
	} {
		if msg, code := runCounted(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, msg)
		}
	}
	if reads != 0 {
		t.Fatalf("enqueue read config.toml %d times, want none", reads)
	}
	// The counting sees the reads of a command that uses a setting.
	msg, code := runCounted("status")
	if reads != 1 {
		t.Fatalf("status read config.toml %d times, want 1 (exit %d: %s)", reads, code, msg)
	}
	// status shows the refusal beside what it can still say (the daemon,
	// the outbox), with the exit code of the daemon's state.
	if runtime.GOOS != "windows" && (code != 3 || !strings.Contains(msg, "chmod 600")) {
		t.Fatalf("status on a readable token file: exit %d, %q; want 3 (not running) and a chmod hint", code, msg)
	}
}

func errMessage(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSettingsPrecedence: the environment wins over config.toml, which
// wins over the defaults, key by key.
func TestSettingsPrecedence(t *testing.T) {
	t.Parallel()
	file := `endpoint = "file:///from/file"
token = "file-token"
batch = 7
redact = false
redact_allow = ["ok"]
[[redact_rules]]
name = "ticket"
pattern = "T-[0-9]+"
`
	tests := []struct {
		name        string
		file        string
		env         map[string]string
		endpoint    string
		source      string
		token       string
		batch       int
		redactOff   bool
		customRules int
	}{
		{"defaults", "", nil, "", fromNone, "", defaultBatch, false, 0},
		{"file", file, nil, "file:///from/file", fromConfig, "file-token", 7, true, 1},
		{"env over file", file, map[string]string{"DIFFLORE_CLOUD_URL": "file:///from/env", "DIFFLORE_CLOUD_TOKEN": "env-token", "DIFFLORE_REDACT": "1"},
			"file:///from/env", fromEnv, "env-token", 7, false, 1},
		{"env off, no file", "", map[string]string{"DIFFLORE_REDACT": "off"}, "", fromNone, "", defaultBatch, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			mustOpenHomeCreate(t, env.home)
			if tt.file != "" {
				if err := os.WriteFile(filepath.Join(env.home, configFileName), []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tt.env {
				env.vars[k] = v
			}
			st, err := loadConfig(env.getenv, nil, nil, nil).settings()
			if err != nil {
				t.Fatal(err)
			}
			if st.endpoint != tt.endpoint || st.endpointSource != tt.source || st.token != tt.token || st.batch != tt.batch ||
				st.redact.off != tt.redactOff || len(st.redact.rules) != tt.customRules {
				t.Errorf("got endpoint %q (%s), token %q, batch %d, redact off %v, %d rules; want %q (%s), %q, %d, %v, %d",
					st.endpoint, st.endpointSource, st.token, st.batch, st.redact.off, len(st.redact.rules),
					tt.endpoint, tt.source, tt.token, tt.batch, tt.redactOff, tt.customRules)
			}
		})
	}
}

// TestEditTOMLLine: set replaces a key's line or adds it above the first
// table and that table's comments; unset removes the line; nothing else
// changes.
func TestEditTOMLLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, key, lit, want string
	}{
		{"empty file", "", "batch", "5", "batch = 5\n"},
		{"append", "# mine\nendpoint = \"x\"", "batch", "5", "# mine\nendpoint = \"x\"\nbatch = 5\n"},
		{"replace", "batch = 1 # old\nendpoint = \"x\"\n", "batch", "5", "batch = 5\nendpoint = \"x\"\n"},
		{"quoted key", "\"batch\" = 1\n", "batch", "5", "batch = 5\n"},
		{"before a table", "a = 1\n\n# rules\n[[redact_rules]]\nbatch = 1\n", "batch", "5",
			"a = 1\nbatch = 5\n\n# rules\n[[redact_rules]]\nbatch = 1\n"},
		{"not inside a table", "[t]\nbatch = 1\n", "batch", "", "[t]\nbatch = 1\n"},
		{"unset", "a = 1\nbatch = 2\nc = 3\n", "batch", "", "a = 1\nc = 3\n"},
		{"crlf", "a = 1\r\n", "batch", "5", "a = 1\r\nbatch = 5\r\n"},
	}
	for _, tt := range tests {
		if got := editTOMLLine(tt.text, tt.key, tt.lit); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestConfigSetRefusesWhatItCannotEdit: a key whose value spans lines is
// not cut in half; the file stays as it was.
func TestConfigSetRefusesWhatItCannotEdit(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	mustOpenHomeCreate(t, env.home)
	path := filepath.Join(env.home, configFileName)
	before := "endpoint = \"\"\"\nfile:///a\"\"\"\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := env.cli("", "config", "set", "endpoint", "file:///b")
	if code != 1 || !strings.Contains(errOut, "line by line") {
		t.Fatalf("exit %d, %q; want 1 and a refusal", code, errOut)
	}
	if data, _ := os.ReadFile(path); string(data) != before {
		t.Fatalf("file changed to %q", data)
	}
}

// TestConfigSetTellsRunningDaemon checks that a change made while a daemon
// of the home runs says that the daemon goes on with what it read until it
// is told to read the file again; with no daemon, nothing is said.
func TestConfigSetTellsRunningDaemon(t *testing.T) {
	dir := testHome(t)
	if _, stderr, code := cli(t, "", "config", "set", "batch", "50"); code != 0 || stderr != "" {
		t.Fatalf("config set with no daemon: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	l := newLock(mustOpenHomeCreate(t, dir))
	if ok, err := tryLock(l); !ok || err != nil {
		t.Fatalf("take the lock as a daemon would: %v, %v", ok, err)
	}
	defer l.Unlock()
	_, stderr, code := cli(t, "", "config", "set", "batch", "60")
	if code != 0 || !strings.Contains(stderr, "the running daemon keeps the settings it read") {
		t.Fatalf("config set with a daemon running: exit %d, stderr %q; want 0 and a note", code, stderr)
	}
}
