package main

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestStatusMetrics reads 'status --metrics' with the OpenMetrics 1.0
// parser of prometheus/common and with the Prometheus text parser that
// node_exporter's textfile collector uses, after a daemon delivered to
// one sink of two and not to the other: both parsers take it, and every
// sink's figures are what happened.
func TestStatusMetrics(t *testing.T) {
	t.Parallel()
	live := filepath.Join(t.TempDir(), "live.jsonl")
	dead := &downable{rec: newRecorder(0)}
	dead.down.Store(true)
	srv := httptest.NewServer(dead)
	defer srv.Close()
	e := sinkHome(t, fileURL(live), [2]string{"backup", srv.URL})
	e.inProcessDaemon("--tick", "1h")
	const n = 7
	for i := range n {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("m%d", i), `{"i":1}`)
	}
	waitFor(t, 20*time.Second, "the live sink", func() bool { return len(fileIDs(t, live)) == n })
	// The file holds a batch before the batch is settled, and counted:
	// wait for the count too (it lagged in loaded runs: "delivered 4").
	waitFor(t, 20*time.Second, "every delivery to the live sink counted, and a failed one to the down sink", func() bool {
		out := e.mustCLI("status", "--metrics")
		return strings.Contains(out, fmt.Sprintf("difflore_sink_delivered_total{sink=\"default\"} %d\n", n)) &&
			!strings.Contains(out, `difflore_sink_failed_total{sink="backup"} 0`)
	})
	out := e.mustCLI("status", "--metrics")
	if !strings.HasSuffix(out, "# EOF\n") {
		t.Fatalf("no # EOF at the end:\n%s", out)
	}
	om := map[string]*dto.MetricFamily{}
	dec := expfmt.NewDecoder(strings.NewReader(out), expfmt.NewFormat(expfmt.TypeOpenMetrics))
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("OpenMetrics parser: %v\n%s", err, out)
		}
		om[mf.GetName()] = &mf
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	text, err := p.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("text parser (node_exporter's): %v\n%s", err, out)
	}
	value := func(fams map[string]*dto.MetricFamily, family, sink string) float64 {
		t.Helper()
		mf := fams[family]
		if mf == nil {
			t.Fatalf("no family %q in %v", family, out)
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					switch mf.GetType() {
					case dto.MetricType_COUNTER:
						return m.GetCounter().GetValue()
					case dto.MetricType_UNTYPED:
						return m.GetUntyped().GetValue()
					default:
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		t.Fatalf("no sink %q in family %q", sink, family)
		return 0
	}
	if om["difflore_sink_delivered_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("OpenMetrics: delivered is not a counter")
	}
	for name, fams := range map[string]map[string]*dto.MetricFamily{"openmetrics": om, "text": text} {
		// Both name a counter's family by its samples, _total; the text
		// format has no such suffix rule, and types it as untyped.
		delivered := "difflore_sink_delivered_total"
		if v := value(fams, delivered, "default"); v != n {
			t.Errorf("%s: default delivered %v, want %d", name, v, n)
		}
		if v := value(fams, delivered, "backup"); v != 0 {
			t.Errorf("%s: backup delivered %v, want 0", name, v)
		}
		if v := value(fams, "difflore_sink_pending", "backup"); v+value(fams, "difflore_sink_inflight", "backup") != n {
			t.Errorf("%s: backup pending %v, want %d with those in flight", name, v, n)
		}
		if v := value(fams, "difflore_sink_oldest_pending_age_seconds", "backup"); v <= 0 {
			t.Errorf("%s: backup's oldest pending age %v, want more than 0", name, v)
		}
		if v := value(fams, "difflore_sink_pending", "default"); v != 0 {
			t.Errorf("%s: default pending %v, want 0", name, v)
		}
	}
}
