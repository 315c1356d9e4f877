package main

import (
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

const serviceUsage = `
Usage: difflore service print systemd|launchd|windows

Prints what makes the daemon start at log-in and restart when it fails: a
systemd user unit, a launchd LaunchAgent, or a Windows Task Scheduler
command. The service runs 'difflore run --takeover' in the foreground,
logging to stderr (journald, or the log file launchd writes): it stops a
daemon a hook started for the same data home and takes its place, rather
than exiting 1 and being restarted for ever.

Examples:
  difflore service print systemd > ~/.config/systemd/user/difflore.service
  systemctl --user daemon-reload && systemctl --user enable --now difflore

  difflore service print launchd > ~/Library/LaunchAgents/dev.difflore.daemon.plist
  launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/dev.difflore.daemon.plist
`

// serviceData is what the service templates fill in. The endpoint and the
// token are not written into the files: the token is a secret, and both are
// read from an environment file the user keeps.
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
Environment={{envQuote "DIFFLORE_HOME" .Home}}
# DIFFLORE_CLOUD_URL=... and DIFFLORE_CLOUD_TOKEN=... go in this file (mode 0600).
EnvironmentFile=-%h/.config/difflore/env
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
		<!-- Add DIFFLORE_CLOUD_URL and DIFFLORE_CLOUD_TOKEN here; keep this file 0600. -->
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
	"windows": `REM Start the difflore daemon at log-on, in the background (run in cmd.exe):
schtasks /Create /F /SC ONLOGON /TN difflore /TR "\"{{.Exe}}\" run --detach --takeover"
REM Set the endpoint and token for your user once:
REM   setx DIFFLORE_CLOUD_URL https://...
REM   setx DIFFLORE_CLOUD_TOKEN ...
REM Start it now without logging off:
schtasks /Run /TN difflore
`,
}

func cmdService(cfg config, args []string) error {
	if usageAsked(cfg, args, serviceUsage, false) {
		return nil
	}
	if len(args) != 2 || args[0] != "print" {
		return &exitError{code: 2, err: fmt.Errorf("usage: difflore service print systemd|launchd|windows")}
	}
	_, ok := serviceTemplates[args[1]]
	if !ok {
		return &exitError{code: 2, err: fmt.Errorf("unknown service manager %q", args[1]), hint: "use systemd, launchd or windows"}
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
	return writeServiceDefinition(cfg.stdout, args[1], serviceData{Exe: exe, Home: home})
}

// writeServiceDefinition writes the definition for the service manager mgr
// (a key of serviceTemplates), with the values quoted as that format needs.
func writeServiceDefinition(w io.Writer, mgr string, data serviceData) error {
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
		"quote":    systemdQuote,
		"envQuote": func(k, v string) string { return systemdQuote(k + "=" + v) },
	}
	return template.Must(template.New(mgr).Funcs(funcs).Parse(serviceTemplates[mgr])).Execute(w, data)
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
