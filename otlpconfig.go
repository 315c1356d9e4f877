package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The OTLP settings of config.toml: protocol (as OTEL_EXPORTER_OTLP_PROTOCOL
// names it: http/protobuf, the default, or http/json), trace_content (tool
// arguments and results in spans, off by default) and signals (what an
// OTLP endpoint receives: ["logs", "traces"] by default).

// protocolLiteral checks a protocol given to 'config set'.
func protocolLiteral(v string) (string, error) {
	if v != protocolProtobuf && v != protocolJSON {
		return "", fmt.Errorf("want %s or %s", protocolProtobuf, protocolJSON)
	}
	return tomlString(v), nil
}

// otlpOptions reads the OTLP settings of the file, checked.
func (fc fileConfig) otlpOptions() (otlpOptions, error) {
	o := otlpOptions{name: defaultSinkName, protocol: protocolProtobuf}
	if fc.Protocol != nil {
		if _, err := protocolLiteral(*fc.Protocol); err != nil {
			return o, fmt.Errorf("protocol %q: %w", *fc.Protocol, err)
		}
		o.protocol = *fc.Protocol
	}
	if fc.TraceContent != nil {
		o.traceContent = *fc.TraceContent
	}
	if err := checkSignals(fc.Signals); err != nil {
		return o, err
	}
	o.setSignals(fc.Signals)
	return o, nil
}

// checkSignals refuses a signals list with anything but logs and traces.
func checkSignals(signals []string) error {
	for _, s := range signals {
		if s != "logs" && s != "traces" {
			return fmt.Errorf("signals: %q is not a signal; want logs and/or traces", s)
		}
	}
	return nil
}

// setSignals sets what signals (nil: unset, so unchanged) names, checked.
func (o *otlpOptions) setSignals(signals []string) {
	if signals != nil {
		o.noLogs = !slices.Contains(signals, "logs")
		o.noTraces = !slices.Contains(signals, "traces")
	}
}

// over are the options of the [[sink]] table name: what it sets, else
// what o (the top level's) says. Each key stands on its own: a table that
// sets protocol alone keeps the top-level signals.
func (o otlpOptions) over(name string, protocol *string, traceContent *bool, signals []string) otlpOptions {
	o.name = name
	if protocol != nil {
		o.protocol = *protocol
	}
	if traceContent != nil {
		o.traceContent = *traceContent
	}
	o.setSignals(signals)
	return o
}

// otlpValues adds the OTLP keys the file sets to vals (configValues).
func otlpValues(fc fileConfig, vals map[string]configValue) {
	if fc.Protocol != nil {
		vals["protocol"] = configValue{*fc.Protocol, tomlString(*fc.Protocol)}
	}
	if fc.TraceContent != nil {
		v := strconv.FormatBool(*fc.TraceContent)
		vals["trace_content"] = configValue{v, v}
	}
	if fc.Signals != nil {
		vals["signals"] = signalsValue(fc.Signals)
	}
}

func signalsValue(signals []string) configValue {
	items := make([]string, len(signals))
	for i, s := range signals {
		items[i] = tomlString(s)
	}
	return configValue{strings.Join(signals, "\n"), "[" + strings.Join(items, ", ") + "]"}
}

// otlpDefaults are the OTLP keys' defaults, as list shows them.
func otlpDefaults(shown map[string]shownSetting) {
	shown["protocol"] = shownSetting{configValue{protocolProtobuf, tomlString(protocolProtobuf)}, fromDefault}
	shown["trace_content"] = shownSetting{configValue{"false", "false"}, fromDefault}
	shown["signals"] = shownSetting{signalsValue([]string{"logs", "traces"}), fromDefault}
}
