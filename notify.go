package main

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
// The channel has room for one notice, and notices that find it full are
// dropped: one pending wake-up covers any number of commits, so a burst of
// enqueues costs the daemon a few passes, not one each. stop ends the
// watch.
func watchCommits(h home) (changes <-chan struct{}, stop func(), err error) {
	w, err := listenWake(h)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for w.wait() {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() {
		w.interrupt()
		<-done
		w.release()
	}, nil
}

// The OS files define, with the same names:
//
//   - wakeListener, the daemon's end of the wake-up, made by
//     listenWake(h home) (*wakeListener, error);
//   - (*wakeListener).wait() bool, which blocks until some wake-ups have
//     been sent (any number of them count as one) and returns false once
//     interrupt has been called or the listener broke;
//   - (*wakeListener).interrupt(), which makes wait return false, and
//     (*wakeListener).release(), which frees it once wait has returned;
//   - wakeDaemon(h home), enqueue's end: it wakes the daemon of h if one
//     listens and does nothing otherwise, in a few microseconds, never
//     blocking and never failing the hook that called it.
