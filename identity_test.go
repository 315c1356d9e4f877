package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// identityEvents is how many events each outbox of the identity tests
// holds.
const identityEvents = 1000

// fillHome queues identityEvents events, ids prefix-0000 on, one
// transaction each as hooks write them, through one connection held open
// as a daemon holds it. It returns the bytes of the outbox's WAL as they
// were while that connection was open (a backup taken while a daemon ran),
// then closes the connection, which checkpoints every event into
// outbox.db and removes the WAL.
func fillHome(t *testing.T, h home, prefix string) (wal []byte) {
	t.Helper()
	ob := mustOutbox(t, h, time.Now)
	created := time.Now().Add(-time.Hour)
	for i := range identityEvents {
		p := fmt.Sprintf(`{"n":%d,"pad":"%0200d"}`, i, i)
		if err := ob.insert(fmt.Sprintf("%s-%04d", prefix, i), "event", []byte(p), created.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	wal, err := os.ReadFile(h.path(dbFileName) + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.path(dbFileName) + "-wal"); !os.IsNotExist(err) {
		t.Fatalf("the WAL of %s outlived its last connection: %v", h.dir, err)
	}
	return wal
}

// fillHomeByHooks is fillHome through enqueue's path alone (enqueueDB, one
// connection an event), as hooks fill a home that no daemon has opened. A
// reader holds the database meanwhile, so that the WAL outlives each
// hook's connection and can be read whole before the last close
// checkpoints it.
func fillHomeByHooks(t *testing.T, h home, prefix string) (wal []byte) {
	t.Helper()
	if err := enqueueDB(h.path(dbFileName), time.Second, prefix+"-first", "event", []byte(`{}`), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	holder, err := openConn(h.path(dbFileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Hour)
	for i := range identityEvents - 1 {
		p := fmt.Sprintf(`{"n":%d,"pad":"%0200d"}`, i, i)
		if err := enqueueDB(h.path(dbFileName), time.Second, fmt.Sprintf("%s-%04d", prefix, i), "event", []byte(p), created.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if wal, err = os.ReadFile(h.path(dbFileName) + "-wal"); err != nil {
		t.Fatal(err)
	}
	holder.Close()
	if _, err := os.Stat(h.path(dbFileName) + "-wal"); !os.IsNotExist(err) {
		t.Fatalf("the WAL of %s outlived its last connection: %v", h.dir, err)
	}
	return wal
}

// identityDelivery is what an identity test's daemon delivered.
type identityDelivery struct {
	own, foreign int // events of this home, of the other one
	newSeen      bool
	hookSeen     bool // the event a hook enqueued before the daemon started
	gaps         []gapPayload
}

func readIdentityDelivery(t *testing.T, evs []wireEvent) identityDelivery {
	t.Helper()
	var d identityDelivery
	seen := map[string]bool{}
	for _, ev := range evs {
		switch {
		case ev.Kind == gapKind:
			var g gapPayload
			if err := json.Unmarshal(ev.Payload, &g); err != nil {
				t.Fatal(err)
			}
			d.gaps = append(d.gaps, g)
		case ev.ID == "new-after":
			d.newSeen = true
		case ev.ID == "hook-before":
			d.hookSeen = true
		case seen[ev.ID]:
		case strings.HasPrefix(ev.ID, "own-"):
			seen[ev.ID] = true
			d.own++
		case strings.HasPrefix(ev.ID, "other-"):
			seen[ev.ID] = true
			d.foreign++
		}
	}
	return d
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestForeignOutbox puts half of another home's outbox beside this one's,
// as a backup restored by halves does: the other outbox's WAL beside this
// outbox.db (this one's own WAL gone), or the other outbox.db in place of
// this one. None of the other home's events may go out under this home,
// and every event of this home is delivered or counted in a gap.
func TestForeignOutbox(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		restore func(t *testing.T, own, other home, otherWAL []byte)
		ownKept bool // this home's events are all still there to deliver
		// hooksOnly fills both homes through enqueue's own path, as a
		// home that no daemon or command ever opened is filled.
		hooksOnly bool
	}{
		{"foreign wal", func(t *testing.T, own, _ home, otherWAL []byte) {
			if err := os.WriteFile(own.path(dbFileName)+"-wal", otherWAL, 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"foreign wal, hooks only", func(t *testing.T, own, _ home, otherWAL []byte) {
			if err := os.WriteFile(own.path(dbFileName)+"-wal", otherWAL, 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, true},
		{"foreign db", func(t *testing.T, own, other home, _ []byte) {
			b, err := os.ReadFile(other.path(dbFileName))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(own.path(dbFileName), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			dir := e.home
			e.useQuickWaits()
			own := mustOpenHomeCreate(t, dir)
			other := mustOpenHomeCreate(t, filepath.Join(t.TempDir(), "other"))
			fill := fillHome
			if c.hooksOnly {
				fill = fillHomeByHooks
			}
			fill(t, own, "own")
			otherWAL := fill(t, other, "other")
			c.restore(t, own, other, otherWAL)

			// A command that opens the outbox (status, outbox list) must
			// neither read the other home's events as this one's nor,
			// as it closes, write them into this outbox.db.
			before := fileSum(t, own.path(dbFileName))
			if ob, err := openOutbox(own, time.Second, time.Now); err == nil {
				n, _ := ob.counts()
				ob.Close()
				t.Errorf("the outbox opened with another home's half in it (%d pending)", n.Pending)
			}
			if fileSum(t, own.path(dbFileName)) != before {
				t.Errorf("opening the outbox changed outbox.db")
			}

			// A hook before the daemon starts: its event is kept, and
			// the other half is not applied as its connection closes.
			e.mustCLI("enqueue", "--id", "hook-before", `{"before":true}`)
			if fileSum(t, own.path(dbFileName)) != before {
				t.Errorf("enqueue changed outbox.db")
			}

			arr := newArrivals()
			ep := newEndpoint(t, arr.script(200))
			logs := e.inProcessDaemon("--endpoint", ep.URL)
			e.mustCLI("enqueue", "--id", "new-after", `{"after":true}`)
			arr.awaitEvents(t, 60*time.Second, "the new event and the hook's", func(evs []wireEvent) bool {
				d := readIdentityDelivery(t, evs)
				return d.newSeen && d.hookSeen
			})
			// The acknowledgement after the endpoint's answer signals
			// nothing a test can wait on: poll the outbox until it is empty.
			waitFor(t, 60*time.Second, "an empty outbox", func() bool {
				n := outboxCounts(t, dir)
				return n.Pending == 0 && n.Inflight == 0
			})
			d := readIdentityDelivery(t, arr.events())
			t.Logf("delivered: %d of this home, %d of the other, gaps %+v", d.own, d.foreign, d.gaps)
			if d.foreign != 0 {
				t.Errorf("%d events of the other home delivered under this one", d.foreign)
			}
			var lost int64
			for _, g := range d.gaps {
				lost += g.Evicted
			}
			if len(d.gaps) == 0 {
				t.Errorf("no gap event: the damage went unreported")
			}
			if c.ownKept && int64(d.own)+lost != identityEvents {
				t.Errorf("%d events of this home delivered and %d reported lost, want %d in all", d.own, lost, identityEvents)
			}
			if !c.ownKept && d.own != 0 {
				t.Errorf("%d events of this home delivered from the other home's file", d.own)
			}
			if t.Failed() {
				t.Logf("daemon log:\n%s", logs)
			}
		})
	}
}

// TestOutboxIdentityAdopted opens an outbox made by a difflore before the
// outbox's id (no outbox.id, no id in the database) with events queued:
// the daemon adopts an id and delivers every event, with no gap, and the
// id then tells a foreign WAL apart.
func TestOutboxIdentityAdopted(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	h := mustOpenHomeCreate(t, dir)
	// The previous release's enqueue: schema, rows, no id.
	conn, err := openConn(h.path(dbFileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(conn.Conn); err != nil {
		t.Fatal(err)
	}
	for i := range identityEvents {
		if err := insertEvent(conn.Conn, fmt.Sprintf("own-%04d", i), "event", []byte(`{"old":true}`), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	if _, err := os.Stat(h.path(idFileName)); !os.IsNotExist(err) {
		t.Fatalf("outbox.id before any daemon ran: %v", err)
	}

	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	logs := e.inProcessDaemon("--endpoint", ep.URL)
	e.mustCLI("enqueue", "--id", "new-after", `{"after":true}`)
	var d identityDelivery
	arr.awaitEvents(t, 60*time.Second, "every event", func(evs []wireEvent) bool {
		d = readIdentityDelivery(t, evs)
		return d.newSeen && d.own == identityEvents
	})
	if len(d.gaps) != 0 {
		t.Errorf("gaps %+v adopting an id\n%s", d.gaps, logs)
	}
	id, found, err := readHomeID(h)
	if err != nil || !found {
		t.Fatalf("outbox.id after the daemon started: %v, %v", found, err)
	}
	ob := mustOutbox(t, h, time.Now)
	got, err := readDBIdentity(ob.conn)
	ob.Close()
	if err != nil || !got.is(id) {
		t.Errorf("outbox holds id %08x/%q, outbox.id %s (%v)", uint32(got.app), got.meta, id, err)
	}
}

// TestEnqueueLeavesForeignWAL runs a hook's enqueue on an outbox that has
// another outbox's WAL beside it, before any daemon looks: the enqueue
// must not apply that WAL to outbox.db (a connection that closes last
// checkpoints it), and must keep its event (spill).
func TestEnqueueLeavesForeignWAL(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	own := mustOpenHomeCreate(t, dir)
	other := mustOpenHomeCreate(t, filepath.Join(t.TempDir(), "other"))
	fillHome(t, own, "own")
	otherWAL := fillHome(t, other, "other")
	if err := os.WriteFile(own.path(dbFileName)+"-wal", otherWAL, 0o600); err != nil {
		t.Fatal(err)
	}
	db := fileSum(t, own.path(dbFileName))
	wal := fileSum(t, own.path(dbFileName)+"-wal")

	e.mustCLI("enqueue", "--id", "hook-event", `{"hook":true}`)
	if fileSum(t, own.path(dbFileName)) != db {
		t.Errorf("enqueue changed outbox.db: the other outbox's WAL was applied to it")
	}
	if _, err := os.Stat(own.path(dbFileName) + "-wal"); err != nil || fileSum(t, own.path(dbFileName)+"-wal") != wal {
		t.Errorf("enqueue changed or removed the WAL: %v", err)
	}
	spilled, _ := os.ReadDir(own.path(spillDirName))
	if len(spilled) != 1 {
		t.Errorf("%d spill files, want the event in one", len(spilled))
	}
}

// TestDoctorLeavesForeignWAL runs doctor, which changes nothing, on an
// outbox with another outbox's WAL beside it: it must say so, and leave
// both files as they are.
func TestDoctorLeavesForeignWAL(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	own := mustOpenHomeCreate(t, dir)
	other := mustOpenHomeCreate(t, filepath.Join(t.TempDir(), "other"))
	fillHome(t, own, "own")
	otherWAL := fillHome(t, other, "other")
	if err := os.WriteFile(own.path(dbFileName)+"-wal", otherWAL, 0o600); err != nil {
		t.Fatal(err)
	}
	db := fileSum(t, own.path(dbFileName))
	out, _, _ := e.cli("", "doctor")
	if fileSum(t, own.path(dbFileName)) != db {
		t.Errorf("doctor changed outbox.db: the other outbox's WAL was applied to it")
	}
	if _, err := os.Stat(own.path(dbFileName) + "-wal"); err != nil {
		t.Errorf("doctor removed the WAL: %v", err)
	}
	if !strings.Contains(out, "another data home") {
		t.Errorf("doctor does not say that the outbox holds another's files:\n%s", out)
	}
}

func TestJudgeIdentity(t *testing.T) {
	home, other := newOutboxID(), newOutboxID()
	stamped := func(id outboxID) dbIdentity { return dbIdentity{app: id.appID(), meta: id.String()} }
	cases := []struct {
		name    string
		known   bool
		d       dbIdentity
		foreign bool
		stamp   bool
		adopt   bool // the home takes the outbox's id
	}{
		{"this home's outbox", true, stamped(home), false, false, false},
		{"new outbox, or from before the id", true, dbIdentity{}, false, true, false},
		{"no outbox.id, outbox from before the id", false, dbIdentity{}, false, true, false},
		{"outbox.id lost, or killed before writing it", false, stamped(home), false, false, true},
		{"another home's outbox.db", true, stamped(other), true, false, false},
		{"another WAL's page 1", true, dbIdentity{app: other.appID(), meta: home.String()}, true, false, false},
		{"another WAL's meta page", true, dbIdentity{app: home.appID(), meta: other.String()}, true, false, false},
		{"an unstamped outbox's page 1", true, dbIdentity{meta: home.String()}, true, false, false},
		{"no outbox.id, halves disagree", false, dbIdentity{app: other.appID(), meta: home.String()}, true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := judgeIdentity(home, c.known, c.d)
			if c.foreign {
				if !errors.Is(err, errForeignOutbox) {
					t.Fatalf("got %+v, %v; want errForeignOutbox", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.stamp != c.stamp || got.known != c.known {
				t.Errorf("stamp %v, known %v; want %v, %v", got.stamp, got.known, c.stamp, c.known)
			}
			if c.known && got.id != home || c.adopt && got.id != home {
				t.Errorf("id %s, want the home's %s", got.id, home)
			}
		})
	}
}
