//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// checkModes walks the data home and fails the test for a folder that is
// not 0700 or a file that is not 0600. It returns the names it saw.
func checkModes(t *testing.T, home, when string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(home, path)
		seen[filepath.ToSlash(rel)] = true
		want := fs.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want || fi.Mode()&fs.ModeSymlink != 0 {
			t.Errorf("%s: %s is %s, want %s", when, rel, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: walk the data home: %v", when, err)
	}
	return seen
}

// TestHomeModes creates every kind of file a data home holds (the outbox
// with its WAL, a spill file, the PID file, the lock, the log) under a
// umask of 0, so that no mode comes from the umask, and checks that the
// home is 0700 and each file 0600.
func TestHomeModes(t *testing.T) {
	// The test's folders are made first: under a umask of 0, t.TempDir
	// makes them 0777, and a home below them would be refused.
	home := testHome(t)
	out := filepath.Join(t.TempDir(), "events.jsonl")
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	mustCLI(t, "enqueue", "--id", "first", `{"n":1}`)
	// Make the outbox unwritable for a moment, so that the next event is
	// spilled by the real enqueue path.
	db := filepath.Join(home, dbFileName)
	if err := os.Rename(db, db+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := cli(t, "", "enqueue", "--id", "spilled", `{"n":2}`)
	if code != 0 || errOut != "" {
		t.Fatalf("enqueue with the outbox unwritable: exit %d, stderr %q; want exit 0 and nothing on stderr (status counts the spill)", code, errOut)
	}
	checkModes(t, home, "after a spill")
	if spills, _ := filepath.Glob(filepath.Join(home, spillDirName, "*.json")); len(spills) != 1 {
		t.Fatalf("%d spill files, want 1", len(spills))
	}
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(db+".away", db); err != nil {
		t.Fatal(err)
	}

	mustCLI(t, "run", "--detach", "--endpoint", fileURL(out))
	// This test checks the file sink's own file mode, so it waits on that file.
	waitFor(t, 20*time.Second, "both events delivered", func() bool { return len(readLines(t, out)) == 2 })
	seen := checkModes(t, home, "while the daemon runs")
	for _, name := range []string{dbFileName, dbFileName + "-wal", dbFileName + "-shm", gateFileName, pidFileName, lockFileName, logFileName, spillDirName} {
		if !seen[name] {
			t.Errorf("while the daemon runs, the home has no %s, so its mode went unchecked", name)
		}
	}
	mustCLI(t, "stop")
	checkModes(t, home, "after stop")
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file endpoint: %v, mode %v; want 0600", err, fi.Mode())
	}
}

// TestSymlinkHomeRefused points DIFFLORE_HOME at a symlink to a folder:
// every command refuses it and writes nothing where it leads.
func TestSymlinkHomeRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "home")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	testHome(t)
	t.Setenv("DIFFLORE_HOME", link)
	for _, args := range [][]string{
		{"enqueue", `{"n":1}`},
		{"run", "--endpoint", "file:///dev/null"},
		{"run", "--detach"},
		{"status"},
		{"stop"},
		{"outbox", "list"},
	} {
		out, errOut, code := cli(t, "", args...)
		if code == 0 || !strings.Contains(errOut, "symlink") {
			t.Errorf("difflore %s: exit %d, stderr %q; want a failure that names the symlink\n%s",
				strings.Join(args, " "), code, errOut, out)
		}
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("files were written through the symlinked home: %v", entries)
	}
}

// TestSymlinksInHomeNotWrittenThrough replaces the files of a data home
// with symlinks to a victim file outside it: nothing difflore does may
// change the victim, whatever name the symlink takes.
func TestSymlinksInHomeNotWrittenThrough(t *testing.T) {
	t.Parallel()
	for _, name := range []string{pidFileName, logFileName, dbFileName, lockFileName, gateFileName} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			home := e.home
			if _, err := openHome(home, true); err != nil {
				t.Fatal(err)
			}
			for _, victimData := range []string{"", "precious\n"} {
				victim := filepath.Join(t.TempDir(), "victim")
				if err := os.WriteFile(victim, []byte(victimData), 0o600); err != nil {
					t.Fatal(err)
				}
				link := filepath.Join(home, name)
				os.Remove(link)
				if err := os.Symlink(victim, link); err != nil {
					t.Fatal(err)
				}
				var shown strings.Builder
				for _, args := range [][]string{
					{"enqueue", `{"n":1}`},
					{"run", "--detach", "--endpoint", fileURL(filepath.Join(t.TempDir(), "out"))},
					{"status"},
					{"outbox", "list"},
					{"stop"},
				} {
					out, errOut, code := runProc(t, e.command(args...), 30*time.Second)
					fmt.Fprintf(&shown, "$ difflore %s (exit %d)\n%s%s", strings.Join(args, " "), code, out, errOut)
				}
				got, err := os.ReadFile(victim)
				if err != nil {
					t.Fatalf("victim: %v", err)
				}
				if string(got) != victimData {
					t.Errorf("a symlinked %s was written through: the victim went from %q to %d bytes\n%s", name, victimData, len(got), shown.String())
				}
			}
		})
	}
}

// TestSymlinkedSpillFolder replaces the spill folder with a symlink to a
// folder of someone else's files: enqueue must not spill into it, and the
// daemon must not replay, rename or delete what it holds.
func TestSymlinkedSpillFolder(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	e.mustCLI("enqueue", `{"n":0}`)
	victim := t.TempDir()
	files := map[string]string{"notes.json": "precious", "evt.json": `{"id":"evt","kind":"event","payload":"{}"}`}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(victim, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(victim, filepath.Join(home, spillDirName)); err != nil {
		t.Fatal(err)
	}
	// A folder where the outbox should be makes enqueue spill.
	db := filepath.Join(home, dbFileName)
	os.Rename(db, db+".away")
	os.Mkdir(db, 0o700)
	_, errOut, code := e.cli("", "enqueue", "--id", "lost", `{"n":1}`)
	if code == 0 {
		t.Errorf("enqueue spilled through a symlink: exit 0, %q", errOut)
	}
	os.Remove(db)
	os.Rename(db+".away", db)

	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	d := e.startDaemon("--endpoint", ep.URL)
	arr.awaitN(t, 1, 20*time.Second)
	e.mustCLI("stop")
	d.wait(t, 15*time.Second)
	if got := arr.counts(); len(got) != 1 || got["evt"] != 0 {
		t.Errorf("delivered %v, want the queued event only", got)
	}
	// The daemon looks at the spill folder before it first delivers, so
	// by now it has said why it will not replay it.
	if !strings.Contains(d.log.String(), "spill folder") {
		t.Errorf("the daemon did not report the symlinked spill folder:\n%s", d.log)
	}
	entries, _ := os.ReadDir(victim)
	if len(entries) != len(files) {
		t.Errorf("the folder behind the symlink changed: %v", entries)
	}
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(victim, name)); err != nil || string(got) != data {
			t.Errorf("%s behind the symlink: %q, %v", name, got, err)
		}
	}
}

// TestSymlinkedPIDFileNamesNoOne replaces a running daemon's PID file with
// a symlink to a file that describes an unrelated process exactly: stop
// must refuse to signal it, and must not signal the daemon on its strength.
func TestSymlinkedPIDFileNamesNoOne(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	e.useQuickWaits()
	d := e.startDaemon()
	bystander := startSleeper(t)
	info := pidInfo{PID: bystander.pid(), StartedAt: startedAt(t, bystander.pid()), Exe: bystander.cmd.Path, Version: "x"}
	fake := filepath.Join(t.TempDir(), "fake.pid")
	if err := os.WriteFile(fake, formatPIDFile(info), 0o600); err != nil {
		t.Fatal(err)
	}
	pidPath := filepath.Join(home, pidFileName)
	if err := os.Remove(pidPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fake, pidPath); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := e.cli("", "stop", "--grace", "1s")
	if code != 1 || !strings.Contains(errOut, "not signalling") {
		t.Errorf("stop: exit %d, %q %q; want exit 1, not signalling anyone", code, out, errOut)
	}
	if !bystander.alive() || !d.alive() {
		t.Fatalf("stop signalled someone: bystander alive %v, daemon alive %v", bystander.alive(), d.alive())
	}
	out, _, code = e.cli("", "status")
	if code == 0 || strings.Contains(out, fmt.Sprint(bystander.pid())) {
		t.Errorf("status trusts the symlinked pid file: exit %d\n%s", code, out)
	}
}

// TestUnwritableOutbox makes the outbox impossible to write in ways that
// bind even for root (a folder or a damaged file where the database should
// be; chmod 0400 too, which binds only when not root): enqueue must spill the event and exit
// 0 with a warning, and run must fail at once with a clear message instead
// of spinning.
func TestUnwritableOutbox(t *testing.T) {
	cases := map[string]func(t *testing.T, db string){
		"directory": func(t *testing.T, db string) {
			if err := os.Mkdir(db, 0o700); err != nil {
				t.Fatal(err)
			}
		},
		// A file that is not a database is no longer a reason to stop:
		// the daemon moves it aside and starts afresh (TestSalvageFails).
	}
	cases["read-only"] = func(t *testing.T, db string) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores a file's mode bits: the unprivileged run covers a read-only outbox")
		}
		mustCLI(t, "enqueue", "--id", "before", `{}`)
		if err := os.Chmod(db, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	for name, breakDB := range cases {
		t.Run(name, func(t *testing.T) {
			home := testHome(t)
			if _, err := openHome(home, true); err != nil {
				t.Fatal(err)
			}
			breakDB(t, filepath.Join(home, dbFileName))

			_, errOut, code := cli(t, "", "enqueue", "--id", "kept", `{"keep":"me"}`)
			if code != 0 || errOut != "" {
				t.Errorf("enqueue: exit %d, stderr %q; want exit 0 and nothing on stderr (status counts the spill)", code, errOut)
			}
			spills, _ := filepath.Glob(filepath.Join(home, spillDirName, "*.json"))
			if len(spills) != 1 {
				t.Fatalf("%d spill files, want 1", len(spills))
			}
			data, err := os.ReadFile(spills[0])
			if err != nil {
				t.Fatal(err)
			}
			var sp spilled
			if err := json.Unmarshal(data, &sp); err != nil || sp.ID != "kept" || sp.Payload != `{"keep":"me"}` {
				t.Errorf("spill file %s: %v", data, err)
			}

			// A run that waits or retries instead of giving up is killed,
			// and the test failed, at runProc's bound: exiting with 1
			// before it is the order asserted, not a duration.
			_, errOut, code = runProc(t, command(t, "run", "--endpoint", fileURL(filepath.Join(t.TempDir(), "out"))), 20*time.Second)
			if code != 1 || !strings.Contains(errOut, "outbox") || strings.Count(errOut, "\n") > 3 {
				t.Errorf("run: exit %d, stderr %q; want exit 1 and one clear message", code, errOut)
			}
			if _, err := os.Lstat(filepath.Join(home, pidFileName)); !os.IsNotExist(err) {
				t.Errorf("run left its pid file behind: %v", err)
			}
			t.Logf("run said: %s", strings.TrimSpace(errOut))
			// status still says what it can.
			out, errOut, code := cli(t, "", "status")
			if code != 3 || !strings.HasPrefix(out, "not running\n") {
				t.Errorf("status with a broken outbox: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}

// TestForeignOwnerRefused gives the data home, then the PID file, to
// another user: difflore must refuse to use the home, and must not trust
// the PID file. Only root can give files away, so the test needs root.
func TestForeignOwnerRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	const nobody = 65534
	home := testHome(t)
	mustCLI(t, "enqueue", `{}`)
	if err := os.Chown(home, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"enqueue", `{}`}, {"run"}, {"status"}, {"stop"}} {
		_, errOut, code := cli(t, "", args...)
		if code == 0 || !strings.Contains(errOut, "owned by uid 65534") {
			t.Errorf("difflore %s with a home of another user: exit %d, %q", strings.Join(args, " "), code, errOut)
		}
	}
	if err := os.Chown(home, 0, 0); err != nil {
		t.Fatal(err)
	}

	d := startDaemon(t)
	pidPath := filepath.Join(home, pidFileName)
	if err := os.Chown(pidPath, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, "", "stop", "--grace", "1s")
	if code != 1 || !strings.Contains(errOut, "owned by uid 65534") {
		t.Errorf("stop with a pid file of another user: exit %d, %q %q", code, out, errOut)
	}
	if !d.alive() {
		t.Fatal("stop signalled the daemon on the strength of another user's pid file")
	}
}

// TestFIFOsInHomeRefused puts a named pipe where the PID file, the log and
// the lock file belong. Opening a FIFO blocks until someone opens its other
// end, so a command that opened one as it opens a file hung for ever; each
// must instead return at once and say what it refuses. Each command runs as
// a child, bounded, so that a hang fails the test instead of the suite.
func TestFIFOsInHomeRefused(t *testing.T) {
	t.Parallel()
	type call struct {
		args []string
		code int    // the exit code wanted
		want string // in what it prints
	}
	for _, tc := range []struct {
		name  string
		calls []call
	}{
		{pidFileName, []call{
			{[]string{"stop"}, 1, "not a regular file"},
			{[]string{"status"}, 1, ""},
			{[]string{"run"}, 1, "not a regular file"},
		}},
		{logFileName, []call{
			{[]string{"logs"}, 1, "not a regular file"},
			{[]string{"logs", "-f"}, 1, "not a regular file"},
			{[]string{"run", "--detach"}, 1, "not a regular file"},
			// A hook must not hang on it either; the event is kept.
			{[]string{"enqueue", "--ensure-daemon", `{}`}, 0, "not a regular file"},
		}},
		{lockFileName, []call{
			{[]string{"status"}, 4, "not a regular file"},
			{[]string{"stop"}, 1, "not a regular file"},
			{[]string{"run"}, 1, "not a regular file"},
		}},
		{gateFileName, []call{
			// The event is kept in the spill folder, silently: a hook's
			// stderr is shown by the agent; run says what is wrong.
			{[]string{"enqueue", `{}`}, 0, ""},
			{[]string{"run"}, 1, "not a regular file"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			home := e.home
			if _, err := openHome(home, true); err != nil {
				t.Fatal(err)
			}
			fifo := filepath.Join(home, tc.name)
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.calls {
				out, errOut, code := runProc(t, e.command(c.args...), 15*time.Second)
				if code != c.code || !strings.Contains(out+errOut, c.want) {
					t.Errorf("difflore %s with a FIFO %s: exit %d, stderr %q, stdout %q; want exit %d and %q",
						strings.Join(c.args, " "), tc.name, code, errOut, out, c.code, c.want)
				}
				if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
					t.Fatalf("difflore %s replaced or removed the FIFO: %v", strings.Join(c.args, " "), err)
				}
			}
		})
	}
}

// TestSharedFolderAsHomeRefused points DIFFLORE_HOME at folders that other
// users may write (a sticky, world-writable one as /tmp is, and a
// group-writable one): every command refuses it with a hint, and none
// changes its mode (a chmod once turned a shared folder into 0700 and
// dropped its sticky bit). A folder of ours that only we can write is used
// as it is, 0755 included, and a missing one is created 0700.
//
// The subtests that pass the home in their own environment (testEnv) run
// in parallel; "new" sets the process's umask, so it runs alone, while
// they wait for the test's body to end.
func TestSharedFolderAsHomeRefused(t *testing.T) {
	for _, mode := range []fs.FileMode{0o777 | fs.ModeSticky, 0o770, 0o702} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "shared")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			e := newTestEnv(t)
			e.setenv("DIFFLORE_HOME", dir)
			for _, args := range [][]string{
				{"enqueue", `{"n":1}`},
				{"run", "--endpoint", "file:///dev/null"},
				{"status"},
				{"stop"},
				{"outbox", "list"},
				{"logs"},
			} {
				out, errOut, code := runProc(t, e.command(args...), 20*time.Second)
				if code == 0 || !strings.Contains(errOut, "writable by others") || !strings.Contains(errOut, "hint:") {
					t.Errorf("difflore %s with a home of mode %s: exit %d, stderr %q; want a refusal that says why, with a hint\n%s",
						strings.Join(args, " "), mode, code, errOut, out)
				}
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() &^ fs.ModeDir; got != mode {
				t.Errorf("the folder's mode went from %s to %s", mode, got)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files were written in the refused home: %v", entries)
			}
		})
	}

	t.Run("0755 of ours", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "home")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		e := newTestEnv(t)
		e.setenv("DIFFLORE_HOME", dir)
		e.mustCLI("enqueue", `{"n":1}`)
		if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("the home's mode: %v, %v; want 0755 unchanged", fi.Mode(), err)
		}
	})

	t.Run("new", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "home")
		testHome(t)
		old := syscall.Umask(0) // after t.TempDir, which it would make 0777
		defer syscall.Umask(old)
		t.Setenv("DIFFLORE_HOME", dir)
		mustCLI(t, "enqueue", `{"n":1}`)
		if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("the new home's mode: %v, %v; want 0700", fi.Mode(), err)
		}
	})
}

// TestPlantedFilesRefused gives one file or folder of a data home at a time
// to another user, as if planted before the home was private: an outbox of
// theirs would let them read every event, a spill folder of theirs would
// let them feed events in. difflore must refuse the home rather than use
// them. Only root can give files away, so the test needs root.
func TestPlantedFilesRefused(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	const nobody = 65534
	for _, name := range []string{dbFileName, dbFileName + "-wal", gateFileName, spillDirName, logFileName, pidFileName, lockFileName} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			home := e.home
			e.mustCLI("enqueue", `{"n":0}`)
			path := filepath.Join(home, name)
			if name == spillDirName {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			} else {
				f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600) // keeps the outbox's data
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			if err := os.Chown(path, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"enqueue", `{"n":1}`},
				{"run", "--endpoint", "file:///dev/null"},
				{"status"},
				{"stop"},
				{"outbox", "list"},
				{"logs"},
			} {
				out, errOut, code := runProc(t, e.command(args...), 20*time.Second)
				if code == 0 || !strings.Contains(errOut, "owned by uid 65534") || !strings.Contains(errOut, name) {
					t.Errorf("difflore %s with %s owned by another user: exit %d, stderr %q; want a refusal that names it\n%s",
						strings.Join(args, " "), name, code, errOut, out)
				}
			}
			if err := os.Chown(path, 0, 0); err != nil {
				t.Fatal(err)
			}
			if c := outboxCounts(t, home); c.Pending != 1 {
				t.Errorf("%d events in the outbox, want only the one queued before", c.Pending)
			}
		})
	}
}

// TestUnsafeAncestorRefused puts the data home inside a folder that another
// user may write: she could rename the home's folder away and put a
// symlink in its place between difflore's check of the home and its open
// of outbox.db (O_NOFOLLOW guards the last element only), and have the
// events written to an outbox of hers. difflore must refuse such a home, as
// ssh refuses a key below a folder others may write, and accept one below a
// sticky folder as /tmp is, where no one may rename what is not theirs.
func TestUnsafeAncestorRefused(t *testing.T) {
	const nobody = 65534
	refused := []struct {
		name  string
		mode  fs.FileMode
		owner int // -1: ours
	}{
		{"world-writable", 0o777, -1},
		{"group-writable", 0o770, -1},
		{"world-writable, another user's", 0o777, nobody},
		{"another user's", 0o755, nobody},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if tt.owner >= 0 && os.Geteuid() != 0 {
				t.Skip("needs root: giving a folder to another user")
			}
			parent := filepath.Join(t.TempDir(), "shared")
			home := filepath.Join(parent, "mine", "home")
			if err := os.MkdirAll(home, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(parent, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.owner >= 0 {
				if err := os.Chown(parent, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			testHome(t)
			t.Setenv("DIFFLORE_HOME", home)
			for _, args := range [][]string{{"enqueue", `{"n":1}`}, {"status"}, {"outbox", "list"}, {"run", "--endpoint", "file:///dev/null"}} {
				_, errOut, code := cli(t, "", args...)
				if code == 0 || !strings.Contains(errOut, strconv.Quote(parent)) || !strings.Contains(errOut, "hint:") {
					t.Errorf("difflore %s below a folder of mode %s: exit %d, stderr %q; want a refusal that names %q, with a hint",
						strings.Join(args, " "), tt.mode, code, errOut, parent)
				}
			}
			if entries, _ := os.ReadDir(home); len(entries) != 0 {
				t.Errorf("files were written in the refused home: %v", entries)
			}
		})
	}

	t.Run("sticky", func(t *testing.T) {
		parent := filepath.Join(t.TempDir(), "tmp")
		if err := os.Mkdir(parent, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(parent, 0o777|fs.ModeSticky); err != nil {
			t.Fatal(err)
		}
		testHome(t)
		t.Setenv("DIFFLORE_HOME", filepath.Join(parent, "a", "home"))
		mustCLI(t, "enqueue", `{"n":1}`)
		mustCLI(t, "outbox", "list")
	})
}

// BenchmarkOpenHome measures the check of the data home that every enqueue
// makes, and beside it the walk up its ancestors alone (ancestors-ns), for
// a home five folders below the root as t.TempDir's are. ns/op counts both.
func BenchmarkOpenHome(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "a", "b", "home")
	if _, err := openHome(dir, true); err != nil {
		b.Fatal(err)
	}
	var walk time.Duration
	n := 0
	for b.Loop() {
		if _, err := openHome(dir, false); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := checkAncestors(dir); err != nil {
			b.Fatal(err)
		}
		walk += time.Since(t0)
		n++
	}
	b.ReportMetric(float64(walk.Nanoseconds())/float64(n), "ancestors-ns")
}
