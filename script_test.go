package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the end-to-end scripts in testdata/script: the CLI as a
// user drives it, with real processes. Each script has its own data home
// and user's home, passed to its commands in their environment (Setup,
// runDifflore), so the scripts run in parallel with the other tests too.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			home := env.WorkDir + string(os.PathSeparator) + "home"
			env.Setenv("DIFFLORE_HOME", home)
			env.Setenv("DIFFLORE_CLOUD_URL", "")
			env.Setenv("DIFFLORE_CLOUD_TOKEN", "")
			// A script that fails before its 'difflore stop' would leave the
			// daemon it started running, in a folder that is then deleted.
			env.Defer(func() { stopScriptDaemon(home) })
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitlines":   cmdWaitLines,
			"exitcode":    cmdExitCode,
			"waitstatus":  cmdWaitStatus,
			"answer":      cmdAnswer,
			"futureevent": cmdFutureEvent,
		},
	})
}

// cmdWaitLines: waitlines FILE N — waits (at most 20 s) until FILE has at
// least N lines.
func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: waitlines FILE N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("waitlines: %v", err)
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if got := strings.Count(string(data), "\n"); got >= n {
			return
		} else if time.Now().After(deadline) {
			ts.Fatalf("waitlines: %s has %d lines after 20s, want %d", args[0], got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdExitCode: exitcode [-stdin FILE] N ARGS… — runs difflore ARGS… (with
// FILE on its standard input) and checks that it exits with code N; its
// output goes to .exitcode-stdout and .exitcode-stderr, for grep.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	var stdin string
	if len(args) > 2 && args[0] == "-stdin" {
		stdin, args = ts.ReadFile(args[1]), args[2:]
	}
	if len(args) < 1 || neg {
		ts.Fatalf("usage: exitcode [-stdin FILE] N [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	out, errOut, got := runDifflore(ts, stdin, args[1:]...)
	ts.Logf("[stdout]\n%s[stderr]\n%s", out, errOut)
	ts.Check(os.WriteFile(ts.MkAbs(".exitcode-stdout"), []byte(out), 0o600))
	ts.Check(os.WriteFile(ts.MkAbs(".exitcode-stderr"), []byte(errOut), 0o600))
	if got != want {
		ts.Fatalf("difflore %s: exit %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// runDifflore runs difflore ARGS… as a child, in the script's work folder
// and data home, with stdin on its standard input, and returns its output
// and exit code.
func runDifflore(ts *testscript.TestScript, stdin string, args ...string) (stdout, stderr string, code int) {
	exe, err := os.Executable()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = ts.Getenv("WORK")
	// The script's own home and PATH, never the test process's: a script
	// that sets HOME for an agent's files, or puts a fake systemctl on
	// PATH, must not reach the real ones through a child.
	cmd.Env = append(os.Environ(), asMainEnv+"=1",
		"DIFFLORE_HOME="+ts.Getenv("DIFFLORE_HOME"),
		"DIFFLORE_CLOUD_URL="+ts.Getenv("DIFFLORE_CLOUD_URL"),
		"DIFFLORE_CLOUD_TOKEN="+ts.Getenv("DIFFLORE_CLOUD_TOKEN"),
		"HOME="+ts.Getenv("HOME"), "USERPROFILE="+ts.Getenv("USERPROFILE"),
		"XDG_CONFIG_HOME="+ts.Getenv("XDG_CONFIG_HOME"), "PATH="+ts.Getenv("PATH"))
	var out, errOut strings.Builder
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("difflore %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// cmdWaitStatus: waitstatus REGEXP — runs 'difflore status' until a line of
// its output matches REGEXP (at most 20 s): a file endpoint has an event
// before the daemon acknowledges it in the outbox, so status can show it
// inflight for a moment after the line is in the file.
func cmdWaitStatus(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: waitstatus REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	if err != nil {
		ts.Fatalf("waitstatus: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, _ := runDifflore(ts, "", "status")
		if re.MatchString(out) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitstatus: no line matches %q after 20s; status says:\n%s", args[0], out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopScriptDaemon runs 'difflore stop' for a script's data home, bounded,
// whatever the script did: after a stop that ran, it finds nothing to do.
func stopScriptDaemon(home string) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "stop", "--grace", "5s")
	cmd.Env = append(os.Environ(), asMainEnv+"=1", "DIFFLORE_HOME="+home)
	cmd.Run()
}
