package main

// wakeFileName is the named pipe in the data home through which enqueue
// wakes the daemon on Unix (notify_unix.go). Windows uses a named event
// instead, and has no such file.
const wakeFileName = "wake"

// An idle daemon waits for enqueue's wake-ups in the wake listener's own
// blocking system call (poll on Unix, WaitForMultipleObjects on Windows),
// with the safety net and any timer of its own as the call's timeout: not
// on a Go timer or channel. On an idle daemon, each Go timer woke the
// runtime's monitor thread ahead of it, which then kept waking until the
// timer had run; and a wake-up handed from a listening goroutine to the
// daemon's loop woke a second thread for it (BENCHMARKS.md has the
// figures).
//
// The wake-up is explicit, as Postfix's pickup FIFO is: enqueue sends it
// after its commit or its spill file (wakeDaemon), through a named pipe in
// the data home on Unix and a named event on Windows. It does not come
// from the file system, so the daemon's own writes (acknowledgements,
// vacuum) and an outbox file replaced under it announce nothing. Wake-ups
// that arrive before the daemon looks count as one, so a burst of enqueues
// costs the daemon a few passes, not one each.
//
// The OS files define, with the same names:
//
//   - wakeListener, the daemon's end of the wake-up, made by
//     listenWake(h home) (*wakeListener, error);
//   - (*wakeListener).wait(timeout time.Duration) (woke bool, err error),
//     which blocks until some wake-ups have been sent (woke) or timeout
//     has passed, and fails once the listener broke;
//     A wait also notices when what enqueue writes to is gone (the wake
//     pipe removed or replaced under an idle daemon: at once where the
//     data home can be watched, on Linux, else within pipeCheckEvery): it
//     makes it again and reports woke, so that what was queued meanwhile
//     is looked at, or fails when something else stands under its name;
//   - (*wakeListener).renewal() error, what the last wait found and
//     mended, once, for the daemon's log (nil on Windows);
//   - wakePipeProblem(h home) string, what is wrong with the wake pipe
//     of h ("missing", "not a named pipe"), "" when nothing (or on
//     Windows), for status and doctor;
//   - (*wakeListener).poke(), which wakes a wait from within the daemon
//     (its stop, SIGHUP), from any goroutine;
//   - (*wakeListener).release(), which frees it;
//   - wakeDaemon(h home), enqueue's end: it wakes the daemon of h if one
//     listens and does nothing otherwise, in a few microseconds, never
//     blocking and never failing the hook that called it.
