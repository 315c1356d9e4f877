package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRedact checks that redaction keeps any JSON payload valid JSON, and
// changes nothing outside the strings it replaced secrets in: the bytes
// between strings stay, and every string either stays byte for byte or
// holds a [REDACTED:…] marker. It also checks the redactor's string decoder
// against encoding/json's. Its seed corpus is in testdata/fuzz/FuzzRedact.
func FuzzRedact(f *testing.F) {
	f.Add([]byte(`{"prompt":"AKIAABCDEFGHIJKLMNOP"}`))
	f.Add([]byte(`{"password":"hunter22","n":[1,2.50,-0e3],"k\"ey":"\\\"","u":"\u00e9\ud83d\ude00"}`))
	f.Add([]byte(`["Authorization: Bearer abcdefgh12345678", "token=x\ny", {"api_key": {"password": "a"}}]`))
	r, err := newRedactor(redactOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if !json.Valid(p) {
			return
		}
		out := r.payload(p, func(string) {})
		if !json.Valid(out) {
			t.Fatalf("redaction made invalid JSON:\n in %q\nout %q", p, out)
		}
		inFrame, inStrings := splitStrings(p)
		outFrame, outStrings := splitStrings(out)
		if inFrame != outFrame || len(inStrings) != len(outStrings) {
			t.Fatalf("redaction changed bytes outside strings:\n in %q\nout %q", p, out)
		}
		for _, s := range inStrings {
			var want string
			if err := json.Unmarshal([]byte(s), &want); err != nil {
				t.Fatalf("string %q of valid JSON does not decode: %v", s, err)
			}
			got, ok := decodeString(nil, []byte(s))
			if !ok || string(got) != want && utf8.ValidString(s) {
				t.Fatalf("decodeString(%q) = %q, %v; encoding/json decodes %q", s, got, ok, want)
			}
		}
		for i, s := range inStrings {
			if s != outStrings[i] && !strings.Contains(outStrings[i], "[REDACTED:") {
				t.Fatalf("string %d changed without a marker: %q became %q", i, s, outStrings[i])
			}
		}
	})
}

// splitStrings cuts JSON text into its frame (everything outside strings,
// each string left as "") and its string tokens as written. It is a
// character-by-character scan, independent of the redactor's own.
func splitStrings(p []byte) (frame string, strs []string) {
	var fb, sb strings.Builder
	in, esc := false, false
	for _, c := range p {
		switch {
		case !in:
			fb.WriteByte(c)
			if c == '"' {
				in = true
				sb.Reset()
				sb.WriteByte(c)
			}
		case esc:
			esc = false
			sb.WriteByte(c)
		case c == '\\':
			esc = true
			sb.WriteByte(c)
		default:
			sb.WriteByte(c)
			if c == '"' {
				in = false
				fb.WriteByte(c)
				strs = append(strs, sb.String())
			}
		}
	}
	return fb.String(), strs
}

// FuzzRedactPlanted plants a secret of a provider's real shape
// (realSecrets, or a private key) between two fuzzed texts, in one of the
// ways hook payloads carry secrets (plantings), and checks that the secret
// cannot be read in what would be sent: not as it is, and not with percent
// and backslash escapes undone (survivors). Its seed corpus is every
// secret in every planting, in f.Add, and the texts in
// testdata/fuzz/FuzzRedactPlanted.
func FuzzRedactPlanted(f *testing.F) {
	secrets := plantable(f)
	for which := range secrets {
		for how := range plantings {
			f.Add("the deploy fails with", "why does it say 401?", uint8(which), uint8(how))
		}
	}
	r, err := newRedactor(redactOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, before, after string, which, how uint8) {
		s := secrets[int(which)%len(secrets)]
		p := plantings[int(how)%len(plantings)]
		// The secret's parts that must not be read: a key's body lines,
		// each whole, or the token.
		parts := strings.Split(s.secret, "\n")
		if len(parts) > 1 {
			parts = parts[1 : len(parts)-1]
		}
		for _, part := range parts {
			if strings.Contains(unescapeAll(before+"\n"+after), part[:8]) {
				return // the fuzzed text holds the secret itself
			}
		}
		payload := p.plant(before, after, s.name, s.secret)
		if !json.Valid(payload) {
			t.Fatalf("%s made invalid JSON: %s", p.name, payload)
		}
		out := r.payload(payload, func(string) {})
		if left := survivors(string(out), parts...); len(left) > 0 {
			t.Fatalf("%s %s survived %s:\n in %s\nout %s", s.provider, left, p.name, payload, out)
		}
	})
}

// plantedSecret is a secret of realSecrets, or a private key, with the name
// a file or a URL would give it.
type plantedSecret struct {
	provider, name, secret string
}

func plantable(t testing.TB) []plantedSecret {
	var ps []plantedSecret
	for _, s := range realSecrets {
		name := "access_token"
		if s.provider == "aws-secret" {
			name = "aws_secret_access_key"
		}
		ps = append(ps, plantedSecret{s.provider, name, s.secret})
	}
	return append(ps, plantedSecret{"ec-key", "private_key", ecKeyPEM(t)})
}

// plantings are the ways a secret reaches a payload: a line of a tool's
// output, a redirect URL with its query percent-encoded, each byte
// percent-encoded, encoded twice, JSON escapes in the payload, JSON
// quoted in text, and the lines of an Edit's structuredPatch.
var plantings = []struct {
	name  string
	plant func(before, after, name, secret string) []byte
}{
	{"line", func(before, after, name, secret string) []byte {
		return toolOutput(before + "\n" + name + "=" + secret + "\n" + after)
	}},
	{"percent-encoded query", func(before, after, name, secret string) []byte {
		q := url.QueryEscape("/cb?" + name + "=" + secret + "&state=af0ifjsldkj")
		return toolOutput(before + "\nRedirected to https://app.example.com/login?next=" + q + "\n" + after)
	}},
	{"every byte percent-encoded", func(before, after, name, secret string) []byte {
		var b strings.Builder
		for i := range len(secret) {
			fmt.Fprintf(&b, "%%%02X", secret[i])
		}
		return toolOutput(before + "\nhttps://app.example.com/cb?" + name + "=" + b.String() + "\n" + after)
	}},
	{"encoded twice", func(before, after, name, secret string) []byte {
		q := url.QueryEscape(url.QueryEscape("https://app.example.com/cb?" + name + "=" + secret))
		return toolOutput(before + "\nhttps://sso.example.com/?r=" + q + "\n" + after)
	}},
	{"JSON escapes", func(before, after, name, secret string) []byte {
		// The payload's own string escapes = as \u003d, / as \/ and the
		// secret's first byte as \u00XX, as some encoders write them.
		esc := strings.ReplaceAll(jsonText(secret[1:]), "/", `\/`)
		esc = fmt.Sprintf(`\u%04x`, secret[0]) + esc
		return fmt.Appendf(nil, `{"hook_event_name":"UserPromptSubmit","prompt":"%s\n%s\u003d%s\n%s"}`, jsonText(before), name, esc, jsonText(after))
	}},
	{"JSON in text", func(before, after, name, secret string) []byte {
		inner := `{"url":"https:\/\/app.example.com\/cb?` + name + `\u003d` + strings.ReplaceAll(jsonText(secret), "/", `\/`) + `\u0026page=2"}`
		return toolOutput(before + "\n" + inner + "\n" + after)
	}},
	{"structuredPatch lines", func(before, after, name, secret string) []byte {
		lines := []string{" " + before}
		for i, l := range strings.Split(secret, "\n") {
			if i == 0 && !strings.HasPrefix(l, "-----") {
				l = strings.ToUpper(name) + "=" + l
			}
			lines = append(lines, "+"+l)
		}
		lines = append(lines, " "+after)
		p, _ := json.Marshal(map[string]any{"hook_event_name": "PostToolUse", "tool_name": "Edit",
			"tool_input":    map[string]any{"file_path": "/home/dev/project/.env"},
			"tool_response": map[string]any{"filePath": "/home/dev/project/.env", "structuredPatch": []any{map[string]any{"oldStart": 1, "oldLines": 2, "newStart": 1, "newLines": len(lines), "lines": lines}}, "userModified": false}})
		return p
	}},
}

// toolOutput is a Bash PostToolUse event whose output is text.
func toolOutput(text string) []byte {
	p, _ := json.Marshal(map[string]any{"hook_event_name": "PostToolUse", "tool_name": "Bash",
		"tool_input":    map[string]any{"command": "curl -si https://app.example.com/login", "description": "Follow the login"},
		"tool_response": map[string]any{"stdout": text, "stderr": "", "interrupted": false}})
	return p
}
