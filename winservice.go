package main

import "context"

// windowsServiceName is the name of the Windows service that 'service
// install windows' registers.
const windowsServiceName = "difflore"

// serviceRequest is a request of the Windows service manager to a running
// service, as serveService sees it.
type serviceRequest int

const (
	serviceInterrogate serviceRequest = iota // say what state the service is in
	serviceStop                              // the service is stopped
	serviceShutdown                          // the system shuts down
)

func (r serviceRequest) String() string {
	return [...]string{"interrogate", "stop", "shutdown"}[r]
}

// serviceState is a state that serveService reports to the service manager.
type serviceState int

const (
	serviceRunning serviceState = iota
	serviceStopPending
)

func (s serviceState) String() string {
	return [...]string{"running", "stop-pending"}[s]
}

// serveService runs the daemon (run) as a Windows service: it reports the
// service running, answers Interrogate with the state it is in, and on Stop
// or Shutdown reports a pending stop and cancels the daemon's context, the
// same graceful stop as 'difflore stop' asks for; then it waits for run to
// return and returns its error. The OS side (runAsService) turns the
// service manager's requests into these and the states back. It is apart
// from that side so that a test drives it with requests of its own.
func serveService(ctx context.Context, requests <-chan serviceRequest, report func(serviceState), run func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	state := serviceRunning
	report(state)
	for {
		select {
		case err := <-done:
			return err
		case req := <-requests:
			switch req {
			case serviceInterrogate:
				report(state)
			case serviceStop, serviceShutdown:
				state = serviceStopPending
				report(state)
				cancel()
			}
		}
	}
}
