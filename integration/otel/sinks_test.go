package otel

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
)

// idCounter is an HTTP ingest endpoint that counts the event ids it
// receives, duplicates included.
type idCounter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *idCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var batch struct {
		Events []struct{ ID string } `json:"events"`
	}
	var in io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		in = zr
	}
	body, err := io.ReadAll(in)
	if err == nil {
		err = json.Unmarshal(body, &batch)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, e := range batch.Events {
		c.seen[e.ID]++
	}
	c.mu.Unlock()
}

func (c *idCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// TestThreeSinksOneDown runs the daemon with three sinks from config.toml:
// an HTTP endpoint, a file: sink and the Collector's OTLP receiver, which
// is not there for the first part of the test. The other two receive
// every event exactly once meanwhile; once the receiver starts, it
// receives every event exactly once too.
func TestThreeSinksOneDown(t *testing.T) {
	h := newHome(t)
	counter := &idCounter{seen: map[string]int{}}
	srv := httptest.NewServer(counter)
	defer srv.Close()
	archive := filepath.Join(t.TempDir(), "archive.jsonl")
	addr := freeAddr(t)
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("endpoint = %q\n\n[[sink]]\nname = \"archive\"\nendpoint = %q\n\n[[sink]]\nname = \"collector\"\nendpoint = %q\n",
		srv.URL, "file://"+filepath.ToSlash(archive), "otlp+http://"+addr)
	if err := os.WriteFile(filepath.Join(h.dir, "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		h.mustRun("enqueue", "--id", fmt.Sprintf("evt-%02d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	h.mustRun("run", "--detach")
	t.Cleanup(func() {
		h.run("stop")
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(h.dir, "daemon.log"))
			t.Logf("daemon.log:\n%s", log)
		}
	})
	archived := func() map[string]int {
		out := map[string]int{}
		b, _ := os.ReadFile(archive)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e struct{ ID string }
			if json.Unmarshal([]byte(line), &e) == nil && e.ID != "" {
				out[e.ID]++
			}
		}
		return out
	}
	waitFor(t, 30*time.Second, "the HTTP and file sinks to receive every event", func() bool {
		return len(counter.counts()) == n && len(archived()) == n
	})
	for name, got := range map[string]map[string]int{"http": counter.counts(), "archive": archived()} {
		for id, k := range got {
			if k != 1 {
				t.Errorf("%s: %s arrived %d times", name, id, k)
			}
		}
	}
	sink := new(consumertest.LogsSink)
	startReceiver(t, addr, sink)
	waitFor(t, 60*time.Second, "every event at the collector that came up", func() bool { return sink.LogRecordCount() >= n })
	h.mustRun("stop")
	ids := map[string]int{}
	for _, r := range records(sink.AllLogs()) {
		if id, ok := attr(r.lr.Attributes(), "difflore.event.id"); ok {
			ids[id.Str()]++
		}
	}
	if len(ids) != n {
		t.Errorf("the collector got %d distinct events, want %d", len(ids), n)
	}
	for id, k := range ids {
		if k != 1 {
			t.Errorf("collector: %s arrived %d times", id, k)
		}
	}
	if got := counter.counts(); len(got) != n {
		t.Errorf("http: %d events after the collector came up, want %d", len(got), n)
	}
}
