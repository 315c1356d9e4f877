package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"howett.net/plist"
)

func TestServicePrint(t *testing.T) {
	testHome(t)
	for mgr, want := range map[string]string{"systemd": "ExecStart=", "launchd": "<key>ProgramArguments</key>", "windows": "Register-ScheduledTask -TaskName difflore"} {
		if mgr == "systemd" && runtime.GOOS == "windows" {
			continue // no program path with backslashes is one systemd runs
		}
		out := mustCLI(t, "service", "print", mgr)
		if !strings.Contains(out, want) || !strings.Contains(out, "run") {
			t.Errorf("service print %s lacks %q or 'run':\n%s", mgr, want, out)
		}
	}
}

// TestSystemdUnitRoundTrip writes the unit for a program and a data home
// whose paths hold a space, '%' and '$' (and for the home, a quote and a
// backslash, which systemd refuses in a program's path), and reads them
// back as systemd would: the daemon must get the same home and the same
// program, not another one. Where systemd-analyze is installed, it verifies
// the unit too (it checks that ExecStart names a program that exists, which
// only the right unquoting finds).
func TestSystemdUnitRoundTrip(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("systemd units name Unix paths")
	}
	dir := filepath.Join(t.TempDir(), `odd 100% $HOME`)
	exe := filepath.Join(dir, "bin %i", "difflore")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, exe); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, `home %h "q" back\slash`)
	var unit strings.Builder
	if err := writeServiceDefinition(&unit, "systemd", serviceData{Exe: exe, Home: home}); err != nil {
		t.Fatal(err)
	}
	settings := parseUnit(t, unit.String())
	if got := settings["Type"]; len(got) != 1 || got[0] != "notify" {
		t.Errorf("Type=%q, want notify", got)
	}
	if got := settings["ExecReload"]; len(got) != 1 || got[0] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%q, want /bin/kill -HUP $MAINPID", got)
	}
	start := settings["ExecStart"]
	if len(start) != 1 {
		t.Fatalf("ExecStart=%q, want one", start)
	}
	if words := systemdWords(t, start[0]); !slices.Equal(words, []string{exe, "run", "--takeover"}) {
		t.Errorf("ExecStart reads back as %q, want [%q run --takeover]\n%s", words, exe, unit.String())
	}
	var env []string
	for _, v := range settings["Environment"] {
		env = append(env, systemdWords(t, v)...)
	}
	if !slices.Contains(env, "DIFFLORE_HOME="+home) {
		t.Errorf("Environment reads back as %q, want DIFFLORE_HOME=%q\n%s", env, home, unit.String())
	}

	var refused strings.Builder
	if err := writeServiceDefinition(&refused, "systemd", serviceData{Exe: `/opt/a "b"/difflore`, Home: home}); err == nil {
		t.Errorf("a program path with a quote, which systemd refuses, gave a unit:\n%s", refused.String())
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian's systemd package): the unit was read back by this test's parser only, not by systemd")
	}
	unitPath := filepath.Join(t.TempDir(), "difflore.service")
	if err := os.WriteFile(unitPath, []byte(unit.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", "--user", unitPath)
	// A user manager's paths need a runtime directory, which a container
	// or CI runner may not have; and it reads the user's unit folders,
	// which are the test's own.
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "SYSTEMD_LOG_LEVEL=warning", "HOME="+t.TempDir(), "XDG_CONFIG_HOME=", "XDG_DATA_HOME=")
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, out, unit.String())
	}
}

// parseUnit reads the settings of a unit file: key to values, in order, for
// every section (the keys this test looks at are in [Service] alone).
func parseUnit(t *testing.T, unit string) map[string][]string {
	t.Helper()
	settings := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q has no '='", line)
		}
		settings[strings.TrimSpace(k)] = append(settings[strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return settings
}

// systemdWords splits a unit value into words by systemd's rules: words
// split at spaces, double or single quotes around a word, backslash escapes
// inside and out, and "%%" for '%' (every other '%' starts a specifier,
// which this test refuses). A '$' is taken as it is: the values this test
// reads are not subject to variable expansion.
func systemdWords(t *testing.T, v string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%':
			if i+1 >= len(v) || v[i+1] != '%' {
				t.Fatalf("specifier %q in %q: not escaped", v[i:min(i+2, len(v))], v)
			}
			i++
			w.WriteByte('%')
		case c == '\\':
			if i+1 >= len(v) {
				t.Fatalf("trailing backslash in %q", v)
			}
			i++
			switch v[i] {
			case 'n':
				w.WriteByte('\n')
			case 't':
				w.WriteByte('\t')
			case '\\', '"', '\'', ' ':
				w.WriteByte(v[i])
			default:
				t.Fatalf("escape \\%c in %q: this parser does not know it", v[i], v)
			}
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\'') && !inWord:
			quote = c
		case quote == 0 && c == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			continue
		default:
			w.WriteByte(c)
		}
		inWord = true
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", v)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestLaunchdPlistRoundTrip reads the launchd agent back with a real
// property-list parser (howett.net/plist, the format's Go implementation
// that follows Apple's): the program, its arguments and the data home come
// back exactly as given, however odd the path, and the keys launchd acts on
// have the types it wants.
func TestLaunchdPlistRoundTrip(t *testing.T) {
	exe := `/Users/O'Brien & <Co>/bin "x"/difflore`
	home := `/Users/O'Brien & <Co>/.difflore ]]> --`
	var def strings.Builder
	if err := writeServiceDefinition(&def, "launchd", serviceData{Exe: exe, Home: home}); err != nil {
		t.Fatal(err)
	}
	var agent struct {
		Label                string            `plist:"Label"`
		ProgramArguments     []string          `plist:"ProgramArguments"`
		EnvironmentVariables map[string]string `plist:"EnvironmentVariables"`
		RunAtLoad            bool              `plist:"RunAtLoad"`
		KeepAlive            map[string]bool   `plist:"KeepAlive"`
		ExitTimeOut          int               `plist:"ExitTimeOut"`
		StandardErrorPath    string            `plist:"StandardErrorPath"`
	}
	format, err := plist.Unmarshal([]byte(def.String()), &agent)
	if err != nil {
		t.Fatalf("the plist does not parse: %v\n%s", err, def.String())
	}
	if format != plist.XMLFormat {
		t.Errorf("format %d, want XML", format)
	}
	if want := []string{exe, "run", "--takeover"}; !slices.Equal(agent.ProgramArguments, want) {
		t.Errorf("ProgramArguments read back as %q, want %q", agent.ProgramArguments, want)
	}
	if got := agent.EnvironmentVariables["DIFFLORE_HOME"]; got != home {
		t.Errorf("DIFFLORE_HOME read back as %q, want %q", got, home)
	}
	if agent.Label != "dev.difflore.daemon" || !agent.RunAtLoad || agent.ExitTimeOut != 15 {
		t.Errorf("Label %q, RunAtLoad %v, ExitTimeOut %d", agent.Label, agent.RunAtLoad, agent.ExitTimeOut)
	}
	if successful, ok := agent.KeepAlive["SuccessfulExit"]; !ok || successful {
		t.Errorf("KeepAlive %v: want SuccessfulExit false, so that launchd restarts only a failed daemon", agent.KeepAlive)
	}
	if want := home + "/daemon.stderr.log"; agent.StandardErrorPath != want {
		t.Errorf("StandardErrorPath %q, want %q", agent.StandardErrorPath, want)
	}
}

// TestServiceValuesQuoted writes each service definition for data homes
// that would break out of their quoting. PowerShell ends a single-quoted
// string at U+2018 to U+201B as well as at ASCII "'", and each is escaped by
// doubling it; a newline ends a '#' comment, so a home in a comment would
// run as code. A control character is refused in every definition, with a
// hint; what it would do differs by format, and no path needs one.
func TestServiceValuesQuoted(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "difflore")
	for _, home := range []string{`C:\Users\O’Brien\.difflore`, `C:\Users\‘a’‚b‛'c\.difflore`} {
		var out strings.Builder
		if err := writeServiceDefinition(&out, "windows", serviceData{Exe: exe, Home: home}); err != nil {
			t.Fatalf("home %q: %v", home, err)
		}
		quoted := "'"
		for _, r := range home {
			if strings.ContainsRune("'\u2018\u2019\u201a\u201b", r) {
				quoted += string(r)
			}
			quoted += string(r)
		}
		quoted += "'"
		if !strings.Contains(out.String(), quoted) {
			t.Errorf("the script lacks the home quoted as %s:\n%s", quoted, out.String())
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") && strings.Contains(line, "Users") {
				t.Errorf("the home is in a comment line, which a newline in it would end: %q", line)
			}
		}
	}

	for _, mgr := range []string{"systemd", "launchd", "windows"} {
		for _, home := range []string{"/home/a\nWrite-Host pwned\n#", "/home/a\rb", "/home/a\x01b", "/home/a\x7fb", "/home/a\u0085b"} {
			var out strings.Builder
			err := writeServiceDefinition(&out, mgr, serviceData{Exe: exe, Home: home})
			if err == nil || !strings.Contains(err.Error(), "control character") || !strings.Contains(err.Error(), "hint:") {
				t.Errorf("%s, home %q: err %v; want a refusal that names the control character, with a hint\n%s", mgr, home, err, out.String())
			}
		}
	}
	testHome(t)
	t.Setenv("DIFFLORE_HOME", filepath.Join(t.TempDir(), "a\nb"))
	if out, errOut, code := cli(t, "", "service", "print", "windows"); code != 1 || !strings.Contains(errOut, "control character") {
		t.Errorf("service print windows with a newline in the home: exit %d, stderr %q; want exit 1 and a refusal\n%s", code, errOut, out)
	}
}
