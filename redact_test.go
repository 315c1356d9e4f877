package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
		add("private-key", "mangled in a copy: %s", strings.Replace(g.pem("RSA PRIVATE KEY"), "BEGIN RSA PRIVATE", "BEGINrsaPRIVATE", 1))
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
		add("secret-assignment", "[client]\nuser = app\npassword = %s\n", g.s(alnum, 14))
		add("secret-assignment", "machine api.example.com login bob password %s\n", g.s(alnum, 16))
		add("pgpass", "db.internal:5432:app:bob:%s\n", g.s(alnum, 20))
		providerCorpus(g, add)
	}
	return cs
}

// providerCorpus adds a secret of each of providerRules, in the shape the
// provider documents, in a line that names it as a person would.
func providerCorpus(g *secretGen, add func(rule, format, secret string)) {
	const hex, lowerD = "abcdef0123456789", "abcdefghijklmnopqrstuvwxyz0123456789"
	uuid := func() string {
		return g.s(hex, 8) + "-" + g.s(hex, 4) + "-" + g.s(hex, 4) + "-" + g.s(hex, 4) + "-" + g.s(hex, 12)
	}
	add("gitlab-token", "deploy with %s", "glrt-"+g.s(b64url, 20))
	add("gitlab-token", "the job token %s expired", "glcbt-"+g.s(lowerD, 2)+"_"+g.s(b64url, 20))
	add("gitlab-token", "trigger: %s", "glptt-"+g.s(hex, 40))
	add("slack-token", "socket mode uses %s", "xapp-1-A"+g.s(upperD, 10)+"-"+g.s(digitsS, 13)+"-"+g.s(hex, 64))
	add("slack-webhook", "curl -X POST https://%s -d '{}'", "hooks.slack.com/services/T"+g.s(upperD, 8)+"/B"+g.s(upperD, 10)+"/"+g.s(alnum, 24))
	add("teams-webhook", "post to https://%s", "acme.webhook.office.com/webhookb2/"+uuid()+"@"+uuid()+"/IncomingWebhook/"+g.s(hex, 32)+"/"+uuid())
	add("shopify-token", "X-Shopify-Access-Token %s", "shpat_"+g.s(hex, 32))
	add("square-token", "square sandbox %s", "EAAA"+g.s(b64url, 60))
	add("flutterwave-key", "flutterwave %s", "FLWSECK_TEST-"+g.s(hex, 32)+"-X")
	add("pypi-token", "twine upload -p %s dist/*", "pypi-AgEIcHlwaS5vcmc"+g.s(b64url, 70))
	add("rubygems-token", "gem push with %s", "rubygems_"+g.s(hex, 48))
	add("clojars-token", "deploy token %s", "CLOJARS_"+g.s(hex, 60))
	add("artifactory-token", "jfrog %s", "AKCp"+g.s(alnum, 69))
	add("databricks-token", "databricks token %s", "dapi"+g.s(hex, 32))
	add("planetscale-token", "pscale %s", "pscale_tkn_"+g.s(b64url, 43))
	add("clickhouse-key", "clickhouse %s", "4b1d"+g.s(alnum, 38))
	add("digitalocean-token", "doctl auth init -t %s", "dop_v1_"+g.s(hex, 64))
	add("doppler-token", "doppler %s", "dp.pt."+g.s(alnum, 43))
	add("flyio-token", "fly %s", "fo1_"+g.s(b64url, 43))
	add("heroku-key", "heroku %s", "HRKU-AA"+g.s(b64url, 58))
	add("pulumi-token", "pulumi login with %s", "pul-"+g.s(hex, 40))
	add("vault-token", "vault login %s", "hvs."+g.s(b64url, 90))
	add("alibaba-key-id", "aliyun %s", "LTAI"+g.s(alnum, 20))
	add("cloudflare-key", "origin ca %s", "v1.0-"+g.s(hex, 24)+"-"+g.s(hex, 146))
	add("aws-bedrock-key", "bedrock %s", "ABSK"+g.s(b64std, 132))
	add("openshift-token", "oc login --token=%s", "sha256~"+g.s(b64url, 43))
	add("scalingo-token", "scalingo %s", "tk-us-"+g.s(b64url, 48))
	add("perplexity-key", "perplexity %s", "pplx-"+g.s(alnum, 48))
	add("huggingface-token", "org token %s", "api_org_"+g.s("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 34))
	add("1password-key", "secret key %s", "A3-"+g.s(upperD, 6)+"-"+g.s(upperD, 11)+"-"+g.s(upperD, 5)+"-"+g.s(upperD, 5)+"-"+g.s(upperD, 5))
	add("1password-token", "OP service account %s", "ops_eyJ"+g.s(b64std, 300))
	add("age-secret-key", "age key %s", "AGE-SECRET-KEY-1"+g.s("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58))
	add("linear-key", "linear %s", "lin_api_"+g.s(alnum, 40))
	add("grafana-token", "grafana %s", "glsa_"+g.s(alnum, 32)+"_"+g.s(hex, 8))
	add("postman-key", "postman %s", "PMAK-"+g.s(hex, 24)+"-"+g.s(hex, 34))
	add("sentry-token", "sentry %s", "sntryu_"+g.s(hex, 64))
	add("notion-token", "notion %s", "ntn_"+g.s(digitsS, 11)+g.s(alnum, 35))
	add("dynatrace-token", "dynatrace %s", "dt0c01."+g.s(upperD, 24)+"."+g.s(alnum, 64))
	add("adobe-secret", "adobe %s", "p8e-"+g.s(alnum, 32))
	add("airtable-token", "airtable %s", "pat"+g.s(alnum, 14)+"."+g.s(hex, 64))
	add("airtable-token", "after a run: pat0%s", "pat"+g.s(alnum, 14)+"."+g.s(hex, 64))
	add("authress-key", "authress %s", "sc_"+g.s(lowerD, 20)+"."+g.s(lowerD, 5)+".acc_"+g.s(lowerD, 20)+"."+g.s(b64url, 60))
	add("duffel-token", "duffel %s", "duffel_test_"+g.s(b64url, 43))
	add("easypost-key", "easypost %s", "EZAK"+g.s(alnum, 54))
	add("facebook-token", "page token %s", "EAAC"+g.s(alnum, 150))
	add("frameio-token", "frame.io %s", "fio-u-"+g.s(b64url, 64))
	add("harness-key", "harness %s", "pat."+g.s(b64url, 22)+"."+g.s(alnum, 24)+"."+g.s(alnum, 20))
	add("infracost-token", "infracost %s", "ico-"+g.s(alnum, 32))
	add("intra42-secret", "42 %s", "s-s4t2ud-"+g.s(hex, 64))
	add("octopus-key", "octopus %s", "API-"+g.s(upperD, 26))
	add("prefect-token", "prefect %s", "pnu_"+g.s(alnum, 36))
	add("readme-token", "readme %s", "rdme_"+g.s(lowerD, 70))
	add("brevo-key", "brevo %s", "xkeysib-"+g.s(hex, 64)+"-"+g.s(alnum, 16))
	add("settlemint-token", "settlemint %s", "sm_pat_"+g.s(alnum, 16))
	add("shippo-token", "shippo %s", "shippo_live_"+g.s(hex, 40))
	add("nuget-password", `      <add key="ClearTextPassword" value="%s" />`, g.s(alnum, 20))
	add("kubernetes-secret", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  DATABASE_URL: %s", g.s(b64std, 40)+"==")
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
	// Queued in one transaction: thousands of enqueue commands would each
	// wait for a sync of the disk, and enqueue stores a compact JSON
	// payload as it is (TestEnqueue* test that).
	ob := mustOutbox(t, mustOpenHomeCreate(t, e.home), time.Now)
	err := ob.immediate(func() error {
		for _, id := range slices.Sorted(maps.Keys(payloads)) {
			if err := ob.insert(id, "event", payloads[id], time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	ob.Close()
	if err != nil {
		t.Fatal(err)
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

// realSecrets are secrets in the shapes their providers document, not in
// the shapes the rules were written from: where a provider publishes an
// example (AWS, Slack, jwt.io), it is that example; else random text of
// the documented alphabet and length. None is a live key.
var realSecrets = []struct {
	provider, secret string
}{
	// AWS's documentation example access key id and secret access key.
	{"aws-key-id", "AKIAIOSFODNN7EXAMPLE"},
	{"aws-secret", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	// GitHub: ghp_ and 36 base62 characters (the last six a checksum);
	// fine-grained: github_pat_, 22 characters, _, 59 characters.
	{"github", "ghp_30PExMNrz5qw8w5luEHjej0YMV7J4iaSX9cg"},
	{"github-pat", "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"},
	// GitLab: glpat- and 20 characters of [0-9A-Za-z_-].
	{"gitlab", "glpat-xo_xiDLU-A_IcoOXVsqs"},
	// Slack's own documentation example of a bot token.
	{"slack", "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"},
	// Stripe: sk_live_, then 99 base62 characters in today's keys.
	{"stripe", "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"},
	// OpenAI project key: sk-proj-, T3BlbkFJ ("OpenAI" in base64) in the
	// middle of 156 characters of [0-9A-Za-z_-].
	{"openai", "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"},
	// Anthropic: sk-ant-api03-, 93 characters of [0-9A-Za-z_-], AA.
	{"anthropic", "sk-ant-api03-9HDvQ-q7tx5JgNvg6PZqJnfQShNlbaR--bEqvBYSkHh0HPCd4_v3CuSsz46c4dC6cLs_TVBipqmbG6XZTBUTcOVOzPPaaAA"},
	// Google API key: AIza and 35 characters of [0-9A-Za-z_-].
	{"google", "AIzaffUI409HkGhlE1fVyIrST9GgR9DbuTv2_9n"},
	// npm: npm_ and 36 base62 characters.
	{"npm", "npm_wm7TPGKE70LxbXKrCrh5q9Pa6K9vlA4WfgYq"},
	// Hugging Face: hf_ and 34 letters, upper and lower case, no digit.
	{"huggingface", "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"},
	// SendGrid: SG., 22 characters, ., 43 characters.
	{"sendgrid", "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"},
	// jwt.io's example token.
	{"jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"},
}

// realSecret returns the secret of realSecrets for provider.
func realSecret(t testing.TB, provider string) string {
	t.Helper()
	for _, s := range realSecrets {
		if s.provider == provider {
			return s.secret
		}
	}
	t.Fatalf("no real secret of %q", provider)
	return ""
}

// redactString redacts one JSON payload and returns it.
func redactString(t testing.TB, p string) string {
	t.Helper()
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := r.payload([]byte(p), func(string) {})
	if !json.Valid(out) {
		t.Fatalf("redaction made invalid JSON:\n in %s\nout %s", p, out)
	}
	return string(out)
}

// survivors returns what of secrets can still be read in the payload out:
// in its JSON strings as they decode, with percent and backslash escapes
// undone (as a reader of a URL or of JSON quoted in text would).
func survivors(out string, secrets ...string) []string {
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return []string{"(output is not JSON: " + err.Error() + ")"}
	}
	var texts []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			texts = append(texts, v, unescapeAll(v))
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				texts = append(texts, k)
				walk(e)
			}
		}
	}
	walk(v)
	all := strings.Join(texts, "\n")
	var left []string
	for _, s := range secrets {
		if strings.Contains(all, s) {
			left = append(left, s)
		}
	}
	return left
}

// unescapeAll undoes percent-encoding and JSON backslash escapes until
// nothing changes, with url.PathUnescape and strconv.Unquote: an
// implementation of its own, not the redactor's.
func unescapeAll(s string) string {
	for range 8 {
		prev := s
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && i+2 < len(s) {
				if d, err := url.PathUnescape(s[i : i+3]); err == nil {
					b.WriteString(d)
					i += 2
					continue
				}
			}
			if s[i] == '\\' && i+1 < len(s) {
				n := 2
				if s[i+1] == 'u' {
					n = 6
				}
				if i+n <= len(s) {
					if d, err := strconv.Unquote(`"` + s[i:i+n] + `"`); err == nil {
						b.WriteString(d)
						i += n - 1
						continue
					}
				}
			}
			b.WriteByte(s[i])
		}
		if s = b.String(); s == prev {
			break
		}
	}
	return s
}

// TestRedactHuggingFaceToken checks real Hugging Face tokens: hf_ and 34
// letters, upper and lower case, with or without digits.
func TestRedactHuggingFaceToken(t *testing.T) {
	for _, tok := range []string{realSecret(t, "huggingface"), "hf_ncC9VifsHp88XBJv0FHz7BdKjuVZfJLqCe"} {
		p := fmt.Sprintf(`{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"huggingface-cli upload acme/llama-ft ./out --token %s","description":"Upload the model"}}`, tok)
		out := redactString(t, p)
		if left := survivors(out, tok); len(left) > 0 || !strings.Contains(out, "[REDACTED:huggingface-token]") {
			t.Errorf("%s survived:\n%s", tok, out)
		}
	}
	benign := `{"prompt":"pip install hf_transfer; from huggingface_hub import hf_hub_download, HfApi"}`
	if out := redactString(t, benign); out != benign {
		t.Errorf("benign text changed:\n%s", out)
	}
}

// TestRedactPercentEncoded checks secrets in percent-encoded text (a
// redirect URL, double encoding, JSON escapes inside text) and keys that a
// letter, a digit or an underscore touches.
func TestRedactPercentEncoded(t *testing.T) {
	ghp, aws, jwt := realSecret(t, "github"), realSecret(t, "aws-key-id"), realSecret(t, "jwt")
	const opaque = "iBFxPOmkGPNbky07" // a value of no provider's shape
	for _, tc := range []struct {
		name, text string
		secrets    []string
	}{
		{"redirect", "https://app.example.com/login?next=%2Fcb%3Faccess_token%3D" + ghp + "%26aws%3D" + aws + "%26id_token%3D" + jwt, []string{ghp, aws, jwt}},
		{"name only", "https://app.example.com/login?next=%2Fcb%3Faccess_token%3D" + opaque + "%26page%3D2", []string{opaque}},
		{"double", "https://sso.example.com/?r=https%253A%252F%252Fapp%252Fcb%253Fclient_secret%253D" + opaque + "%2526x%253D1", []string{opaque}},
		{"encoded chars", "token%3D%69%42%46xPOmkGPNbky07 and %67hp_" + ghp[4:], []string{opaque, ghp}},
		{"json in text", `{"url":"https:\/\/app.example.com\/cb?token\u003d` + opaque + `\u0026page=2"}`, []string{opaque}},
		{"digit before", "key1" + aws + " and x" + ghp, []string{aws, ghp}},
		{"suffix", aws + "_prod " + ghp + "_old", []string{aws, ghp}},
	} {
		p, _ := json.Marshal(map[string]any{"hook_event_name": "PostToolUse", "tool_name": "WebFetch",
			"tool_input":    map[string]any{"url": "https://app.example.com/", "prompt": "summarise"},
			"tool_response": map[string]any{"result": "Redirected to " + tc.text + " (302)"}})
		out := redactString(t, string(p))
		if left := survivors(out, tc.secrets...); len(left) > 0 {
			t.Errorf("%s: %q survived:\n%s", tc.name, left, out)
		}
	}
}

// editPayload is a Claude Code PostToolUse event of an Edit that added
// lines to a file: tool_response carries the edit's structuredPatch, one
// JSON string per line of each hunk, as Claude Code sends it.
func editPayload(t testing.TB, path string, before, added, after []string) []byte {
	t.Helper()
	var lines []string
	for _, l := range before {
		lines = append(lines, " "+l)
	}
	for _, l := range added {
		lines = append(lines, "+"+l)
	}
	for _, l := range after {
		lines = append(lines, " "+l)
	}
	oldText := strings.Join(append(slices.Clone(before), after...), "\n") + "\n"
	p, err := json.Marshal(map[string]any{
		"session_id":      "558cdcc9-eca8-448a-8061-64b5629eccb2",
		"transcript_path": "/home/dev/.claude/projects/-home-dev-project/558cdcc9-eca8-448a-8061-64b5629eccb2.jsonl",
		"cwd":             "/home/dev/project", "permission_mode": "default",
		"hook_event_name": "PostToolUse", "tool_name": "Edit",
		"tool_input": map[string]any{"file_path": path, "old_string": before[len(before)-1], "new_string": strings.Join(append(before[len(before)-1:], added...), "\n")},
		"tool_response": map[string]any{
			"filePath": path, "oldString": before[len(before)-1], "newString": strings.Join(append(before[len(before)-1:], added...), "\n"),
			"originalFile": oldText,
			"structuredPatch": []any{map[string]any{
				"oldStart": 1, "oldLines": len(before) + len(after), "newStart": 1, "newLines": len(before) + len(added) + len(after),
				"lines": lines,
			}},
			"userModified": false, "replaceAll": false,
		},
		"tool_use_id": "toolu_01ABC",
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ecKeyPEM is a real EC private key (P-256, from a fixed scalar), as
// openssl and Go write one: PEM, without the final newline.
func ecKeyPEM(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x5e}, 32))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), "\n")
}

// pemLines is ecKeyPEM as lines indented for a YAML block.
func pemLines(t testing.TB, indent string) []string {
	lines := strings.Split(ecKeyPEM(t), "\n")
	for i := range lines {
		lines[i] = indent + lines[i]
	}
	return lines
}

// TestRedactKeySplitOverStrings checks a private key that an Edit's
// structuredPatch carries one line per string: every line of it, from
// BEGIN to END, is replaced, and the lines after END, and the strings
// after the array, stay.
func TestRedactKeySplitOverStrings(t *testing.T) {
	key := pemLines(t, "  ")
	before := []string{"apiVersion: v1", "kind: Secret", "metadata:", "  name: tls", "stringData:"}
	after := []string{"  tls.crt: /etc/tls/tls.crt", "type: kubernetes.io/tls"}
	p := editPayload(t, "/home/dev/project/deploy/tls-secret.yaml", before, append([]string{"  tls.key: |"}, key...), after)
	out := redactString(t, string(p))
	var body []string
	for _, l := range key[1 : len(key)-1] {
		body = append(body, strings.TrimSpace(l))
	}
	if left := survivors(out, append(body, "-----END EC PRIVATE KEY-----")...); len(left) > 0 {
		t.Errorf("lines of the key survived: %q\n%s", left, out)
	}
	var got struct {
		ToolResponse struct {
			StructuredPatch []struct{ Lines []string } `json:"structuredPatch"`
			UserModified    bool                       `json:"userModified"`
		} `json:"tool_response"`
		ToolUseID string `json:"tool_use_id"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	lines := got.ToolResponse.StructuredPatch[0].Lines
	if want := " " + after[0]; lines[len(lines)-2] != want || lines[len(lines)-1] != " "+after[1] {
		t.Errorf("the lines after the key changed: %q", lines[len(lines)-2:])
	}
	if lines[len(before)] != "+  tls.key: |" || got.ToolUseID != "toolu_01ABC" {
		t.Errorf("text around the key changed:\n%s", out)
	}

	// A key whose END is not in the array ends with the array: the
	// strings after it are not the key's.
	cut := editPayload(t, "/home/dev/project/key.pem", []string{"# key"}, key[:3], nil)
	out = redactString(t, string(cut))
	if left := survivors(out, strings.TrimSpace(key[1]), strings.TrimSpace(key[2])); len(left) > 0 {
		t.Errorf("lines of a cut key survived: %q\n%s", left, out)
	}
	if !strings.Contains(out, `"tool_use_id":"toolu_01ABC"`) || !strings.Contains(out, `"userModified":false`) {
		t.Errorf("strings after the array were replaced:\n%s", out)
	}
}

// TestRedactOverlapsMerge checks that where two rules find overlapping
// text, their union is replaced: an assignment that holds a key id and a
// secret key, a secret and a JWT joined by a dot.
func TestRedactOverlapsMerge(t *testing.T) {
	id, key, jwt := realSecret(t, "aws-key-id"), realSecret(t, "aws-secret"), realSecret(t, "jwt")
	const opaque = "iBFxPOmkGPNbky07"
	for _, tc := range []struct {
		text    string
		secrets []string
	}{
		{"AWS_CREDENTIALS=" + id + ":" + key + "\n", []string{id, key}},
		{"client_secret=" + opaque + "." + jwt + "\n", []string{opaque, jwt}},
		{"curl -H 'Authorization: Bearer " + opaque + jwt + "' https://api.example.com/", []string{opaque, jwt}},
	} {
		p, _ := json.Marshal(map[string]any{"hook_event_name": "PostToolUse", "tool_name": "Bash",
			"tool_input": map[string]any{"command": "cat .env"}, "tool_response": map[string]any{"stdout": tc.text, "stderr": ""}})
		out := redactString(t, string(p))
		if left := survivors(out, tc.secrets...); len(left) > 0 {
			t.Errorf("%q survived:\n%s", left, out)
		}
	}
}

// adversarial are payloads built to make a redactor do more than linear
// work, by size: names that each start a value holding the next, runs
// that a rule starts on and never finishes, escapes to decode, quotes.
var adversarial = []struct {
	name string
	make func(n int) []byte
}{
	{"token-chain", func(n int) []byte { return stringPayload(strings.Repeat("token=", n/6)) }},
	{"key-names", func(n int) []byte { return stringPayload(strings.Repeat("api_key=password: secret=", n/25)) }},
	{"calls", func(n int) []byte { return stringPayload(strings.Repeat("token=a(", n/8)) }},
	{"paths", func(n int) []byte { return stringPayload(strings.Repeat("token=/", n/7)) }},
	{"quotes", func(n int) []byte { return stringPayload(strings.Repeat(`token="x token='`, n/16)) }},
	{"run-of-a", func(n int) []byte { return stringPayload(strings.Repeat("a", n)) }},
	{"begin", func(n int) []byte { return stringPayload(strings.Repeat("-----BEGIN", n/10)) }},
	{"begin-key", func(n int) []byte { return stringPayload(strings.Repeat("-----BEGIN RSA PRIVATE KEY-----\n", n/32)) }},
	{"pct3D", func(n int) []byte { return stringPayload("token" + strings.Repeat("%3D", n/3)) }},
	{"pct253D", func(n int) []byte { return stringPayload(strings.Repeat("token%253D", n/10)) }},
	{"akia", func(n int) []byte { return stringPayload(strings.Repeat("AKIA", n/4)) }},
	{"jwt-parts", func(n int) []byte { return stringPayload(strings.Repeat("eyJhbGciOiJI.", n/13)) }},
	{"nested-json", func(n int) []byte { return nestedJSON(n) }},
	{"many-strings", func(n int) []byte {
		return []byte(`["-----BEGIN RSA PRIVATE KEY-----",` + strings.Repeat(`"token=abc","x",`, n/16) + `"y"]`)
	}},
	{"hex-table", func(n int) []byte { return stringPayload(strings.Repeat("secret=0123456789abcdef0123 ", n/28)) }},
	{"open-quotes", func(n int) []byte { return stringPayload(strings.Repeat("'token' => \"x ", n/15)) }},
	{"k8s-data", func(n int) []byte { return stringPayload("kind: Secret\n" + strings.Repeat("data: a: b c: ", n/14)) }},
	{"k8s-docs", func(n int) []byte { return stringPayload(strings.Repeat("kind: secret\ndata:\n---\n", n/24)) }},
	{"netrc", func(n int) []byte { return stringPayload(strings.Repeat("login a password ", n/17)) }},
	{"ini-lines", func(n int) []byte { return stringPayload(strings.Repeat("token = token = a1b2c3d4e5\n", n/27)) }},
	{"pgpass", func(n int) []byte { return stringPayload("'" + strings.Repeat("h:5432:d:u:", n/11)) }},
	{"pgpass-ports", func(n int) []byte { return stringPayload("'" + strings.Repeat("h:15432:d:u:", n/12)) }},
}

// stringPayload is a hook event whose one long string is s.
func stringPayload(s string) []byte {
	p, _ := json.Marshal(map[string]any{"hook_event_name": "PostToolUse", "tool_name": "Read",
		"tool_response": map[string]any{"file": map[string]any{"filePath": "/home/dev/x", "content": s}}})
	return p
}

// nestedJSON is JSON quoted in a string, quoted in a string, eight deep,
// with an assignment at every level: each level doubles the backslashes.
func nestedJSON(n int) []byte {
	s := `{"password":"hunter22"}`
	for range 8 {
		b, _ := json.Marshal(map[string]string{"token": "abc", "data": s})
		s = string(b)
	}
	return stringPayload(strings.Repeat(s, max(1, n/len(s))))
}

// TestRedactLinear checks that redaction does work in proportion to the
// payload on every adversarial input: it counts the bytes the redactor's
// scans step over (scratch.steps), not time, at two sizes.
func TestRedactLinear(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const small, large = 16 << 10, 128 << 10
	for _, a := range adversarial {
		steps := func(n int) (int, int) {
			p := a.make(n)
			sc := new(scratch)
			r.redact(sc, p, func(string) {})
			return sc.steps, len(p)
		}
		s1, n1 := steps(small)
		s2, n2 := steps(large)
		perByte1, perByte2 := float64(s1)/float64(n1), float64(s2)/float64(n2)
		t.Logf("%-12s %7d bytes %9d steps (%.1f/byte); %7d bytes %9d steps (%.1f/byte)", a.name, n1, s1, perByte1, n2, s2, perByte2)
		// Linear work keeps steps per byte as the size grows eightfold;
		// quadratic work multiplies it by about eight.
		if perByte2 > 1.5*perByte1+1 {
			t.Errorf("%s: %.1f steps per byte at %d bytes, %.1f at %d: not linear", a.name, perByte1, n1, perByte2, n2)
		}
	}
}

// TestRedactScannersMatchExpressions checks the rules found by hand
// (jwts, awsKeyIDs, privateKeys) against the regular expressions they
// stand for, run by the regexp package, on random text made of the bytes
// that matter to each.
func TestRedactScannersMatchExpressions(t *testing.T) {
	keyEnd := `-----END[A-Z0-9 +]{0,40}[ +]PRIVATE[ +]KEY(?:[ +]BLOCK)?-----`
	begin := regexp.MustCompile(`^-----BEGIN[A-Z0-9 +]{0,40}[ +]PRIVATE[ +]KEY(?:[ +]BLOCK)?-----`)
	end := regexp.MustCompile(keyEnd)
	for _, tc := range []struct {
		name   string
		re     *regexp.Regexp
		scan   func([]byte, func(s, e int))
		pieces []string
		group  bool // the scan finds the expression's first group
	}{
		{"jwt", regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`), jwts,
			[]string{"eyJ", "a", "b", "_", "-", ".", " ", "eyJhbGciOi", "J"}, false},
		{"aws", regexp.MustCompile(`(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}`), awsKeyIDs,
			[]string{"AKIA", "ASIA", "ACCA", "ABIA", "A", "K", "7", "a", " ", "QWERTYUIOP"}, false},
		{"private-key", regexp.MustCompile(`-----BEGIN[A-Z0-9 +]{0,40}[ +]PRIVATE[ +]KEY(?:[ +]BLOCK)?-----(?:[\s\S]*?` + keyEnd + `|[\s\S]*)`),
			func(text []byte, found func(s, e int)) { privateKeys(begin, end, text, found) },
			[]string{"-----BEGIN", "-----END", " PRIVATE KEY-----", "+PRIVATE+KEY", " BLOCK-----", "RSA", "\n", "MIIE", "-"}, false},
		{"pgpass", pgpassExpression(), pgpassLines,
			[]string{":", "5432:", "6432", "*", "h", "db", "\n", "\r", " ", "'", "\"", "#", "pw:x", "\t", "5433:", "25060", "0", "1", "7", `\`, `\:`, `\\`, "80:"}, true},
	} {
		rnd := rand.New(rand.NewPCG(21, uint64(len(tc.name))))
		for range 3000 {
			var b strings.Builder
			for range rnd.IntN(40) {
				b.WriteString(tc.pieces[rnd.IntN(len(tc.pieces))])
			}
			text := []byte(b.String())
			want := tc.re.FindAllIndex(text, -1)
			if tc.group {
				want = nil
				for _, m := range tc.re.FindAllSubmatchIndex(text, -1) {
					g := m[2:]
					for len(g) > 2 && g[0] < 0 { // the group of the alternative that matched
						g = g[2:]
					}
					want = append(want, g[:2])
				}
			}
			var got [][]int
			tc.scan(text, func(s, e int) { got = append(got, []int{s, e}) })
			if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("%s in %q: found %v, the expression %v", tc.name, text, got, want)
			}
		}
	}
}

// pgpassExpression is the regular expression pgpassLines stands for (its
// comment gives it with H, F and E written once).
func pgpassExpression() *regexp.Regexp {
	const (
		e = `\\[^\s'"]`                 // an escape: \: or \\ (or any byte but a blank or a quote)
		h = `(?:[^:\s#'"\\]|` + e + `)` // a byte of a host
		f = `(?:[^:\s'"\\]|` + e + `)+` // a field
	)
	return regexp.MustCompile(`(?m)(?:^|['"])(?:` + h + `+:(?:5432|6432|\*):` + f + `:` + f + `:((?:[^\s'"\\]|` + e + `)+\\?|\\)` +
		`|` + h + `*(?:[^:\s#'"\\0-9]|` + e + `)` + h + `*:[1-9][0-9]{2,4}:` + f + `:` + f + `:((?:[^\s'":\\]|` + e + `)+\\?|\\))(?:[ \t\r]*$|['"])`)
}

// TestRedactLeavesCodeAndExamples feeds lines of the Go standard library
// (GOROOT/src, where the false-positive test of integration/redact found
// them) that name secrets without holding one, and checks that nothing is
// replaced; beside each kind, a real-shaped secret in the same place must
// still be.
func TestRedactLeavesCodeAndExamples(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	benign := []string{
		"\tIMAGE_REL_ARM64_TOKEN          = 0x000C\n\tIMAGE_REL_ARM64_SECTION        = 0x000D\n", // cmd/link/internal/ld/pe.go
		"\tSIOCGLIFTOKEN                 = -0x3f879678\n",                                        // syscall/zerrors_solaris_amd64.go
		"\t\tnew := &Line{Token: tokens}\n",                                                      // x/mod/modfile/read.go
		"\t\t\tblock := &LineBlock{Token: stmt.Token[:1], Line: []*Line{stmt}}\n",                // x/mod/modfile/read.go
		"\t\t\t\tl.password = f[i+1]\n",                                                          // cmd/go/internal/auth/netrc.go
		"\t\tPrivateKey:  testRSAPrivateKey,\n\t}\n",                                             // crypto/tls/auth_test.go
		"{Certificate: [][]byte{testRSA2048Certificate}, PrivateKey: testRSA2048PrivateKey}}",    // crypto/tls/handshake_client_test.go
		"\t\tPrivateKey: messageOnlySigner{testRSAPrivateKey},\n",                                // crypto/tls/tls_test.go
		"\t\tq.readSecret = map[QUICEncryptionLevel]suiteSecret{}\n",                             // crypto/tls/quic_test.go
		"\t\treturn fmt.Errorf(\"error acquiring upload token: creating token file: %v\", err)",  // x/telemetry/start.go
		"\t\tt.Errorf(\"bad token: got %s, expected %s\", tok, want)\n",                          // go/scanner/scanner_test.go
		"\tconst fakeConnectionToken = \"X-Fake-Connection-Token\"\n",                            // net/http/httputil/reverseproxy_test.go
		"package secret\n\nconst Secret = \"this should be ignored\"\n",                          // cmd/go/testdata/script/list_ignore.txt
		"\t\"Username\": \"aladdin\",\n\t\"Password\": \"opensesame\",\n",                        // cmd/go/testdata/vcstest/auth/or401.txt
		"https://example.com\nusername=bob\npassword=secr3t\n",                                   // cmd/go/internal/auth/gitauth_test.go
		"\t\t\tPassword: password16,\n",                                                          // os/user/user_windows_test.go
		"https://example.com\n\nAuthorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\n",                 // cmd/go/internal/auth/userauth_test.go
		"Authorization: Basic jpvcGVuc2VzYW1lYWxhZGRpb\n",                                        // cmd/go/internal/auth/userauth_test.go
		"\t\t\"http://user:password@google.com\",\n",                                             // net/url/url_test.go
		"\t// https://user:xxxxx@example.com/foo/bar\n",                                          // net/url/example_test.go
		"\t\tin:   \"http://user:pa%2Fssword@dummy.faketld/\",\n",                                // net/http/client_test.go
		"\t\t{lastReq: \"http://gopher:go@test.com\", newReq: \"http://gopher:go@test.com\"},",   // net/http/client_test.go
		"\t\t\"http://foo:bar@bar.com\",\n",                                                      // net/http/proxy_test.go
		"a span winning: AWS_CREDENTIALS=AKIA…:<secret key> and",                                 // this repository's git log
		"CRASIlMJDhJOcsPgscAAABJwe8jDx+EAAAAAABJgf8AIAAAD4OkAgAATIlsJFBKi1T4\n",                  // debug/buildinfo/testdata/go117/go117.base64
		"\tLSH          ScanToken = -1000 - iota // << Left shift.\n",                            // cmd/asm/internal/lex/lex.go
		"\t\tt.Errorf(\"loadCredential:\\nhave %q\\nwant %q\", got.Header, want)\n",              // cmd/go/internal/auth/auth_test.go
		// Tables of test vectors give the same name a hex value per case.
		"\t\tPrivateKey: \"7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534\",\n" + // crypto/ecdh/ecdh_test.go
			"\t\tSharedSecret: \"46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b\",\n" +
			"\t\tPrivateKey: \"3cc3122a68f0d95027ad38c067916ba0eb8c38894d22e1b15618b6818a661774ad463b205da88cf699ab4d43c9cf98a1\",\n" +
			"\t\tSharedSecret: \"5f9d29dc5e31a163060356213669c8ce132e22f57c9a04f40ba7fcead493b457e5621e766c40a2e3d4d6a04b25e533f1\",\n" +
			"\t\tPrivateKey:    \"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\",\n" +
			"\t\tSharedSecret:  \"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742\",\n",
		"    \"shared_secret\": \"2fc9533e0ba8e59f0753280bc099674320bae39a0d4f817b6271789b2f4aef33\",\n" + // crypto/hpke/testdata/hpke-pq.json
			"    \"shared_secret\": \"02a5ae918c2061093153b64a9ab0e7fd0557b83c525ae40b5105445562acf451\",\n" +
			"    \"shared_secret\": \"82e39853d199735aa5bf8fb3fbee412de8b39ae39cbad0bd7326c3cf1f6c6232\",\n",
		"//\ttoken          = 1*tchar\n//\ttchar = \"!\" / \"#\" / \"$\"\n",          // vendor/golang.org/x/net/http/httpguts/httplex.go
		"//\t\"0;token=val\" => \"0\"\n",                                             // net/http/internal/chunked.go
		"\t\t// \tgroupname:password:GID:user_list\n\t\t// groupname:password:GID\n", // os/user/listgroups_unix.go
		"passwd:         compat\ngroup:          compat\nshadow:         compat\n",   // net/nss_test.go
		"\t\tt.Errorf(\"enc.EncodeToken: StartElement %s\", err)\n",                  // encoding/xml/marshal_test.go
		"\t\"secret\":                               \"\\u3299\\ufe0f\",\n",          // cmd/vendor/rsc.io/markdown/emoji.go
		"\tconst password = \"@/?!\"\n",                                              // net/http/transport_test.go
		"AAAAABwAAAAMAAAAAAAAAAAAAABkAAABIAAAAX19MSU5LRURJVAAAAAAAAAAgAAABAAAAB\n",   // debug/macho/testdata/clang-amd64-darwin-exec-with-rpath.base64
	}
	for _, text := range benign {
		p, _ := json.Marshal(map[string]string{"text": text})
		var rules []string
		if out := r.payload(p, func(rule string) { rules = append(rules, rule) }); len(rules) > 0 {
			t.Errorf("replaced %v in benign text %q:\n%s", rules, text, out)
		}
	}
	g := newSecretGen(7)
	secrets := []string{
		"DEPLOY_TOKEN=" + g.s(alnum, 24) + "\n",
		"PRIVATE_KEY=0x" + g.s("0123456789abcdef", 64) + "\n", // an Ethereum key is hex too, and long
		"  password: " + g.s(alnum, 14) + "\n",
		"\t\"Password\": \"" + g.s(alnum, 16) + "\",\n",
		"password=Tr0ub4dor&3\n",
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("deploy:"+g.s(alnum, 16))) + "\n",
		"git clone https://bot:" + g.s(alnum, 20) + "@git.example.com/acme/app.git",
		"client := api.New(Token: \"" + g.s(alnum, 32) + "\")",
		"curl -H \"Authorization: Bearer EAAA" + g.s(b64url, 60) + "\"", // Square
		// A hex key given once, or once per environment, is a key.
		"    \"shared_secret\": \"" + g.s("0123456789abcdef", 64) + "\",\n",
		"development:\n  secret_key: " + g.s("0123456789abcdef", 128) + "\ntest:\n  secret_key: " + g.s("0123456789abcdef", 128) + "\n",
		// A member of a PHP, Ruby or Perl hash; a quote a line leaves open.
		"'password' => '" + g.s(alnum, 14) + "',\n",
		"  'secret_key' => \"sk_" + g.s(alnum, 28) + "\n",
		// Beside a comment, in a line of its own; a word with a digit.
		"// see RFC 7230\ntoken: " + g.s(alnum, 24) + "\n",
		"passwd: " + g.s(alnum, 12) + "\n",
		"AKIA" + g.s(upperD, 16) + "\n",
	}
	for _, text := range secrets {
		p, _ := json.Marshal(map[string]string{"text": text})
		var rules []string
		if out := r.payload(p, func(rule string) { rules = append(rules, rule) }); len(rules) == 0 {
			t.Errorf("nothing replaced in %q:\n%s", text, out)
		}
	}
}

// TestRedactTypicalAllocatesNothing checks that redacting a typical hook
// event, one with no secret, allocates nothing once its scratch exists: the
// daemon redacts every event it sends, and a scan's matches are reported
// through the scratch.
func TestRedactTypicalAllocatesNothing(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A scratch of its own, not payload's pool, which the race detector
	// empties at random.
	sc := new(scratch)
	r.redact(sc, benchPayload, func(string) {})
	if n := testing.AllocsPerRun(100, func() { r.redact(sc, benchPayload, func(string) {}) }); n != 0 {
		t.Errorf("redacting a typical payload allocates %v times, want 0", n)
	}
}

// TestRedactKubernetesSecret checks the values of a Secret's data as
// kubectl prints them (data before kind, a value per line, names that say
// nothing), and that a ConfigMap's data in the next YAML document stays.
func TestRedactKubernetesSecret(t *testing.T) {
	g := newSecretGen(11)
	values := []string{g.s(b64std, 24) + "==", g.s(b64std, 44), g.s(b64std, 16) + "="}
	configMap := g.s(b64std, 32)
	yaml := "apiVersion: v1\ndata:\n  DATABASE_URL: " + values[0] + "\n  tls.crt: " + values[1] + "\n  username: " + values[2] +
		"\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\n---\napiVersion: v1\ndata:\n  settings.json: " + configMap +
		"\nkind: ConfigMap\nmetadata:\n  name: app-settings\n"
	p, _ := json.Marshal(map[string]any{"tool_name": "Bash", "tool_input": map[string]any{"command": "kubectl get secret,configmap -o yaml"},
		"tool_response": map[string]any{"stdout": yaml}})
	out := redactString(t, string(p))
	if left := survivors(out, values...); len(left) > 0 {
		t.Errorf("the Secret's values %q left:\n%s", left, out)
	}
	if !strings.Contains(out, configMap) {
		t.Errorf("the ConfigMap's value was replaced:\n%s", out)
	}
}

// TestRedactConfigFileSecrets checks secrets as config files hold them, a
// value unquoted that reads like an identifier (an .ini's password =
// Xk29fjsLq02, a .netrc's password Xk29fjsLq02), each beside code and
// placeholders of the same shape that stay.
func TestRedactConfigFileSecrets(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ text, secret string }{
		{"[client]\nuser = app\npassword = Xk29fjsLq02\n", "Xk29fjsLq02"},                                   // ~/.my.cnf
		{"password = hunter2hunter2", "hunter2hunter2"},                                                     // an .ini line
		{"token = Abc123def456ghi789", "Abc123def456ghi789"},                                                // a .cfg line
		{"[database]\nhost = db\n  api_key = q7vR2mX9pL4sT8wZ   # the key\n", "q7vR2mX9pL4sT8wZ"},           // INI, indented, a comment after
		{"spring.datasource.password = s3cr3tPassw0rdX9\n", "s3cr3tPassw0rdX9"},                             // .properties
		{"export DB_PASSWORD = 8fj2kd9sl3mq\n", "8fj2kd9sl3mq"},                                             // a spaced .env line
		{"production:\n  secret_key_base: " + strings.Repeat("9f2a7c1e5b8d3f6a", 8) + "\n", "9f2a7c1e5b8d"}, // Rails
		{"machine api.example.com login bob password Xk29fjsLq02\n", "Xk29fjsLq02"},                         // .netrc, one line
		{"machine api.example.com\n  login bob\n  password Xk29fjsLq02\n", "Xk29fjsLq02"},
		{"db.example.com:5432:app:bob:Xk29fjsLq02\n*:*:*:replica:Zq81mLp03vTr\n", "Xk29fjsLq02"},  // .pgpass
		{"db.example.com:5432:app:bob:Xk29fjsLq02\n*:*:*:replica:Zq81mLp03vTr\n", "Zq81mLp03vTr"}, // .netrc, a line each
	}
	benign := []string{
		"\tpassword = p\n",
		"\ttoken = tok.Next()\n",
		"\tsecret = os.Getenv(\"X\")\n",
		"    password = None\n",
		"password = ${DB_PASS}\n",
		"token = <your-token>\n",
		"passwd: compat\n",
		"password: changeme\n", // a well-known placeholder, as in a chart's values.yaml
		"\ttoken = nextToken\n",
		"\tpassword = hashedPassword\n",
		"\tsecret = secretBytes[:32]\n",
		"    token = self.token\n",
		"enter your password twice to confirm\n",
		"the password is stored in the keychain\n",
		"password required\n",
		"dial tcp 127.0.0.1:5432: connect: connection refused\n",
		"machine oneline login user3 password pwd3\n", // cmd/go/internal/auth/netrc_test.go
		"default\nlogin anonymous\npassword gopher@golang.org\n",
		"login oops\npassword too-late-in-file\n",
		"\tkind     PEMCipher\n\tpassword []byte\n", // crypto/x509/pem_decrypt_test.go
		"db.example.com:5432:*:*:changeme\n",
	}
	for _, c := range cases {
		p, _ := json.Marshal(map[string]any{"tool_response": map[string]string{"stdout": c.text}})
		out := r.payload(p, func(string) {})
		if left := survivors(string(out), c.secret); len(left) > 0 {
			t.Errorf("secret %q left in %q:\n%s", c.secret, c.text, out)
		}
	}
	for _, text := range benign {
		p, _ := json.Marshal(map[string]any{"tool_response": map[string]string{"stdout": text}})
		var rules []string
		if out := r.payload(p, func(rule string) { rules = append(rules, rule) }); len(rules) > 0 {
			t.Errorf("replaced %v in benign text %q:\n%s", rules, text, out)
		}
	}
}

// TestRedactConfigWordsAndPgpassPorts checks two kinds of config-file
// secrets that read as no secret by shape alone: an unquoted password of
// letters only at the start of an .ini, .env or my.cnf line (password =
// CorrectHorseBatteryStaple, xkcd's), and a .pgpass line on a port other
// than PostgreSQL's and PgBouncer's (Supabase's pooler 6543,
// DigitalOcean's 25060, CockroachDB's 26257, a second cluster's 5433),
// with * fields. Beside them, text of the same shape that stays: code
// indented in a function, IPv6 addresses, positions of a compiler's
// messages (GOROOT/src/net and cmd/internal/src hold such lines).
func TestRedactConfigWordsAndPgpassPorts(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ text, secret string }{
		{"[client]\nuser = app\npassword = CorrectHorseBatteryStaple\n", "CorrectHorseBatteryStaple"}, // ~/.my.cnf
		{"[mysqld]\npassword = hunter\n", "hunter"},
		{"DB_PASSWORD = correcthorsebatterystaple\n", "correcthorsebatterystaple"}, // a spaced .env line
		{"spring.datasource.password = Tiramisu # prod\n", "Tiramisu"},             // .properties
		{"export API_TOKEN = WhiskeyTangoFoxtrot\n", "WhiskeyTangoFoxtrot"},
		{"db.example.com:5433:app:alice:Kx8vTqLm02\n", "Kx8vTqLm02"},
		{"aws-0-eu-central-1.pooler.supabase.com:6543:postgres:postgres.abcdefghij:Tr0ub4dor3\n", "Tr0ub4dor3"},
		{"db-postgresql-fra1-12345-do-user-1.b.db.ondigitalocean.com:25060:defaultdb:doadmin:AVNS_x7Qz9pLm2KvB\n", "AVNS_x7Qz9pLm2KvB"},
		{"*:26257:*:root:CockroachPass9\n", "CockroachPass9"},
		{"localhost:5433:*:*:Zq81mLp03vTr\n", "Zq81mLp03vTr"},
		{"echo 'replica.internal:15432:*:replicator:Qw3rtyUi0p' >> ~/.pgpass", "Qw3rtyUi0p"},
	}
	benign := []string{
		"\tpassword = userInput\n",
		"    token = response\n",
		"password = password\n",
		"secret = changeme\n",
		"token = required\n",
		"enter the password = your login word\n",
		"\"2001:4860:0000:2001:0000:0000:0000:0068\"\n", // net/ip_test.go
		"2001:4860:4860:0000:0000:0000:0000:8888\n",
		"\"f3:102:7[f1:12:7]\"\n",                             // cmd/internal/src/pos_test.go
		"\"f5:10:6[f1:5:10]\", \"f1\", 5, 10,\n",              // cmd/internal/src/pos_test.go
		"{\"1234:567:fefe:bcbc:adad:9e4a:89a:bcde\", \"\"}\n", // net/lookup_test.go
		"12:34:56:78:90\n",
		"main.go:120:14:error:undefined\n",
	}
	for _, c := range cases {
		p, _ := json.Marshal(map[string]any{"tool_response": map[string]string{"stdout": c.text}})
		out := r.payload(p, func(string) {})
		if left := survivors(string(out), c.secret); len(left) > 0 {
			t.Errorf("secret %q left in %q:\n%s", c.secret, c.text, out)
		}
	}
	for _, text := range benign {
		p, _ := json.Marshal(map[string]any{"tool_response": map[string]string{"stdout": text}})
		var rules []string
		if out := r.payload(p, func(rule string) { rules = append(rules, rule) }); len(rules) > 0 {
			t.Errorf("replaced %v in benign text %q:\n%s", rules, text, out)
		}
	}
}

// readToolPayload is a Read of a file whose content is text, as Claude Code's
// PostToolUse hook gives it.
func readToolPayload(path, text string) []byte {
	p, _ := json.Marshal(map[string]any{"hook_event_name": "PostToolUse", "tool_name": "Read",
		"tool_input":    map[string]any{"file_path": path},
		"tool_response": map[string]any{"type": "text", "file": map[string]any{"filePath": path, "content": text}}})
	return p
}

// TestRedactIndentedConfigWords checks an unquoted password of letters
// only on an indented line of an INI file's section (a my.cnf, a
// pip.conf, a .pypirc indented with tabs), read whole by a Read;
// beside it, code of the same shape that stays: a variable given a
// variable inside a function, a line that follows a bracket that is no
// section header, a section left by a line of code.
func TestRedactIndentedConfigWords(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, text, secret string }{
		{"/home/dev/.my.cnf", "[client]\n    user = app\n    password = correcthorse\n", "correcthorse"},
		{"/home/dev/.my.cnf", "[client]\n\tuser = app\n\tpassword = CorrectHorseBatteryStaple\n\n[mysqld]\n\tport = 3306\n", "CorrectHorseBatteryStaple"},
		{"/etc/app/app.ini", "; app settings\n[database]\r\n  host = db.internal\r\n  # the replica's too\r\n\r\n  password = Tiramisu\r\n", "Tiramisu"},
		{"/home/dev/.pypirc", "[distutils]\n\tindex-servers =\n\t\tprivate\n[private]\n\trepository: https://pypi.example.com/\n\tusername: dev\n\tpassword = whiskeytangofoxtrot\n", "whiskeytangofoxtrot"},
		{"/etc/supervisor/conf.d/x.conf", "[program:worker]\n    command = /usr/bin/worker\n    environment = X=1\n    secret = LimeGreenTractor\n", "LimeGreenTractor"},
	}
	benign := []struct{ path, text string }{
		{"/src/app.py", "def login(self):\n    password = userInput\n    token = response\n"},
		{"/src/app.py", "class Config:\n    password = getpass\n"},
		{"/src/app.py", "x = [a]\n    password = userInput\n"},
		{"/src/app.py", "[a, b]\n    password = userInput\n"},
		{"/src/app.py", "[section]\nfor x in y:\n    password = userInput\n"},
		{"/etc/app.ini", "[client]\n    password = password\n    secret = changeme\n"},
		{"/etc/app.ini", "[client]\n    password = p\n"},
	}
	for _, c := range cases {
		out := r.payload(readToolPayload(c.path, c.text), func(string) {})
		if left := survivors(string(out), c.secret); len(left) > 0 {
			t.Errorf("secret %q left in %q:\n%s", c.secret, c.text, out)
		}
	}
	for _, c := range benign {
		var rules []string
		if out := r.payload(readToolPayload(c.path, c.text), func(rule string) { rules = append(rules, rule) }); len(rules) > 0 {
			t.Errorf("replaced %v in benign text %q:\n%s", rules, c.text, out)
		}
	}
}

// TestRedactPgpassEscapes checks .pgpass lines whose fields hold the
// escapes .pgpass allows (\: for a colon, \\ for a backslash), on ports
// known and not, read whole by a Read (in the JSON the payload carries,
// \: is \\:); the password goes, and the fields before it stay.
func TestRedactPgpassEscapes(t *testing.T) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ text, secret, kept string }{
		{`db.example.com:6543:app:bob:Tr0\:ub4dor3` + "\n", `Tr0\:ub4dor3`, "db.example.com:6543:app:bob:"},
		{`db.example.com:5432:my\:db:bob:Tr0ub4dor3` + "\n", "Tr0ub4dor3", `db.example.com:5432:my\:db:bob:`},
		{`db.example.com:6543:my\:db:bob:Tr0ub4dor3` + "\n", "Tr0ub4dor3", `db.example.com:6543:my\:db:bob:`},
		{`fe80\:\:1:5432:app:bob:Tr0ub4dor3` + "\n", "Tr0ub4dor3", `fe80\:\:1:5432:app:bob:`},
		{`[2001\:db8\:\:1]:26257:*:root:Cockr0achPass` + "\n", "Cockr0achPass", `[2001\:db8\:\:1]:26257:*:root:`},
		{`db.example.com:5432:app:dom\\bob:Tr0ub4dor3` + "\n", "Tr0ub4dor3", `db.example.com:5432:app:dom\\bob:`},
		{`db.example.com:6543:app:bob:p\\ss\:w0rdXY` + "\n", `p\\ss\:w0rdXY`, "db.example.com:6543:app:bob:"},
		{"db.example.com:5433:app:bob:Tr0ub4dor3\n", "Tr0ub4dor3", "db.example.com:5433:app:bob:"},
		{"*:*:*:*:Tr0ub4dor3\nlocalhost:6543:*:*:Zq81mLp03vTr\n", "Zq81mLp03vTr", "localhost:6543:*:*:"},
	}
	for _, c := range cases {
		out := string(r.payload(readToolPayload("/home/dev/.pgpass", c.text), func(string) {}))
		var got struct {
			ToolResponse struct{ File struct{ Content string } } `json:"tool_response"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v in %s", err, out)
		}
		if content := got.ToolResponse.File.Content; strings.Contains(content, c.secret) || !strings.Contains(content, c.kept+"[REDACTED:pgpass]") {
			t.Errorf("in %q: want %q kept and %q replaced; sent %q", c.text, c.kept, c.secret, content)
		}
	}
}
