package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// underServiceManager reports whether the Service Control Manager started
// this process as a service. svc.IsWindowsService asks for a parent named
// services.exe in session 0; Wine runs its services.exe in session 1, so a
// parent of that name is taken as the manager too (on Windows, no other
// services.exe can be a process's parent).
func underServiceManager() bool {
	if ok, err := svc.IsWindowsService(); err == nil && ok {
		return true
	}
	return strings.EqualFold(parentImage(), "services.exe")
}

// parentImage is the file name of this process's parent, "" when it cannot
// be found.
func parentImage() string {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return ""
	}
	defer windows.CloseHandle(snap)
	ppid := uint32(os.Getppid())
	var e windows.ProcessEntry32
	e.Size = uint32(unsafe.Sizeof(e))
	for err = windows.Process32First(snap, &e); err == nil; err = windows.Process32Next(snap, &e) {
		if e.ProcessID == ppid {
			return windows.UTF16ToString(e.ExeFile[:])
		}
	}
	return ""
}

// runAsService runs the daemon under the Service Control Manager until it
// ends or the manager stops it (serveService); a daemon that fails ends
// the service with exit code 1, which the recovery actions restart.
func runAsService(ctx context.Context, run func(context.Context) error) error {
	h := &serviceHandler{ctx: ctx, run: run}
	if err := svc.Run(windowsServiceName, h); err != nil {
		return fmt.Errorf("run as a service: %w", err)
	}
	return h.err
}

// serviceHandler is the svc.Handler of the daemon: it passes the manager's
// requests to serveService and the states it reports back.
type serviceHandler struct {
	ctx context.Context
	run func(context.Context) error
	err error
}

func (h *serviceHandler) Execute(_ []string, changes <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	requests := make(chan serviceRequest)
	served := make(chan struct{})
	go func() {
		for c := range changes {
			var req serviceRequest
			switch c.Cmd {
			case svc.Interrogate:
				req = serviceInterrogate
			case svc.Stop:
				req = serviceStop
			case svc.Shutdown:
				req = serviceShutdown
			default:
				continue
			}
			select {
			case requests <- req:
			case <-served:
				return
			}
		}
	}()
	report := func(s serviceState) {
		switch s {
		case serviceRunning:
			status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
		case serviceStopPending:
			// The daemon gives a request in flight up to shutdownGrace.
			status <- svc.Status{State: svc.StopPending, WaitHint: uint32((shutdownGrace + 5*time.Second) / time.Millisecond)}
		}
	}
	h.err = serveService(h.ctx, requests, report, h.run)
	close(served)
	if h.err != nil {
		return false, 1
	}
	return false, 0
}

// installWindowsService registers 'difflore run --takeover' with the
// Service Control Manager, started at boot, with DIFFLORE_HOME set to home,
// restarted after a failure (5 s, then 5 s, then 30 s; the count resets
// after a day), and starts it. It needs an administrator. A manager that
// takes no recovery actions (Wine's) gets a warning on warn: the service
// runs, but nothing restarts it.
func installWindowsService(exe, home string, warn io.Writer) error {
	m, err := mgr.Connect()
	if err != nil {
		return adminError("connect to the service manager", err)
	}
	defer m.Disconnect()
	s, err := m.CreateService(windowsServiceName, exe, mgr.Config{
		DisplayName: "difflore",
		Description: "Delivers queued agent-hook events from " + home,
		StartType:   mgr.StartAutomatic,
	}, "run", "--takeover")
	if err != nil {
		return adminError("create the service", err)
	}
	defer s.Close()
	if err := setServiceEnv(home); err != nil {
		s.Delete()
		return err
	}
	actions := []mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
	}
	err = s.SetRecoveryActions(actions, uint32((24 * time.Hour).Seconds()))
	if err == nil {
		// A daemon that exits 1 (a damaged outbox, say) is a failure
		// too, not only a crash.
		err = s.SetRecoveryActionsOnNonCrashFailures(true)
	}
	if err != nil {
		fmt.Fprintf(warn, "difflore: warning: set recovery actions: %v; nothing restarts the service when it fails\n", err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start the service: %w", err)
	}
	return nil
}

// setServiceEnv gives the service its environment: the Service Control
// Manager reads it from the Environment value of the service's key.
func setServiceEnv(home string) error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SYSTEM\CurrentControlSet\Services\`+windowsServiceName, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("open the service's registry key: %w", err)
	}
	defer k.Close()
	if err := k.SetStringsValue("Environment", []string{"DIFFLORE_HOME=" + home}); err != nil {
		return fmt.Errorf("set the service's environment: %w", err)
	}
	return nil
}

// uninstallWindowsService stops the service, waits for it to stop, and
// removes it; it reports false when there was none.
func uninstallWindowsService() (bool, error) {
	m, err := mgr.Connect()
	if err != nil {
		return false, adminError("connect to the service manager", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(windowsServiceName)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return false, nil
	}
	if err != nil {
		return false, adminError("open the service", err)
	}
	defer s.Close()
	if st, err := s.Control(svc.Stop); err == nil {
		deadline := time.Now().Add(30 * time.Second)
		for st.State != svc.Stopped && time.Now().Before(deadline) {
			// The Service Control Manager gives no notice of a stop
			// short of NotifyServiceStatusChange's callbacks; 'net
			// stop' polls as this does.
			time.Sleep(300 * time.Millisecond)
			if st, err = s.Query(); err != nil {
				break
			}
		}
	}
	if err := s.Delete(); err != nil {
		return false, adminError("delete the service", err)
	}
	return true, nil
}

// adminError says that an administrator is needed when access was denied.
func adminError(what string, err error) error {
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return &exitError{code: 1, err: fmt.Errorf("%s: %w", what, err),
			hint: "run it as an administrator, or without one use the at-log-on task of 'difflore service print windows'"}
	}
	return fmt.Errorf("%s: %w", what, err)
}
