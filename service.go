package main

import (
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

const serviceUsage = `
Usage:
  difflore service print systemd|launchd|windows
  difflore service install systemd|launchd|windows
  difflore service uninstall systemd|launchd|windows

Makes the daemon of this data home start at log-in (or boot) and restart
when it fails. The service runs 'difflore run --takeover' in the
foreground, logging to stderr (journald, or the log file launchd writes):
it stops a daemon a hook started for the same data home and takes its
place, rather than exiting 1 and being restarted for ever.

print writes the definition to standard output: a systemd user unit, a
launchd LaunchAgent, or, for Windows, a PowerShell script that registers
an at-log-on scheduled task for this user (no administrator needed; it
runs on battery and has no time limit).

install writes the definition and loads it: the user unit in
~/.config/systemd/user/difflore.service ('systemctl --user daemon-reload'
and 'enable --now'), the agent in
~/Library/LaunchAgents/dev.difflore.daemon.plist ('launchctl bootstrap
gui/UID'), or a Windows service registered with the Service Control
Manager, started at boot and restarted when it fails (this needs an
administrator). When the service manager refuses (no user session bus,
as under su or sudo), install exits 1 and leaves nothing installed.
uninstall stops it and removes it, and says which of these happened.

The daemon reads the endpoint and the token from config.toml in the data
home: set them with 'difflore config set'. No environment file is read,
whose DIFFLORE_CLOUD_URL would win over config.toml.

Examples:
  difflore service install systemd
  systemctl --user reload difflore      # read config.toml again
  difflore service print launchd
  difflore service print windows | powershell -Command -
`

// serviceData is what the service templates fill in. The endpoint and the
// token are not written into the files: the daemon reads them from
// config.toml, as every daemon of the home does. An environment file would
// win over config.toml, so that a later 'config set endpoint' would
// silently change nothing: the definitions tell the user to use config set.
type serviceData struct {
	Exe  string
	Home string
}

var serviceTemplates = map[string]string{
	"systemd": `[Unit]
Description=difflore: deliver queued agent-hook events
Documentation=https://github.com/difflore/difflore

[Service]
# The daemon tells systemd when it is ready: it holds the lock and the
# outbox is open.
Type=notify
ExecStart={{quote .Exe}} run --takeover
# SIGHUP: read config.toml again ('systemctl --user reload difflore').
ExecReload=/bin/kill -HUP $MAINPID
# The endpoint and the token come from config.toml in the data home: set them with 'difflore config set'.
Environment={{envQuote "DIFFLORE_HOME" .Home}}
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=15

[Install]
WantedBy=default.target
`,
	"launchd": `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>dev.difflore.daemon</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{.Exe}}</string>
		<string>run</string>
		<string>--takeover</string>
	</array>
	<key>EnvironmentVariables</key>
	<dict>
		<key>DIFFLORE_HOME</key>
		<string>{{.Home}}</string>
		<!-- The endpoint and the token come from config.toml in the data home: set them with 'difflore config set'. -->
	</dict>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ExitTimeOut</key>
	<integer>15</integer>
	<key>StandardErrorPath</key>
	<string>{{.Home}}/daemon.stderr.log</string>
</dict>
</plist>
`,
	"windows": `# Start the difflore daemon at log-on, in the background, for this user
# (PowerShell; no administrator needed). A Windows service, restarted when
# it fails, needs one: difflore service install windows
# The daemon reads its endpoint and token from config.toml in its data home.
# For a data home other than the default, set it for your user first:
#   [Environment]::SetEnvironmentVariable('DIFFLORE_HOME', $dataHome, 'User')
$dataHome = {{ps .Home}}
$action = New-ScheduledTaskAction -Execute {{ps .Exe}} -Argument 'run --detach --takeover'
$trigger = New-ScheduledTaskTrigger -AtLogOn -User $env:USERNAME
# A task stops on battery and after 3 days by default: not this one.
$settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit ([TimeSpan]::Zero)
Register-ScheduledTask -TaskName difflore -Action $action -Trigger $trigger -Settings $settings -Force
# Start it now without logging off:
Start-ScheduledTask -TaskName difflore
`,
}

func cmdService(cfg config, args []string) error {
	if usageAsked(cfg, args, serviceUsage, false) {
		return nil
	}
	if len(args) == 0 || (args[0] != "print" && args[0] != "install" && args[0] != "uninstall") {
		return &exitError{code: 2, err: fmt.Errorf("usage: difflore service print|install|uninstall systemd|launchd|windows")}
	}
	action := args[0]
	fl := newFlagSet(cfg, "service "+action, serviceUsage)
	if err := parseFlags(fl, args[1:]); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("service %s takes one service manager, got %d", action, fl.NArg()), hint: "use systemd, launchd or windows"}
	}
	mgr := fl.Arg(0)
	if _, ok := serviceTemplates[mgr]; !ok {
		return &exitError{code: 2, err: fmt.Errorf("unknown service manager %q", mgr), hint: "use systemd, launchd or windows"}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	home, err := filepath.Abs(cfg.home)
	if err != nil {
		return err
	}
	data := serviceData{Exe: exe, Home: home}
	if err := checkServiceValues(data); err != nil {
		return err
	}
	switch {
	case action == "print":
		return writeServiceDefinition(cfg.stdout, mgr, data)
	case mgr == "windows" && action == "install":
		if err := installWindowsService(exe, home, cfg.stderr); err != nil {
			return err
		}
		fmt.Fprintf(cfg.stdout, "installed and started the Windows service %q\n", windowsServiceName)
		return nil
	case mgr == "windows":
		removed, err := uninstallWindowsService()
		if err != nil {
			return err
		}
		if !removed {
			fmt.Fprintf(cfg.stdout, "not installed: no Windows service %q\n", windowsServiceName)
			return nil
		}
		fmt.Fprintf(cfg.stdout, "stopped and removed the Windows service %q\n", windowsServiceName)
		return nil
	}
	u, err := userServiceFor(cfg, mgr)
	if err != nil {
		return err
	}
	if action == "install" {
		return u.install(cfg, data)
	}
	return u.uninstall(cfg)
}

// writeServiceDefinition writes the definition for the service manager mgr
// (a key of serviceTemplates), with the values quoted as that format needs.
func writeServiceDefinition(w io.Writer, mgr string, data serviceData) error {
	if err := checkServiceValues(data); err != nil {
		return err
	}
	if mgr == "launchd" {
		data = serviceData{Exe: html.EscapeString(data.Exe), Home: html.EscapeString(data.Home)}
	}
	if mgr == "systemd" && strings.ContainsFunc(data.Exe, func(r rune) bool { return r == '"' || r == '\\' || r < 0x20 }) {
		// systemd refuses such a program path ("Executable name contains
		// special characters") however it is quoted.
		return &exitError{code: 1, err: fmt.Errorf("systemd cannot run a program whose path holds a quote, a backslash or a control character: %q", data.Exe),
			hint: "install difflore in a folder whose path has none, and run its 'service print systemd'"}
	}
	funcs := template.FuncMap{
		"ps":       powershellQuote,
		"quote":    systemdQuote,
		"envQuote": func(k, v string) string { return systemdQuote(k + "=" + v) },
	}
	return template.Must(template.New(mgr).Funcs(funcs).Parse(serviceTemplates[mgr])).Execute(w, data)
}

// checkServiceValues refuses a program path or data home that holds a
// control character or is not UTF-8. No format keeps every such character
// safely: a newline ends a PowerShell comment or statement, XML 1.0 has no
// way to write most C0 characters in a plist, and systemd unescapes them
// into an environment few programs expect; no real path needs one.
func checkServiceValues(data serviceData) error {
	for _, v := range []struct{ what, s string }{{"program path", data.Exe}, {"data home", data.Home}} {
		if i := strings.IndexFunc(v.s, unicode.IsControl); i >= 0 {
			r, _ := utf8.DecodeRuneInString(v.s[i:])
			return &exitError{code: 1, err: fmt.Errorf("the %s %q holds the control character %U; refusing to write it into a service definition", v.what, v.s, r),
				hint: "use a " + v.what + " without control characters (newline, tab, …)"}
		}
		if !utf8.ValidString(v.s) {
			return &exitError{code: 1, err: fmt.Errorf("the %s %q is not UTF-8; refusing to write it into a service definition", v.what, v.s),
				hint: "use a " + v.what + " whose name is UTF-8"}
		}
	}
	return nil
}

// powershellQuote quotes s as a PowerShell single-quoted string, in which
// nothing is expanded. PowerShell ends such a string at any of five
// characters, ASCII "'" and the typographic U+2018 to U+201B, and reads two
// of them in a row as the second: so each is doubled, not only ASCII "'"
// (a path such as C:\Users\O’Brien would otherwise end the string).
func powershellQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// systemdQuote quotes s as one word of a systemd unit setting, so that a
// path with a space, a quote or '%' reads back as itself: in double quotes,
// with '\' and '"' escaped by a backslash and control characters as C
// escapes, and '%' doubled (else it starts a specifier such as %h). A '$'
// stays as it is: systemd expands variables neither in Environment= nor in
// the program's path, the one word of ExecStart= that could hold one.
func systemdQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '\\' || r == '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '%':
			b.WriteString("%%")
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// userService is a service definition that 'service install' writes to a
// file of the user's and loads with the service manager's own command.
type userService struct {
	mgr    string
	path   string     // where the definition goes
	load   [][]string // the commands that load it, after it is written
	unload [][]string // the commands that stop and unload it, before it is removed
	reload [][]string // the commands that make the manager forget it, after it is removed
	hint   string     // what to do when the manager refuses the commands
}

// userServiceFor is where the definition for mgr goes and how it is loaded:
// a systemd user unit, enabled and started; or a launchd agent,
// bootstrapped into the user's GUI domain.
func userServiceFor(cfg config, mgr string) (userService, error) {
	userHome, err := userHomeDir(cfg.getenv)
	if err != nil {
		return userService{}, fmt.Errorf("find the home folder: %w", err)
	}
	if mgr == "launchd" {
		path := filepath.Join(userHome, "Library", "LaunchAgents", "dev.difflore.daemon.plist")
		domain := fmt.Sprintf("gui/%d", os.Getuid())
		// bootout first: bootstrap refuses an agent that is loaded already,
		// as it is after an earlier install.
		return userService{mgr: mgr, path: path,
			load:   [][]string{{"launchctl", "bootout", domain, path}, {"launchctl", "bootstrap", domain, path}},
			unload: [][]string{{"launchctl", "bootout", domain, path}},
			hint:   "launchctl needs your GUI session: run this in a terminal of the user logged in at the Mac",
		}, nil
	}
	configHome := cfg.getenv("XDG_CONFIG_HOME")
	if configHome == "" {
		configHome = filepath.Join(userHome, ".config")
	}
	unit := "difflore.service"
	return userService{mgr: mgr, path: filepath.Join(configHome, "systemd", "user", unit),
		load:   [][]string{{"systemctl", "--user", "daemon-reload"}, {"systemctl", "--user", "enable", "--now", unit}},
		unload: [][]string{{"systemctl", "--user", "disable", "--now", unit}},
		reload: [][]string{{"systemctl", "--user", "daemon-reload"}},
		hint: "systemctl --user needs your user session: log in as that user (ssh or a console, not su or sudo), or keep it with 'loginctl enable-linger'; " +
			"until then, hooks installed with --autostart start the daemon",
	}, nil
}

// install writes the definition and loads it. Running it again rewrites
// the definition (for a difflore that moved, say) and loads it afresh. A
// manager that refuses it leaves nothing installed: the definition that was
// there before is put back, or the file and the folders made for it are
// removed, and the error names the command that failed, with a hint.
func (u userService) install(cfg config, data serviceData) error {
	var b strings.Builder
	if err := writeServiceDefinition(&b, u.mgr, data); err != nil {
		return err
	}
	old, readErr := os.ReadFile(u.path)
	made := missingDirs(filepath.Dir(u.path))
	if err := os.MkdirAll(filepath.Dir(u.path), 0o755); err != nil {
		return err
	}
	if err := writeFileAtomicMode(u.path, []byte(b.String()), 0o644); err != nil {
		removeEmptyDirs(made)
		return fmt.Errorf("write %s: %w", u.path, err)
	}
	for i, c := range u.load {
		err := runServiceCommand(cfg, c)
		if err == nil || (u.mgr == "launchd" && i == 0) { // nothing to boot out on a first install
			continue
		}
		if readErr == nil {
			writeFileAtomicMode(u.path, old, 0o644)
		} else {
			os.Remove(u.path)
			removeEmptyDirs(made)
		}
		if i > 0 {
			// The manager read the definition: it forgets it again.
			for _, c := range u.reload {
				runServiceCommand(config{stderr: io.Discard}, c)
			}
		}
		return &exitError{code: 1, err: fmt.Errorf("%s failed (%v): the service was not installed", strings.Join(c, " "), errors.Unwrap(err)),
			hint: u.hint}
	}
	fmt.Fprintf(cfg.stdout, "wrote %s\n", u.path)
	fmt.Fprintf(cfg.stdout, "loaded and started it (%s)\n", strings.Join(u.load[len(u.load)-1], " "))
	return nil
}

// uninstall stops and unloads the service, then removes its definition,
// and says which of these happened. A service that is not loaded, or a
// file already gone, is no error.
func (u userService) uninstall(cfg config) error {
	if _, err := os.Stat(u.path); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(cfg.stdout, "not installed: no %s\n", u.path)
		return nil
	}
	failed := ""
	for _, c := range u.unload {
		if err := runServiceCommand(cfg, c); err != nil {
			fmt.Fprintf(cfg.stderr, "difflore: warning: %v\n", err)
			if failed == "" {
				failed = strings.Join(c, " ")
			}
		}
	}
	if err := os.Remove(u.path); err != nil {
		return err
	}
	for _, c := range u.reload {
		if err := runServiceCommand(cfg, c); err != nil {
			fmt.Fprintf(cfg.stderr, "difflore: warning: %v\n", err)
		}
	}
	if failed != "" {
		fmt.Fprintf(cfg.stdout, "removed %s; %s failed, so it was not stopped or disabled\n", u.path, failed)
		return nil
	}
	fmt.Fprintf(cfg.stdout, "stopped it and removed %s\n", u.path)
	return nil
}

// runServiceCommand runs a command of the service manager, its output
// passed on to difflore's standard error.
func runServiceCommand(cfg config, args []string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = cfg.stderr, cfg.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return nil
}
