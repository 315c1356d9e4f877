package main

import (
	"fmt"
	"strings"
	"time"
)

// The destinations of a data home (DESIGN.md, Destinations): the top-level
// endpoint and token of config.toml are the one-sink shorthand, named
// defaultSinkName, and each [[sink]] table adds one more. Each sink has its
// own progress in the outbox (outboxsinks.go) and its own drainer.

// defaultSinkName names the sink of the top-level endpoint, of
// DIFFLORE_CLOUD_URL and of --endpoint.
const defaultSinkName = "default"

// fileSinkTable is one [[sink]] table as config.toml gives it. The OTLP
// keys (protocol, trace_content, signals) it does not set are the top
// level's (otlpconfig.go).
type fileSinkTable struct {
	Name         string     `toml:"name"`
	Endpoint     string     `toml:"endpoint"`
	Token        *string    `toml:"token"`
	Batch        *int       `toml:"batch"`
	Redact       *bool      `toml:"redact"`
	MaxAge       *limitText `toml:"max_age"`
	Protocol     *string    `toml:"protocol"`      // OTLP: http/protobuf (the default) or http/json
	TraceContent *bool      `toml:"trace_content"` // OTLP: tool arguments and results in spans
	Signals      []string   `toml:"signals"`       // OTLP: logs, traces; both by default
}

// sinkSpec is one destination as the daemon uses it: the shorthand's
// settings or a [[sink]] table's over them.
type sinkSpec struct {
	name     string
	endpoint string
	token    string
	batch    int
	redact   *bool         // nil: as the top-level redact says
	maxAge   time.Duration // 0: the top-level max_age
	// otlp are the OTLP options, its name the sink's: an OTLP sink keys
	// its open spans in the outbox by it (spanstore.go).
	otlp otlpOptions
}

// newSink makes the sink a spec describes, nil for one with no endpoint.
// It is the one way the daemon, drain and doctor make a sink, so that each
// gets its own name and OTLP options.
func newSink(s sinkSpec, version string, allowInsecure bool) (sink, error) {
	sk, err := parseEndpointOpts(s.endpoint, s.token, version, allowInsecure, s.otlp)
	if err != nil && s.name != defaultSinkName {
		return nil, fmt.Errorf("sink %q: %w", s.name, err)
	}
	return sk, err
}

// validSinkName reports whether name can name a sink: letters, digits, '-'
// and '_', as a metric label and a flag value take it without quoting.
func validSinkName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}

// checkSinkTables refuses [[sink]] tables no daemon could use: a missing or
// repeated name, no endpoint, a batch out of range, a bad max_age or
// OTLP option. hasDefault says whether the top-level endpoint already
// names the sink "default".
func checkSinkTables(tables []fileSinkTable, hasDefault bool) error {
	seen := map[string]bool{defaultSinkName: hasDefault}
	for i, t := range tables {
		if !validSinkName(t.Name) {
			return fmt.Errorf("[[sink]] %d: name = %q: want letters, digits, '-' or '_'", i+1, t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("[[sink]] %q: the name is taken (the top-level endpoint is the sink %q)", t.Name, defaultSinkName)
		}
		seen[t.Name] = true
		if t.Endpoint == "" {
			return fmt.Errorf("[[sink]] %q: no endpoint", t.Name)
		}
		if t.Batch != nil && (*t.Batch < 1 || *t.Batch > 10000) {
			return fmt.Errorf("[[sink]] %q: batch = %d: want 1 to 10000", t.Name, *t.Batch)
		}
		if t.MaxAge != nil {
			if _, err := parseAge(string(*t.MaxAge)); err != nil {
				return fmt.Errorf("[[sink]] %q: max_age = %q: %w", t.Name, *t.MaxAge, err)
			}
		}
		if t.Protocol != nil {
			if _, err := protocolLiteral(*t.Protocol); err != nil {
				return fmt.Errorf("[[sink]] %q: protocol = %q: %w", t.Name, *t.Protocol, err)
			}
		}
		if err := checkSignals(t.Signals); err != nil {
			return fmt.Errorf("[[sink]] %q: %w", t.Name, err)
		}
		if t.Token != nil {
			if err := tokenProblem(strings.TrimSpace(*t.Token)); err != nil {
				return fmt.Errorf("[[sink]] %q: token: %w", t.Name, err)
			}
		}
	}
	return nil
}

// sinkSpecs are the sinks of settings: the shorthand's first, when it has
// an endpoint, then the [[sink]] tables in the file's order, each taking
// what it does not set from the top level. A table's token goes to its own
// endpoint only.
func (st settings) sinkSpecs() []sinkSpec {
	var out []sinkSpec
	if st.endpoint != "" {
		o := st.otlp
		o.name = defaultSinkName
		out = append(out, sinkSpec{name: defaultSinkName, endpoint: st.endpoint, token: st.token, batch: st.batch, otlp: o})
	}
	for _, t := range st.sinkTables {
		s := sinkSpec{name: t.Name, endpoint: t.Endpoint, batch: st.batch, redact: t.Redact,
			otlp: st.otlp.over(t.Name, t.Protocol, t.TraceContent, t.Signals)}
		if t.Token != nil {
			s.token = strings.TrimSpace(*t.Token)
		}
		if t.Batch != nil {
			s.batch = *t.Batch
		}
		if t.MaxAge != nil {
			s.maxAge, _ = parseAge(string(*t.MaxAge)) // checked by decode
		}
		out = append(out, s)
	}
	return out
}

// firstEndpoint is the first sink's endpoint and where it comes from: the
// shorthand's, or else config.toml's first [[sink]] table's ("" and
// fromNone when there is no sink).
func (st settings) firstEndpoint() (endpoint, source string) {
	if st.endpoint == "" && len(st.sinkTables) > 0 {
		return st.sinkTables[0].Endpoint, fromConfig
	}
	return st.endpoint, st.endpointSource
}

// sinkNames lists the names of specs, in order.
func sinkNames(specs []sinkSpec) []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	return names
}
