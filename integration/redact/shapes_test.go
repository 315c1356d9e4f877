package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The payload shapes a secret is put in. Each is a hook payload as Claude
// Code sends it (the fields of testdata/hooks/claude-docs.PostToolUse.json
// and claude-2.1.328.UserPromptSubmit.json at the repository root; Read's
// and Edit's tool_response as Claude Code writes them in its transcripts),
// with the secret where a user's work puts one. Beside the payload, each
// gives the text a person would see in it (the file, the command, the
// prompt, the URL, the diff): gitleaks' detector runs on that text, and a
// secret counts in a shape only when gitleaks reports it there.

// shape builds one kind of payload around a secret.
type shape struct {
	name string
	// build returns the payload and the text gitleaks scans, with the path
	// of the file it comes from when it is one ("" when not).
	build func(c shapeCase) (payload []byte, text, path string)
}

// shapeCase is what a shape is built from: the secret's text as the rule
// generated it, the rule's id, and a file path the rule asks for (a
// gitleaks rule with a path scans only files so named).
type shapeCase struct {
	item, rule, path string
}

// obj is a JSON object that keeps its members in the order given, as the
// agents write them: key, value, key, value.
type obj []any

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i+1 < len(o); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(o[i])
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(o[i+1])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// claude is the start every Claude Code hook payload shares.
func claude(event string, rest ...any) []byte {
	o := obj{
		"session_id", "558cdcc9-eca8-448a-8061-64b5629eccb2",
		"transcript_path", "/home/dev/.claude/projects/-home-dev-project/558cdcc9-eca8-448a-8061-64b5629eccb2.jsonl",
		"cwd", "/home/dev/project",
		"permission_mode", "default",
		"hook_event_name", event,
	}
	p, err := json.Marshal(append(o, rest...))
	if err != nil {
		panic(err) // every value here is a string, a number, a bool or an obj
	}
	return p
}

// envName is the variable a .env names a rule's secret with:
// github-pat is GITHUB_PAT.
func envName(rule string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(rule))
}

// recallShapes are the payloads of the recall test, in the order it
// reports them.
func recallShapes() []shape {
	return []shape{
		{"cat .env", func(c shapeCase) ([]byte, string, string) {
			value := c.item
			if strings.ContainsAny(value, " \t\n") {
				value = `"` + value + `"`
			}
			text := "# local settings, not committed\nNODE_ENV=development\nPORT=3000\nDATABASE_HOST=localhost\n" +
				envName(c.rule) + "=" + value + "\nLOG_LEVEL=debug\n"
			return claude("PostToolUse",
				"tool_name", "Bash",
				"tool_input", obj{"command", "cat .env", "description", "Show the local environment"},
				"tool_response", obj{"stdout", text, "stderr", "", "interrupted", false, "isImage", false},
				"tool_use_id", "toolu_01ABCenv"), text, ""
		}},
		{"Read config", func(c shapeCase) ([]byte, string, string) {
			path := c.path
			if path == "" {
				path = "/home/dev/project/config/settings.yaml"
			}
			text := "server:\n  port: 8080\n  host: 0.0.0.0\nintegrations:\n  " + strings.SplitN(c.rule, "-", 2)[0] +
				":\n    enabled: true\n    auth: " + yamlValue(c.item, "      ") + "\n    timeout: 30s\n"
			lines := strings.Count(text, "\n")
			return claude("PostToolUse",
				"tool_name", "Read",
				"tool_input", obj{"file_path", path},
				"tool_response", obj{"type", "text", "file", obj{"filePath", path, "content", text, "numLines", lines, "startLine", 1, "totalLines", lines}},
				"tool_use_id", "toolu_01ABCread"), text, path
		}},
		{"prompt", func(c shapeCase) ([]byte, string, string) {
			text := "the staging deploy fails with 401 since this morning. it uses " + c.item +
				" as its credential, can you check whether that is still valid and fix the workflow?"
			return claude("UserPromptSubmit",
				"prompt_id", "2827e95d-621b-485a-a43b-d9ef9ab488b2",
				"prompt", text), text, ""
		}},
		{"curl -H", func(c shapeCase) ([]byte, string, string) {
			text := `curl -sS -H "Authorization: Bearer ` + c.item + `" https://api.example.com/v1/me`
			return claude("PreToolUse",
				"tool_name", "Bash",
				"tool_input", obj{"command", text, "description", "Check the token against the API"},
				"tool_use_id", "toolu_01ABCcurl"), text, ""
		}},
		{"percent-encoded URL", func(c shapeCase) ([]byte, string, string) {
			text := "https://app.example.com/login?next=" +
				percentEncode("/oauth/callback?state=af0ifjsldkj&access_token="+c.item+"&expires_in=3600") + "&lang=en"
			return claude("PreToolUse",
				"tool_name", "WebFetch",
				"tool_input", obj{"url", text, "prompt", "What does the login page say after the redirect?"},
				"tool_use_id", "toolu_01ABCfetch"), text, ""
		}},
		{"Edit structuredPatch", func(c shapeCase) ([]byte, string, string) {
			path := "/home/dev/project/src/client.ts"
			before := []string{`import { Client } from "./api";`, ``}
			after := []string{`export default client;`}
			oldLine := `const client = new Client(process.env.API_CREDENTIAL);`
			newCode := "const client = new Client(`" + c.item + "`);"
			newLines := strings.Split(newCode, "\n")
			var lines []string
			for _, l := range before {
				lines = append(lines, " "+l)
			}
			lines = append(lines, "-"+oldLine)
			for _, l := range newLines {
				lines = append(lines, "+"+l)
			}
			for _, l := range after {
				lines = append(lines, " "+l)
			}
			original := strings.Join(append(append(append([]string{}, before...), oldLine), after...), "\n") + "\n"
			hunk := obj{"oldStart", 1, "oldLines", len(before) + 1 + len(after), "newStart", 1,
				"newLines", len(before) + len(newLines) + len(after), "lines", lines}
			return claude("PostToolUse",
				"tool_name", "Edit",
				"tool_input", obj{"file_path", path, "old_string", oldLine, "new_string", newCode, "replace_all", false},
				"tool_response", obj{"filePath", path, "oldString", oldLine, "newString", newCode, "originalFile", original,
					"structuredPatch", []obj{hunk}, "userModified", false, "replaceAll", false},
				"tool_use_id", "toolu_01ABCedit"), strings.Join(lines, "\n"), ""
		}},
	}
}

// yamlValue writes s as a YAML value: single-quoted on one line, or a
// literal block indented by indent when it spans lines.
func yamlValue(s, indent string) string {
	if strings.Contains(s, "\n") {
		return "|\n" + indent + strings.ReplaceAll(s, "\n", "\n"+indent)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// String names a case in the test's output.
func (c shapeCase) String() string { return fmt.Sprintf("%s %q", c.rule, c.item) }
