package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The secrets below are generated with the shapes of real ones from a
// fixed seed: no real key is ever written into a test.

// secretGen makes random secrets of a given shape.
type secretGen struct{ r *rand.Rand }

const (
	alnum   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperD  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b64url  = alnum + "_-"
	b64std  = alnum + "+/"
	digitsS = "0123456789"
)

func newSecretGen(seed uint64) *secretGen {
	return &secretGen{rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

// s returns n characters from alphabet; a mixed-case alphabet's result
// always holds an upper, a lower case letter and a digit, as keys do.
func (g *secretGen) s(alphabet string, n int) string {
	for {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[g.r.IntN(len(alphabet))]
		}
		if alphabet != alnum && alphabet != b64url && alphabet != b64std || mixedCase(b) {
			return string(b)
		}
	}
}

func (g *secretGen) pem(kind string) string {
	var lines []string
	for range 6 {
		lines = append(lines, g.s(b64std, 64))
	}
	return "-----BEGIN " + kind + "-----\n" + strings.Join(lines, "\n") + "\n" + g.s(b64std, 20) + "==\n-----END " + kind + "-----"
}

func (g *secretGen) jwt() string {
	enc := base64.RawURLEncoding.EncodeToString
	head := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc(fmt.Appendf(nil, `{"sub":"%s","iat":%d}`, g.s(alnum, 10), 1700000000+g.r.IntN(1e8)))
	return head + "." + body + "." + g.s(b64url, 43)
}

// secretCase is one secret as it appears in text: line holds it, secret is
// the part that must not reach the endpoint, rule the rule that finds it.
type secretCase struct {
	rule, line, secret string
}

// secretCorpus returns, for every rule, several generated secrets, each in
// the line a file, a command or a prompt would hold it in.
func secretCorpus(g *secretGen) []secretCase {
	var cs []secretCase
	add := func(rule, format, secret string) {
		cs = append(cs, secretCase{rule, fmt.Sprintf(format, secret), secret})
	}
	for range 3 {
		add("aws-access-key-id", "AWS_ACCESS_KEY_ID=%s", "AKIA"+g.s(upperD, 16))
		add("aws-access-key-id", "aws_access_key_id = %s", "ASIA"+g.s(upperD, 16))
		add("aws-secret-access-key", "AWS_SECRET_ACCESS_KEY=%s", g.s(b64std, 40))
		add("aws-secret-access-key", `"SecretAccessKey": "%s",`, g.s(b64std, 40))
		for _, p := range []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"} {
			add("github-token", "GITHUB_TOKEN=%s", p+g.s(alnum, 36))
		}
		add("github-pat", "git clone https://github.com/acme/app.git # token %s", "github_pat_"+g.s(alnum, 22)+"_"+g.s(alnum, 59))
		add("gitlab-token", "export GL_CI=%s", "glpat-"+g.s(b64url, 20))
		add("slack-token", "slack: %s", "xoxb-"+g.s(digitsS, 12)+"-"+g.s(digitsS, 13)+"-"+g.s(alnum, 24))
		add("slack-token", "SLACK_BOT=%s", "xoxp-"+g.s(digitsS, 12)+"-"+g.s(digitsS, 12)+"-"+g.s(digitsS, 13)+"-"+g.s("abcdef0123456789", 32))
		add("stripe-key", "stripe.api_key = '%s'", "sk_live_"+g.s(alnum, 24))
		add("stripe-key", "STRIPE_RESTRICTED=%s", "rk_live_"+g.s(alnum, 99))
		add("openai-key", "OPENAI_API_KEY=%s", "sk-proj-"+g.s(b64url, 156))
		add("openai-key", "client = OpenAI(key=%q)", "sk-"+g.s(alnum, 48))
		add("anthropic-key", "use %s for the eval run", "sk-ant-api03-"+g.s(b64url, 93)+"AA")
		add("google-api-key", "maps: %s", "AIza"+g.s(b64url, 35))
		add("npm-token", "//registry.npmjs.org/:_authToken=%s", "npm_"+g.s(alnum, 36))
		add("huggingface-token", "huggingface-cli login --token %s", "hf_"+g.s(alnum, 34))
		add("sendgrid-key", "SENDGRID=%s", "SG."+g.s(b64url, 22)+"."+g.s(b64url, 43))
		add("private-key", "%s", g.pem("RSA PRIVATE KEY"))
		add("private-key", "%s", g.pem("OPENSSH PRIVATE KEY"))
		add("private-key", "%s", g.pem("PGP PRIVATE KEY BLOCK"))
		add("private-key", "key.pem:\n%s", g.pem("EC PRIVATE KEY"))
		add("jwt", "session cookie: %s", g.jwt())
		add("authorization", "Authorization: Bearer %s", g.s(b64url, 40))
		add("authorization", "Authorization: Basic %s", base64.StdEncoding.EncodeToString([]byte("deploy:"+g.s(alnum, 16))))
		add("url-credentials", "DATABASE_URL=postgres://app:%s@db.internal:5432/app", g.s(alnum, 20))
		add("url-credentials", "git remote add origin https://bot:%s@git.example.com/acme/app.git", g.s(b64url, 24))
		add("secret-assignment", "DB_PASSWORD=%s", g.s(alnum, 14))
		add("secret-assignment", "  password: %s", g.s(alnum, 12))
		add("secret-assignment", `  "client_secret": "%s",`, g.s(b64url, 32))
		add("secret-assignment", `api_key = "%s"`, g.s(alnum, 32))
		add("secret-assignment", "https://api.example.com/v1/items?access_token=%s&page=2", g.s(alnum, 30))
		add("secret-assignment", "X-Api-Key: %s", g.s("abcdef0123456789", 32))
	}
	return cs
}

// hookContexts put a line of text where agents' hooks carry text: the
// output of a Bash 'cat .env', a Read of a config file, a prompt quoting
// it, a curl command.
var hookContexts = []struct {
	name  string
	build func(line string) map[string]any
}{
	{"bash-cat-env", func(line string) map[string]any {
		return map[string]any{"session_id": "6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162", "hook_event_name": "PostToolUse",
			"tool_name": "Bash", "tool_input": map[string]any{"command": "cat .env", "description": "Show the environment file"},
			"tool_response": map[string]any{"stdout": "APP_ENV=production\n" + line + "\nPORT=8080\n", "stderr": "", "interrupted": false}}
	}},
	{"read-config", func(line string) map[string]any {
		return map[string]any{"session_id": "6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162", "hook_event_name": "PostToolUse",
			"tool_name": "Read", "tool_input": map[string]any{"file_path": "/home/dev/src/app/config/settings.yaml"},
			"tool_response": map[string]any{"type": "text", "file": map[string]any{"filePath": "/home/dev/src/app/config/settings.yaml",
				"content": "server:\n  port: 8080\n  host: 0.0.0.0\n" + line + "\nlog_level: debug\n", "numLines": 6}}}
	}},
	{"prompt", func(line string) map[string]any {
		return map[string]any{"session_id": "6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162", "hook_event_name": "UserPromptSubmit",
			"prompt": "the deploy fails, here is what I have:\n" + line + "\nwhy does it say 401?"}
	}},
	{"curl", func(line string) map[string]any {
		cmd := "curl -sS --data-raw '" + line + "' https://api.example.com/v1/items"
		if strings.HasPrefix(line, "Authorization") || strings.HasPrefix(line, "X-Api-Key") {
			cmd = "curl -sS -H '" + line + "' https://api.example.com/v1/me"
		}
		return map[string]any{"session_id": "6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162", "hook_event_name": "PreToolUse",
			"tool_name": "Bash", "tool_input": map[string]any{"command": cmd, "description": "Call the API"}}
	}},
}

// benignCorpus is text that looks like a secret to a careless rule, or
// holds the words the name rules look for, and is no secret.
var benignCorpus = []string{
	"commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: Dev <dev@example.com>",
	"git log --oneline: a94a8fe refactor token bucket; 2fd4e1c fix password_reset.go",
	`{"request_id":"6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162","trace":"4bf92f3577b34da6a3ce929d0e0e4736"}`,
	`"integrity": "sha512-vS3GhXVqZ2vzvKfGx6oYbUJ1QpOKRyzSmMuXbQwBzZ1y/3Ogz3MbE6c7cUQ8bO0Z2dN4qFQzXbP1yWc7aC8H9w=="`,
	"image: ghcr.io/acme/app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	"/home/dev/src/app/internal/auth/password_reset.go:42:\tfunc resetPassword(ctx context.Context) error {",
	"src/components/TokenInput.tsx src/secrets/README.md ~/.ssh/id_ed25519.pub",
	"const maxTokens = 4096\nlet tokenCount = countTokens(prompt)\nif (tokens.length > maxTokens) {}",
	"The token bucket refills at 10 tokens per second; each request spends one token.",
	"Please reset your password from the settings page; the secret is to use a passphrase.",
	`usage: {"input_tokens": 1200, "output_tokens": 88, "token_count": 12}`,
	"token_count: 12\nmax_tokens: 4096\npassword_min_length: 12",
	"token = os.Getenv(\"GITHUB_TOKEN\")\npassword := cfg.Password\nif token == \"\" { return errNoToken }",
	"secret: ${{ secrets.DEPLOY_KEY }}\npassword: ${DB_PASSWORD}\napi_key: <your-api-key>",
	"password_file: /run/secrets/db_password\nprivate_key: ~/.ssh/id_ed25519",
	"kind: Secret\nmetadata:\n  name: app-secret\ntype: Opaque",
	"go test ./... -run 'TestToken|TestPasswordHash' -count=1",
	"npm install --save-dev @types/node@20.11.5 eslint-plugin-security",
	"pip install scikit-learn hf_transfer huggingface_hub; sk-learn-tutorial-notebook-2024",
	"PWD=/home/dev/src/app\nOLDPWD=/home/dev\nHOME=/home/dev\nSHELL=/bin/bash",
	"Authorization header missing; a bearer token is required. Basic authentication is disabled.",
	"https://github.com/acme/app/blob/main/docs/secrets.md#rotating-the-token",
	"ssh://git@github.com/acme/app.git and git@github.com:acme/app.git",
	"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUe0Wq\n-----END CERTIFICATE-----\n-----BEGIN PUBLIC KEY-----\nMFkwEw\n-----END PUBLIC KEY-----",
	"func (s *Store) Token(id string) (string, error) { return s.tokens[id], nil }",
	"AKIA is the prefix of an AWS access key id; AIza starts a Google one.",
	"the value 0x5f3759df and the UUID 123e4567-e89b-12d3-a456-426614174000",
	"token: 12",
}

// deliverThroughFile enqueues each payload with 'difflore enqueue', drains
// the outbox to a file: endpoint with 'difflore drain', and returns the
// payloads as they arrived, by id.
func deliverThroughFile(t *testing.T, payloads map[string][]byte) map[string][]byte {
	t.Helper()
	e := newTestEnv(t)
	ids := slices.Sorted(maps.Keys(payloads))
	for _, id := range ids {
		if out, errOut, code := e.cli(string(payloads[id]), "enqueue", "--id", id); code != 0 {
			t.Fatalf("enqueue %s: exit %d: %s%s", id, code, out, errOut)
		}
	}
	sink := filepath.Join(t.TempDir(), "events.jsonl")
	e.mustCLI("drain", "--endpoint", fileURL(sink))
	got := map[string][]byte{}
	for _, line := range readLines(t, sink) {
		var e struct {
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("a delivered line is not JSON: %v\n%s", err, line)
		}
		got[e.ID] = e.Payload
	}
	if len(got) != len(payloads) {
		t.Fatalf("%d events delivered, want %d", len(got), len(payloads))
	}
	return got
}

// TestRedactCorpus feeds generated secrets of every rule, in realistic hook
// payloads, through enqueue and drain to a file: endpoint, and checks that
// none arrives, and that benign text arrives byte for byte.
func TestRedactCorpus(t *testing.T) {
	t.Parallel()
	g := newSecretGen(14)
	cases := secretCorpus(g)
	payloads := map[string][]byte{}
	type want struct {
		c       secretCase
		context string
	}
	wants := map[string]want{}
	for i, c := range cases {
		for _, hc := range hookContexts {
			p, err := json.Marshal(hc.build(c.line))
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("s%03d-%s", i, hc.name)
			payloads[id] = p
			wants[id] = want{c, hc.name}
		}
	}
	// A member of the payload whose key says secret, as an MCP tool's
	// arguments or a settings object carry one.
	for i := range 4 {
		pw := g.s(alnum, 10+i)
		id := fmt.Sprintf("m%03d-mcp-args", i)
		payloads[id] = fmt.Appendf(nil, `{"hook_event_name":"PreToolUse","tool_name":"mcp__db__connect","tool_input":{"host":"db.internal","user":"app","password":%q,"port":5432}}`, pw)
		wants[id] = want{secretCase{secretAssignment, pw, pw}, "json-member"}
	}
	for i, text := range benignCorpus {
		for _, hc := range hookContexts {
			p, err := json.Marshal(hc.build(text))
			if err != nil {
				t.Fatal(err)
			}
			payloads[fmt.Sprintf("b%03d-%s", i, hc.name)] = p
		}
	}
	got := deliverThroughFile(t, payloads)

	found, total := map[string]int{}, map[string]int{}
	falsePositives, benign := 0, 0
	for id, p := range payloads {
		out := got[id]
		if !json.Valid(out) {
			t.Errorf("%s arrived as invalid JSON: %s", id, out)
		}
		w, isSecret := wants[id]
		if !isSecret {
			benign++
			if !bytes.Equal(out, p) {
				falsePositives++
				t.Errorf("benign %s changed:\n sent %s\n  got %s", id, p, out)
			}
			continue
		}
		total[w.c.rule]++
		leaked := false
		for _, line := range strings.Split(w.c.secret, "\n") {
			if len(line) >= 8 && bytes.Contains(out, []byte(line)) || bytes.Contains(out, []byte(jsonText(line))) {
				leaked = true
			}
		}
		// Where the secret sits in a line of its own kind, its rule must
		// be the one named; in a curl command another rule may cover it
		// first (Authorization: token ghp_…), which is as good.
		named := bytes.Contains(out, []byte("[REDACTED:"+w.c.rule+"]")) || w.context == "curl" && bytes.Contains(out, []byte("[REDACTED:"))
		if leaked || !named {
			t.Errorf("%s (%s in %s): leaked %v, [REDACTED:%s] %v:\n%s", id, w.c.rule, w.context, leaked, w.c.rule, named, out)
			continue
		}
		found[w.c.rule]++
	}
	sumFound, sumTotal := 0, 0
	for _, rule := range slices.Sorted(maps.Keys(total)) {
		t.Logf("%-22s recall %3d/%3d", rule, found[rule], total[rule])
		sumFound += found[rule]
		sumTotal += total[rule]
	}
	t.Logf("recall %d/%d = %.1f %%, false positives %d/%d benign payloads", sumFound, sumTotal, 100*float64(sumFound)/float64(sumTotal), falsePositives, benign)
	names := map[string]bool{secretAssignment: true}
	for _, r := range builtinRules().rules {
		names[r.name] = true
	}
	if len(total) != len(names) {
		t.Errorf("the corpus covers %d rules, the redactor has %d", len(total), len(names))
	}
}

// jsonText is s as it is written inside a JSON string.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// TestRedactKeepsBytes checks that only the strings that held a secret
// change: key order, numbers, white space and escapes elsewhere stay.
func TestRedactKeepsBytes(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const in = "{ \"z\": 1.50e0 , \"a\":\t[\"\\u00e9\\/x\", \"GITHUB_TOKEN=ghp_0123456789abcdefABCDEF0123456789abcd\\n\"],\n\"n\":null}"
	const want = "{ \"z\": 1.50e0 , \"a\":\t[\"\\u00e9\\/x\", \"GITHUB_TOKEN=[REDACTED:github-token]\\n\"],\n\"n\":null}"
	var rules []string
	got := r.payload([]byte(in), func(rule string) { rules = append(rules, rule) })
	if string(got) != want {
		t.Errorf("payload:\n got %s\nwant %s", got, want)
	}
	if !slices.Equal(rules, []string{"github-token"}) {
		t.Errorf("rules found %q, want [github-token]", rules)
	}
	same := []byte(`{"a":"nothing to see","b":[1,2,{"c":"d"}]}`)
	if out := r.payload(same, func(string) {}); &out[0] != &same[0] {
		t.Error("a payload without secrets was copied, want it returned as it is")
	}
}

// TestRedactOptions checks the settings a config file will give: off, an
// extra rule and an allowed value.
func TestRedactOptions(t *testing.T) {
	in := []byte(`{"prompt":"use ghp_0123456789abcdefABCDEF0123456789abcd and ACME-1234-5678"}`)
	for _, tc := range []struct {
		name string
		opts redactOptions
		want string
	}{
		{"default", redactOptions{}, `{"prompt":"use [REDACTED:github-token] and ACME-1234-5678"}`},
		{"off", redactOptions{off: true}, string(in)},
		{"extra rule", redactOptions{rules: []customRule{{"acme-id", `ACME-(\d{4}-\d{4})`}}}, `{"prompt":"use [REDACTED:github-token] and ACME-[REDACTED:acme-id]"}`},
		{"allowed", redactOptions{allow: []string{"ghp_0123456789abcdefABCDEF0123456789abcd"}}, string(in)},
	} {
		r, err := newRedactor(tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := string(r.payload(in, func(string) {})); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	if _, err := newRedactor(redactOptions{rules: []customRule{{"bad", `(`}}}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("a rule that does not compile: err %v, want one naming it", err)
	}
	for v, off := range map[string]bool{"": false, "1": false, "yes": false, "0": true, "false": true, "OFF": true} {
		if got := redactOptionsFromEnv(func(string) string { return v }).off; got != off {
			t.Errorf("%s=%q: off %v, want %v", redactEnv, v, got, off)
		}
	}
}

// TestRedactCommand checks 'difflore redact': a payload from a file or
// standard input comes out as it would be sent; text that is not JSON is
// bad input, exit 2.
func TestRedactCommand(t *testing.T) {
	testHome(t)
	in := `{"tool_response":{"stdout":"AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n"}, "n": 1.0}`
	want := `{"tool_response":{"stdout":"AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key-id]\n"}, "n": 1.0}`
	out, errOut, code := cli(t, in, "redact")
	if code != 0 || out != want || !strings.Contains(errOut, "1 aws-access-key-id") {
		t.Errorf("redact from stdin: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	f := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(f, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "redact", f); out != want {
		t.Errorf("redact FILE: %s", out)
	}
	if out, errOut, code := cli(t, "AKIAABCDEFGHIJKLMNOP", "redact", "-"); code != 2 || out != "" || !strings.Contains(errOut, "not one valid JSON value") {
		t.Errorf("redact of text: exit %d, stdout %q, stderr %q; want exit 2 and an error", code, out, errOut)
	}
	t.Setenv(redactEnv, "0")
	if out, errOut, code := cli(t, in, "redact"); code != 0 || out != in || !strings.Contains(errOut, "off") {
		t.Errorf("redact with %s=0: exit %d\nstdout %s\nstderr %s", redactEnv, code, out, errOut)
	}
}

// TestRedactStatusCounts checks that status counts what delivered batches
// had redacted, per rule, across drains, and that DIFFLORE_REDACT=0 sends
// payloads as they were queued.
func TestRedactStatusCounts(t *testing.T) {
	testHome(t)
	sink := filepath.Join(t.TempDir(), "events.jsonl")
	key := `{"prompt":"AKIAABCDEFGHIJKLMNOP and AKIAABCDEFGHIJKLMNOQ"}`
	mustCLI(t, "enqueue", key)
	mustCLI(t, "drain", "--endpoint", fileURL(sink))
	mustCLI(t, "enqueue", `{"tool_input":{"password":"hunter22"}}`)
	mustCLI(t, "enqueue", `{"prompt":"AKIAABCDEFGHIJKLMNOR"}`)
	mustCLI(t, "drain", "--endpoint", fileURL(sink))
	out, _, _ := cli(t, "", "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if want := map[string]int64{"aws-access-key-id": 3, secretAssignment: 1}; !maps.Equal(rep.Redacted, want) {
		t.Errorf("status counts %v, want %v", rep.Redacted, want)
	}
	if text, _, _ := cli(t, "", "status"); !strings.Contains(text, "redacted: 3 aws-access-key-id, 1 secret-assignment") {
		t.Errorf("status does not show the counts:\n%s", text)
	}
	t.Setenv(redactEnv, "0")
	mustCLI(t, "enqueue", key)
	mustCLI(t, "drain", "--endpoint", fileURL(sink))
	lines := readLines(t, sink)
	if last := lines[len(lines)-1]; !strings.Contains(last, key) {
		t.Errorf("with %s=0 the payload changed: %s", redactEnv, last)
	}
	if strings.Contains(strings.Join(lines[:3], "\n"), "AKIA") {
		t.Errorf("a key was delivered with redaction on:\n%s", strings.Join(lines, "\n"))
	}
}

// TestRedactHTTPAndOTLP checks that what reaches an HTTP and an OTLP/HTTP
// endpoint on loopback is redacted too: redaction is the drainer's, before
// any encoder.
func TestRedactHTTPAndOTLP(t *testing.T) {
	g := newSecretGen(1414)
	key := "ghp_" + g.s(alnum, 36)
	jwt := g.jwt()
	for _, scheme := range []string{"http", "otlp+http"} {
		t.Run(scheme, func(t *testing.T) {
			testHome(t)
			var bodies [][]byte
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := readRequest(r)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				bodies = append(bodies, b)
				mu.Unlock()
			}))
			defer srv.Close()
			mustCLI(t, "enqueue", fmt.Sprintf(`{"hook_event_name":"PreToolUse","tool_input":{"command":"curl -H 'Authorization: token %s' https://api.github.com/user"}}`, key))
			mustCLI(t, "enqueue", fmt.Sprintf(`{"hook_event_name":"UserPromptSubmit","prompt":"decode %s please"}`, jwt))
			mustCLI(t, "drain", "--endpoint", strings.Replace(srv.URL, "http", scheme, 1))
			mu.Lock()
			all := bytes.Join(bodies, nil)
			mu.Unlock()
			if len(all) == 0 {
				t.Fatal("nothing arrived")
			}
			for _, secret := range []string{key, jwt} {
				if bytes.Contains(all, []byte(secret)) {
					t.Errorf("%s arrived at the endpoint:\n%s", secret, all)
				}
			}
			for _, marker := range []string{"[REDACTED:github-token]", "[REDACTED:jwt]"} {
				if !bytes.Contains(all, []byte(marker)) {
					t.Errorf("no %s in what arrived:\n%s", marker, all)
				}
			}
		})
	}
}
