package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// isTerminal reports whether a standard stream is a terminal: for output
// meant for a person (a progress bar, colours) rather than for a pipe or a
// file, and for input a person would type rather than a program hand over.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// useColor reports whether to colour output for w: only on a terminal, and
// never when NO_COLOR is set (https://no-color.org).
func useColor(cfg config, w io.Writer) bool {
	return cfg.getenv("NO_COLOR") == "" && cfg.getenv("TERM") != "dumb" && isTerminal(w)
}
