// Package otel proves difflore's OTLP/HTTP logs delivery against the
// OpenTelemetry Collector's own OTLP receiver. It is a module of its own so
// that the Collector's dependencies stay out of the product's go.mod and out
// of the product's 'go test ./...': the tests build the difflore binary from
// the repository root and run it as a subprocess, as a user would.
//
// Run it with:
//
//	cd integration/otel && go test -count=1 ./...
package otel
