// Command detectorprobe is gitleaks' detector with its default rules linked
// into a program and nothing else: its size and its start-up are what
// difflore would carry and pay, at every enqueue too, were gitleaks its
// redactor. BENCHMARKS.md reports them.
//
// With no argument it exits at once, so that only package initialisation
// runs (GODEBUG=inittrace=1 shows it); with "scan" it also builds the
// detector and scans standard input, printing how long each took.
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "scan" {
		return
	}
	logging.Logger = zerolog.Nop()
	start := time.Now()
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "detectorprobe:", err)
		os.Exit(1)
	}
	built := time.Since(start)
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "detectorprobe:", err)
		os.Exit(1)
	}
	start = time.Now()
	findings := d.DetectBytes(in)
	fmt.Printf("detector built in %v (%d rules); %d bytes scanned in %v: %d findings\n",
		built, len(d.Config.Rules), len(in), time.Since(start), len(findings))
}
