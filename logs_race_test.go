package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// reportReadyRaceEnv makes TestReportReadyWhileRotating's child do the
// racing: the redirection of standard output and error would take the test
// binary's own output with it.
const reportReadyRaceEnv = "DIFFLORE_TEST_REPORT_READY_RACE"

// TestReportReadyWhileRotating reports a detached daemon ready (which
// points standard output and error at the log) while the log rotates under
// other lines being logged, as the ready report from its timer may. Run
// with -race: the race detector's report lands in the logs, which the
// test prints.
func TestReportReadyWhileRotating(t *testing.T) {
	if dir := os.Getenv(reportReadyRaceEnv); dir != "" {
		reportReadyRaceChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReportReadyWhileRotating$", "-test.count=1")
	// The race detector's reports go to files of their own: the child's
	// standard error is the log, which rotates them away.
	cmd.Env = append(os.Environ(), reportReadyRaceEnv+"="+dir, "GORACE=log_path="+filepath.Join(dir, "race"))
	out, err := cmd.CombinedOutput()
	reports, _ := filepath.Glob(filepath.Join(dir, "race*"))
	var all strings.Builder
	for _, r := range reports {
		b, _ := os.ReadFile(r)
		all.Write(b)
	}
	if err != nil || all.Len() > 0 {
		t.Fatalf("child: %v\n%s\nrace reports:\n%s", err, out, all.String())
	}
}

func reportReadyRaceChild(t *testing.T, dir string) {
	f, err := openRotatingFile(filepath.Join(dir, logFileName), 4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := newLogger(f, true, 0)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			log.Info("line", "n", i, "pad", strings.Repeat("x", 100))
		}
	}()
	cfg := config{stdout: io.Discard}
	for range 50 {
		reportReady(cfg, os.Getpid(), f, log)
	}
	wg.Wait()
	fmt.Fprintln(os.Stderr, "child done")
}
