package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// versionTimeout bounds an agent's '--version', for status: an agent that
// hangs there must not hold status.
const versionTimeout = 3 * time.Second

// findVersion is the first release number, three dotted numbers, in s:
// a package.json's version or what '--version' prints ("2.1.197 (Claude
// Code)", "GitHub Copilot CLI 1.0.102.").
func findVersion(s string) string {
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') }) {
		parts := strings.Split(strings.Trim(w, "."), ".")
		if len(parts) >= 3 && parts[0] != "" && parts[1] != "" && parts[2] != "" {
			return strings.Join(parts[:3], ".")
		}
	}
	return ""
}

// installedVersion finds the version of the agent installed here, and
// where it read it, cheaply: the package.json of the npm package whose
// program is on PATH (no process started), else the first line of the
// program's --version. Empty when the agent is not on PATH or says no
// version.
func (a agentSpec) installedVersion() (version, source string) {
	for _, b := range a.binaries {
		p, err := exec.LookPath(b)
		if err != nil {
			continue
		}
		if v, src := packageVersion(p); v != "" {
			return v, src
		}
		ctx, cancel := context.WithTimeout(context.Background(), versionTimeout)
		out, _ := exec.CommandContext(ctx, p, "--version").Output()
		cancel()
		if v := findVersion(string(out)); v != "" {
			return v, p + " --version"
		}
		return "", p + " --version says none"
	}
	return "", "not on PATH"
}

// packageVersion is the version in the package.json of the npm package
// that holds program (npm links its bin there): the nearest package.json
// above where the link leads, up to node_modules.
func packageVersion(program string) (string, string) {
	target, err := filepath.EvalSymlinks(program)
	if err != nil {
		return "", ""
	}
	for d := filepath.Dir(target); filepath.Base(d) != "node_modules" && filepath.Dir(d) != d; d = filepath.Dir(d) {
		pj := filepath.Join(d, "package.json")
		data, err := os.ReadFile(pj)
		if err != nil {
			continue
		}
		var pkg struct{ Version string }
		if json.Unmarshal(data, &pkg) != nil || findVersion(pkg.Version) == "" {
			return "", ""
		}
		return findVersion(pkg.Version), pj
	}
	return "", ""
}

// versionTruth says which of the wired events the installed version fires,
// from the agent's table: its reference release and the releases known to
// differ (gaps).
func (a agentSpec) versionTruth(version, source string) string {
	if version == "" {
		return fmt.Sprintf("unknown version (%s); the wired events are from %s", source, a.reference)
	}
	var lacks, adds []string
	for _, g := range a.gaps {
		if g.upTo != "" && compareVersions(version, g.upTo) > 0 || g.since != "" && compareVersions(version, g.since) < 0 {
			continue
		}
		lacks = append(lacks, g.lacks...)
		adds = append(adds, g.adds...)
	}
	n := 0
	for _, e := range a.events {
		if !slices.Contains(lacks, e) {
			n++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s) fires %d of the %d wired events", a.display, version, source, n, len(a.events))
	if len(lacks) > 0 {
		fmt.Fprintf(&b, "; not %s", strings.Join(lacks, ", "))
	}
	if len(adds) > 0 {
		fmt.Fprintf(&b, "; it also fires %s, which difflore does not wire", strings.Join(adds, ", "))
	}
	if a.refVersion != "" && version != a.refVersion && len(lacks) == 0 && len(adds) == 0 {
		fmt.Fprintf(&b, ", as far as difflore knows (its list is of %s)", a.refVersion)
	}
	return b.String()
}

// compareVersions compares two dotted release numbers, part by part, as
// numbers: -1, 0 or 1.
func compareVersions(x, y string) int {
	xs, ys := strings.Split(x, "."), strings.Split(y, ".")
	for i := 0; i < len(xs) || i < len(ys); i++ {
		var a, b int
		if i < len(xs) {
			a, _ = strconv.Atoi(xs[i])
		}
		if i < len(ys) {
			b, _ = strconv.Atoi(ys[i])
		}
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	return 0
}
