// Skips reads the JSON stream of `go test -json` (or of a test binary's
// output through `go tool test2json`) on stdin, prints what plain `go test`
// would print (the output of failed tests, and each package's closing line),
// then lists every skipped test with its reason, and exits 1 when a test
// failed or a skip is not on the allow-list.
//
//	go test -json ./... | go run .ci/skips/main.go -run root -allow .ci/skips.allow
//
// The allow-list has one skip a line: the run's name, a regular expression
// that the whole test name must match, and a comment saying why that skip
// is expected there:
//
//	root  ^TestStatusReadOnlyHome/read-only$  # root ignores mode bits
//
// CI runs the suite as root, as an unprivileged user and as a Windows
// program under Wine; a test that skips where nobody expected it is a branch
// that no run executes, so it fails CI until it is made to run or listed
// with its reason.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of test2json's output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// allowed is one line of the allow-list.
type allowed struct {
	run  string
	test *regexp.Regexp
	line string
}

// skip is one skipped test and the reason it logged.
type skip struct {
	name, reason string
}

func main() {
	runName := flag.String("run", "", "the name of this run, as the allow-list's first column")
	allowFile := flag.String("allow", "", "the allow-list")
	verbose := flag.Bool("v", false, "show every test's output, as go test -v does")
	flag.Parse()
	allow, err := readAllow(*allowFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "skips: %v\n", err)
		os.Exit(2)
	}
	skips, failed, err := follow(os.Stdin, os.Stdout, *verbose)
	if err != nil {
		fmt.Fprintf(os.Stderr, "skips: %v\n", err)
		os.Exit(2)
	}
	if report(os.Stdout, *runName, skips, allow) || failed {
		os.Exit(1)
	}
}

// readAllow reads the allow-list: blank lines and lines that start with #
// are comments.
func readAllow(name string) ([]allowed, error) {
	if name == "" {
		return nil, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var list []allowed
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[2] != "#" {
			return nil, fmt.Errorf("%s:%d: want RUN TEST-REGEXP # WHY, got %q", name, n+1, line)
		}
		re, err := regexp.Compile(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n+1, err)
		}
		list = append(list, allowed{run: fields[0], test: re, line: line})
	}
	return list, nil
}

// follow copies what plain `go test` shows to w (with verbose, what `go
// test -v` shows) and gathers the skips. A test's output is held until it
// ends: shown if it failed, kept as the reason if it skipped. A line that is
// not JSON (a build error) is shown as it is.
func follow(r io.Reader, w io.Writer, verbose bool) ([]skip, bool, error) {
	held := map[string][]string{}
	var skips []skip
	failed := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(w, sc.Text())
			continue
		}
		key := e.Package + " " + e.Test
		if verbose && e.Action == "output" {
			fmt.Fprint(w, e.Output)
		}
		switch {
		case e.Action == "output" && e.Test != "":
			held[key] = append(held[key], e.Output)
		case e.Action == "output":
			if !verbose {
				fmt.Fprint(w, e.Output) // a package's own lines: ok, FAIL, panics
			}
		case e.Action == "fail":
			failed = true
			if !verbose {
				fmt.Fprint(w, strings.Join(held[key], ""))
			}
			delete(held, key)
		case e.Action == "skip" && e.Test != "":
			skips = append(skips, skip{name: e.Test, reason: reasonOf(held[key])})
			delete(held, key)
		case e.Action == "pass" || e.Action == "skip":
			delete(held, key)
		}
	}
	return skips, failed, sc.Err()
}

// reasonOf keeps what a skipped test logged, without the lines the test
// runner writes itself.
func reasonOf(lines []string) string {
	var kept []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		kept = append(kept, t)
	}
	if len(kept) == 0 {
		return "(no reason given)"
	}
	return strings.Join(kept, " | ")
}

// report lists the skips, each marked allowed or not, and says whether any
// was not allowed.
func report(w io.Writer, runName string, skips []skip, allow []allowed) bool {
	sort.Slice(skips, func(i, j int) bool { return skips[i].name < skips[j].name })
	fmt.Fprintf(w, "\n%d skipped in the %s run:\n", len(skips), runName)
	bad := 0
	for _, s := range skips {
		mark := "NOT ALLOWED"
		for _, a := range allow {
			if a.run == runName && a.test.MatchString(s.name) {
				mark = "allowed"
				break
			}
		}
		if mark != "allowed" {
			bad++
		}
		fmt.Fprintf(w, "  %-11s %s: %s\n", mark, s.name, s.reason)
	}
	if bad > 0 {
		fmt.Fprintf(w, "%d skip(s) of the %s run are not on the allow-list (.ci/skips.allow): make the test run here, or list it with the reason\n", bad, runName)
		return true
	}
	return false
}
