package main

import (
	"bytes"
	"strconv"
)

// scanHookFields reads the top-level fields spans are built from in one
// pass over the payload, without decoding the values of the others:
// json.Unmarshal into hookFields cost as much as the rest of building the
// spans. ok is false when the payload is not one JSON object as the
// scanner reads it; the caller then decodes it with encoding/json.
func scanHookFields(payload []byte) (f hookFields, ok bool) {
	p := pbJSON{data: payload}
	p.skipSpace()
	if p.i >= len(p.data) || p.data[p.i] != '{' {
		return f, false
	}
	p.i++
	for first := true; ; first = false {
		p.skipSpace()
		if first && p.i < len(p.data) && p.data[p.i] == '}' {
			p.i++
			break
		}
		key, kok := p.strBytes()
		p.skipSpace()
		if !kok || p.i >= len(p.data) || p.data[p.i] != ':' {
			return f, false
		}
		p.i++
		p.skipSpace()
		start := p.i
		if !p.skip(0) {
			return f, false
		}
		f.set(key, p.data[start:p.i])
		p.skipSpace()
		if p.i >= len(p.data) {
			return f, false
		}
		if p.data[p.i] == '}' {
			p.i++
			break
		}
		if p.data[p.i] != ',' {
			return f, false
		}
		p.i++
	}
	p.skipSpace()
	return f, p.i == len(p.data)
}

// set takes one top-level field's value, raw. A value of another type than
// the field's is left out.
func (f *hookFields) set(key []byte, raw []byte) {
	str := func(dst *string) {
		q := pbJSON{data: raw}
		if s, ok := q.str(); ok {
			*dst = s
		}
	}
	switch string(key) {
	case "session_id":
		str(&f.SessionID)
	case "conversation_id":
		str(&f.ConversationID)
	case "sessionId":
		str(&f.SessionIDCamel)
	case "prompt_id":
		str(&f.PromptID)
	case "turn_id":
		str(&f.TurnID)
	case "generation_id":
		str(&f.GenerationID)
	case "tool_name":
		str(&f.ToolName)
	case "toolName":
		str(&f.ToolNameCamel)
	case "tool_use_id":
		str(&f.ToolUseID)
	case "tool_call_id":
		str(&f.ToolCallID)
	case "agent_id":
		str(&f.AgentID)
	case "agent_type":
		str(&f.AgentType)
	case "model":
		str(&f.Model)
	case "status":
		str(&f.Status)
	case "tool_input":
		f.ToolInput = raw
	case "toolArgs":
		f.ToolArgs = raw
	case "tool_response":
		f.ToolResponse = raw
	case "tool_output":
		f.ToolOutput = raw
	case "error":
		f.Error = raw
	case "is_interrupt":
		f.IsInterrupt = bytes.Equal(raw, []byte("true"))
	case "duration":
		if d, err := strconv.ParseFloat(string(raw), 64); err == nil {
			f.Duration = &d
		}
	}
}

// skip moves past one JSON value.
func (p *pbJSON) skip(depth int) bool {
	p.skipSpace()
	if p.i >= len(p.data) || depth > maxScanDepth {
		return false
	}
	switch c := p.data[p.i]; {
	case c == '"':
		_, ok := p.strBytes()
		return ok
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		for first := true; ; first = false {
			p.skipSpace()
			if first && p.i < len(p.data) && p.data[p.i] == end {
				p.i++
				return true
			}
			if c == '{' {
				if _, ok := p.strBytes(); !ok {
					return false
				}
				p.skipSpace()
				if p.i >= len(p.data) || p.data[p.i] != ':' {
					return false
				}
				p.i++
			}
			if !p.skip(depth + 1) {
				return false
			}
			p.skipSpace()
			if p.i >= len(p.data) {
				return false
			}
			if p.data[p.i] == end {
				p.i++
				return true
			}
			if p.data[p.i] != ',' {
				return false
			}
			p.i++
		}
	case bytes.HasPrefix(p.data[p.i:], []byte("true")):
		p.i += 4
	case bytes.HasPrefix(p.data[p.i:], []byte("false")):
		p.i += 5
	case bytes.HasPrefix(p.data[p.i:], []byte("null")):
		p.i += 4
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := p.number(nil)
		return ok
	default:
		return false
	}
	return true
}
