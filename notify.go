package main

import "time"

// wakeFileName is the named pipe in the data home through which enqueue
// wakes the daemon on Unix (notify_unix.go). Windows uses a named event
// instead, and has no such file.
const wakeFileName = "wake"

// watchCommits reports that another process has queued something for the
// daemon: an idle daemon then wakes the moment a hook enqueues instead of
// finding out at its next poll, and sleeps undisturbed otherwise. The
// notice is explicit, as Postfix's pickup FIFO is: enqueue sends it after
// its commit or its spill file (wakeDaemon), through a named pipe in the
// data home on Unix and a named event on Windows. It does not come from
// the file system, so the daemon's own writes (acknowledgements, vacuum)
// and an outbox file replaced under it announce nothing.
//
// The safety net is part of the same wait: when tick passes without a
// wake-up, the channel gets a notice all the same, and the daemon looks at
// everything once. The wait for it is one blocking system call with a
// timeout (poll on Unix, WaitForMultipleObjects on Windows) in a thread of
// its own, not a Go timer: a timer wakes the Go runtime's monitor thread
// ahead of time, which then spins in 20 µs sleeps until the timer has run,
// and that cost an idle daemon 10 to 20 context switches a pass.
//
// The channel has room for one notice, and notices that find it full are
// dropped: one pending wake-up covers any number of commits, so a burst of
// enqueues costs the daemon a few passes, not one each. If the listener
// breaks, a timer takes over the safety net. stop ends the watch.
func watchCommits(h home, tick time.Duration) (changes <-chan struct{}, stop func(), err error) {
	w, err := listenWake(h)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for w.wait(tick) {
			notify()
		}
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				notify()
			case <-quit:
				return
			}
		}
	}()
	return ch, func() {
		close(quit)
		w.interrupt()
		<-done
		w.release()
	}, nil
}

// The OS files define, with the same names:
//
//   - wakeListener, the daemon's end of the wake-up, made by
//     listenWake(h home) (*wakeListener, error);
//   - (*wakeListener).wait(timeout time.Duration) bool, which blocks until
//     some wake-ups have been sent (any number of them count as one) or
//     timeout has passed, and returns false once interrupt has been called
//     or the listener broke;
//   - (*wakeListener).interrupt(), which makes wait return false, and
//     (*wakeListener).release(), which frees it once wait has returned;
//   - wakeDaemon(h home), enqueue's end: it wakes the daemon of h if one
//     listens and does nothing otherwise, in a few microseconds, never
//     blocking and never failing the hook that called it.
