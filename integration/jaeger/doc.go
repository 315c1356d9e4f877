// Package jaeger delivers difflore's spans into a real Jaeger (v1.75.0, the
// OpenTelemetry-Collector-based v2 program, built in this module of its own
// because it brings hundreds of modules) and reads them back through
// Jaeger's query API. Set JAEGER_BIN to a built jaeger to skip building it
// here (about 11 minutes cold on two cores; .ci/run builds it once).
package jaeger
