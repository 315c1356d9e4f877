package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// readyTimeout bounds how long 'run --detach' waits for the daemon to be ready.
const readyTimeout = 30 * time.Second

// detachedEnv marks a daemon started in the background: it logs JSON to
// daemon.log. With the value "1" ('run --detach'), it also reports readiness
// on standard output and then moves its output to daemon.log; with "quiet"
// ('enqueue --ensure-daemon', which does not wait), its output is the log
// already.
const detachedEnv = "DIFFLORE_DETACHED"

// detachedEndpointEnv passes the --endpoint of 'run --detach' to the
// daemon it starts, which takes it as its own flag (so that status says
// "flag"); the daemon reads it only when detachedEnv is set.
const detachedEndpointEnv = "DIFFLORE_DETACHED_ENDPOINT"

// childArgs are the flags that give a detached daemon these options. The
// endpoint is not among them: it goes through the environment (childEnv),
// since a command line is there for anyone to read in ps, and an endpoint
// URL may hold credentials. The batch is, only when a flag gave it: else the
// daemon takes it from config.toml itself.
func (o runOptions) childArgs() []string {
	args := []string{"run", "--tick", o.tick.String(), "--log-level", strings.ToLower(o.logLevel.String())}
	if o.batchGiven {
		args = append(args, "--batch", strconv.Itoa(o.batch))
	}
	// Likewise the limits: only those a flag gave.
	if o.flagLimits.sizeFrom == fromFlag {
		args = append(args, "--max-size", strconv.FormatInt(o.flagLimits.maxSize, 10))
	}
	if o.flagLimits.ageFrom == fromFlag {
		args = append(args, "--max-age", o.flagLimits.maxAge.String())
	}
	// And allow_insecure: only when a flag gave it, so that the daemon
	// follows the file's when it reads the file again.
	if o.allowInsecureGiven {
		args = append(args, "--allow-insecure="+strconv.FormatBool(o.allowInsecure))
	}
	if o.takeover {
		args = append(args, "--takeover")
	}
	return args
}

// childEnv is how a detached daemon learns the endpoint: from the
// environment when the parent's came from a flag or the environment, else
// from config.toml, which it reads itself.
func (o runOptions) childEnv() []string {
	switch o.endpointSource {
	case fromFlag:
		return []string{"DIFFLORE_CLOUD_URL=", detachedEndpointEnv + "=" + o.endpoint}
	case fromEnv:
		return []string{"DIFFLORE_CLOUD_URL=" + o.endpoint, detachedEndpointEnv + "="}
	}
	return []string{"DIFFLORE_CLOUD_URL=", detachedEndpointEnv + "="}
}

// startDetached starts 'difflore run' as a detached background process and
// waits until it reports ready, or until it exits and says why.
func startDetached(ctx context.Context, cfg config, h home, opts runOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(exe, opts.childArgs()...)
	cmd.Env = append(os.Environ(), detachedEnv+"=1", "DIFFLORE_HOME="+h.dir)
	cmd.Env = append(cmd.Env, opts.childEnv()...)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = pw, pw
	if cmd, err = startDetachedProcess(cmd); err != nil {
		pw.Close()
		return fmt.Errorf("start daemon: %w", err)
	}
	pw.Close()

	type line struct {
		text string
		err  error
	}
	lines := make(chan line, 1)
	var out bytes.Buffer
	go func() {
		r := bufio.NewReader(pr)
		for {
			s, err := r.ReadString('\n')
			if strings.HasPrefix(s, "ready ") {
				lines <- line{text: s}
				return
			}
			out.WriteString(s)
			if err != nil {
				lines <- line{err: err}
				return
			}
		}
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case l := <-lines:
		if l.err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l.text, "ready ")))
			cmd.Process.Release()
			fmt.Fprintf(cfg.stdout, "started (pid %d)\n", pid)
			return nil
		}
		// The child exited before it was ready; its output says why.
		werr := cmd.Wait()
		cfg.stderr.Write(out.Bytes())
		code := cmd.ProcessState.ExitCode()
		if code == 0 {
			// A graceful exit before ready: a stop request came while it
			// started (a long salvage, say), which the next start finishes.
			return fmt.Errorf("the daemon was stopped before it was ready (see %s)", h.path(logFileName))
		}
		if code < 0 {
			return fmt.Errorf("daemon exited before it was ready: %v", werr)
		}
		return withCode(code, errSilent)
	case <-timer.C:
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("daemon not ready after %s; killed it (see %s)", readyTimeout, h.path(logFileName))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ensureDaemon starts a daemon in the background when none holds the lock,
// without waiting for it: enqueue calls it on the hook's fast path. When
// several hooks race here, the lock lets one daemon run and the others exit.
func ensureDaemon(cfg config, h home) error {
	held, err := lockHeld(h)
	if err != nil || held {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	logf, err := openRegular(h.path(logFileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, "run")
	cmd.Env = append(os.Environ(), detachedEnv+"=quiet", "DIFFLORE_HOME="+h.dir)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd, err = startDetachedProcess(cmd); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	return cmd.Process.Release()
}

// reportReady is the daemon's half of the handshake with 'run --detach':
// it tells the parent that it is ready, then stops writing to the parent's
// pipe, since the parent exits now and a write to a broken pipe would kill
// the daemon.
func reportReady(cfg config, pid int, logFile *rotatingFile, log *slog.Logger) {
	fmt.Fprintf(cfg.stdout, "ready %d\n", pid)
	if err := logFile.followStdio(); err != nil {
		log.Warn("redirect output to log", "error", err)
	}
}
