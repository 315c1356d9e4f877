package main

import "bytes"

// providerRule is a provider's key that starts with a prefix of its own:
// the provider's documented shape, with gitleaks' default rule for the
// same key as the reference for its length and alphabet. Each expression
// starts with its literal prefix, so that the regexp scans for it fast,
// and keywords holds that prefix (or each of its spellings) in lower case.
type providerRule struct {
	name, pattern string
	keywords      []string
	// word: the prefix must not follow a letter (it ends words too).
	// bounded: the key must not run on into a letter or a digit (an
	// exact length, which a longer word of the same alphabet is not).
	word, bounded bool
	// alone: a prefix that base64 text holds as often as any four
	// letters (EAAA, AKCp) counts only where it neither follows nor runs
	// on into base64: a binary's dump holds it hundreds of times.
	alone bool
	valid func([]byte) bool
	scan  func(text []byte, found func(start, end int)) // instead of pattern
}

// providerRules are the keys of providers people paste into agents (cloud,
// source hosting, AI models, payments, chat, package registries,
// databases) and of other services gitleaks knows by a prefix. The rules
// for AWS, GitHub, GitLab's glpat-, Slack's xox?-, Stripe, Anthropic,
// OpenAI, Google, npm, Hugging Face's hf_ and SendGrid are in
// compileBuiltinRules.
func providerRules() []providerRule {
	kw := func(k ...string) []string { return k }
	return []providerRule{
		// Source hosting: GitLab's other tokens. A routable runner token
		// ends in a dot and nine of [0-9a-z].
		{name: "gitlab-token", pattern: `gl(?:cbt|dt|ffct|ft|imt|agent|oas|rt|soat|ptt)-[0-9A-Za-z_-]{20,}(?:\.[0-9a-z]{9})?`,
			keywords: kw("glcbt-", "gldt-", "glffct-", "glft-", "glimt-", "glagent-", "gloas-", "glrt-", "glsoat-", "glptt-")},
		{name: "gitlab-token", pattern: `GR1348941[0-9A-Za-z_-]{20,}`, keywords: kw("gr1348941")},
		{name: "gitlab-token", pattern: `_gitlab_session=([0-9a-z]{32,})`, keywords: kw("_gitlab_session=")},
		// Chat: Slack's app-level and configuration tokens and its
		// webhooks, Microsoft Teams' webhooks (the host's first label
		// is the tenant's, and is replaced with the rest).
		{name: "slack-token", pattern: `xapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+`, keywords: kw("xapp-")},
		{name: "slack-token", pattern: `xoxe\.xox[bpBP]-\d-[A-Za-z0-9]{20,}`, keywords: kw("xoxe.")},
		{name: "slack-webhook", pattern: `hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}`, keywords: kw("hooks.slack.com/")},
		{name: "teams-webhook", pattern: `[A-Za-z0-9-]*\.?webhook\.office\.com/webhookb2/[A-Za-z0-9@/_-]{40,}`, keywords: kw("webhook.office.com/")},
		// Payments.
		{name: "shopify-token", pattern: `shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}`, keywords: kw("shpat_", "shpca_", "shppa_", "shpss_"), bounded: true},
		{name: "square-token", pattern: `sq0atp-[A-Za-z0-9_-]{22,}`, keywords: kw("sq0atp-")},
		{name: "square-token", pattern: `EAAA[A-Za-z0-9_-]{22,60}`, keywords: kw("eaaa"), word: true, bounded: true, valid: mixedCase, alone: true},
		{name: "flutterwave-key", pattern: `FLW(?:SECK|PUBK)(?:_TEST)?-[A-Za-z0-9]{12,}(?:-X)?`, keywords: kw("flwseck", "flwpubk")},
		// Package registries.
		{name: "pypi-token", pattern: `pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}`, keywords: kw("pypi-ageichlwas5vcmc")},
		{name: "rubygems-token", pattern: `rubygems_[a-f0-9]{48}`, keywords: kw("rubygems_"), bounded: true},
		{name: "clojars-token", pattern: `CLOJARS_[A-Za-z0-9]{60}`, keywords: kw("clojars_"), bounded: true},
		{name: "artifactory-token", pattern: `AKCp[A-Za-z0-9]{69}`, keywords: kw("akcp"), word: true, bounded: true, alone: true},
		{name: "artifactory-token", pattern: `cmVmd[A-Za-z0-9]{59}`, keywords: kw("cmvmd"), word: true, bounded: true, alone: true},
		// NuGet's feed credentials in nuget.config.
		{name: "nuget-password", pattern: `(?i)<add\s+key="(?:cleartext)?password"\s+value="([^"]{8,})"`, keywords: kw("<add")},
		// Databases.
		{name: "databricks-token", pattern: `dapi[a-f0-9]{32}(?:-\d)?`, keywords: kw("dapi"), word: true, bounded: true},
		{name: "planetscale-token", pattern: `pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,64}`, keywords: kw("pscale_")},
		{name: "clickhouse-key", pattern: `4b1d[A-Za-z0-9]{38}`, keywords: kw("4b1d"), word: true, bounded: true, valid: mixedCase, alone: true},
		// Cloud and its tools.
		{name: "digitalocean-token", pattern: `do[opr]_v1_[a-fA-F0-9]{64}`, keywords: kw("doo_v1_", "dop_v1_", "dor_v1_"), bounded: true},
		{name: "doppler-token", pattern: `dp\.pt\.[A-Za-z0-9]{40,}`, keywords: kw("dp.pt.")},
		{name: "flyio-token", pattern: `fo1_[A-Za-z0-9_-]{43}`, keywords: kw("fo1_"), bounded: true},
		{name: "flyio-token", pattern: `fm(?:1[ar]|2)_[A-Za-z0-9+/]{100,}={0,3}`, keywords: kw("fm1a_", "fm1r_", "fm2_")},
		{name: "heroku-key", pattern: `HRKU-AA[A-Za-z0-9_-]{58}`, keywords: kw("hrku-aa")},
		{name: "pulumi-token", pattern: `pul-[a-f0-9]{40}`, keywords: kw("pul-"), word: true, bounded: true},
		{name: "vault-token", pattern: `hv[sbr]\.[A-Za-z0-9_-]{24,}`, keywords: kw("hvs.", "hvb.", "hvr."), word: true},
		{name: "alibaba-key-id", pattern: `LTAI[A-Za-z0-9]{20}`, keywords: kw("ltai"), word: true, bounded: true, alone: true},
		{name: "cloudflare-key", pattern: `v1\.0-[a-f0-9]{24}-[a-f0-9]{146}`, keywords: kw("v1.0-")},
		{name: "aws-bedrock-key", pattern: `ABSK[A-Za-z0-9+/]{109,269}={0,2}`, keywords: kw("absk"), word: true, alone: true},
		// A short-lived Bedrock key is that fixed text and a presigned
		// URL's query, base64 encoded.
		{name: "aws-bedrock-key", pattern: `bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%&._-]*`, keywords: kw("bedrock-api-key-")},
		{name: "openshift-token", pattern: `sha256~[A-Za-z0-9_-]{43}`, keywords: kw("sha256~"), bounded: true},
		{name: "scalingo-token", pattern: `tk-us-[A-Za-z0-9_-]{48}`, keywords: kw("tk-us-")},
		// AI model providers.
		{name: "perplexity-key", pattern: `pplx-[A-Za-z0-9]{48}`, keywords: kw("pplx-")},
		{name: "huggingface-token", pattern: `api_org_[A-Za-z]{34}`, keywords: kw("api_org_"), bounded: true},
		// Secrets managers and keys.
		{name: "1password-key", pattern: `A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})(?:-[A-Z0-9]{5}){3}`, keywords: kw("a3-"), word: true},
		{name: "1password-token", pattern: `ops_eyJ[A-Za-z0-9+/]{250,}={0,3}`, keywords: kw("ops_eyj")},
		{name: "age-secret-key", pattern: `AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}`, keywords: kw("age-secret-key-1")},
		// Work tracking, observability and other services.
		{name: "linear-key", pattern: `lin_api_[A-Za-z0-9]{40}`, keywords: kw("lin_api_")},
		{name: "grafana-token", pattern: `glc_[A-Za-z0-9+/]{32,}={0,3}`, keywords: kw("glc_"), word: true},
		{name: "grafana-token", pattern: `glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}`, keywords: kw("glsa_"), word: true},
		{name: "grafana-token", pattern: `eyJrIjoi[A-Za-z0-9]{70,}={0,3}`, keywords: kw("eyjrijoi")},
		{name: "postman-key", pattern: `PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}`, keywords: kw("pmak-")},
		{name: "sentry-token", pattern: `sntryu_[a-f0-9]{64}`, keywords: kw("sntryu_")},
		{name: "sentry-token", pattern: `sntrys_eyJ[A-Za-z0-9+/=_]{50,}`, keywords: kw("sntrys_")},
		{name: "notion-token", pattern: `ntn_[0-9]{11}[A-Za-z0-9]{35}`, keywords: kw("ntn_"), word: true},
		{name: "dynatrace-token", pattern: `dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}`, keywords: kw("dt0c01.")},
		{name: "adobe-secret", pattern: `p8e-[A-Za-z0-9]{32}`, keywords: kw("p8e-"), word: true, bounded: true},
		// "pat" is in every path a payload names: found by hand, with no
		// regexp run for each (airtablePATs).
		{name: "airtable-token", keywords: kw("pat"), word: true, scan: airtablePATs},
		{name: "authress-key", pattern: `(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][A-Za-z0-9-]{10,32}\.[A-Za-z0-9+/_=-]{30,120}`, keywords: kw(".acc_", ".acc-")},
		{name: "duffel-token", pattern: `duffel_(?:test|live)_[A-Za-z0-9_=-]{43}`, keywords: kw("duffel_")},
		{name: "easypost-key", pattern: `EZ[AT]K[A-Za-z0-9]{54}`, keywords: kw("ezak", "eztk"), word: true, bounded: true},
		{name: "facebook-token", pattern: `EAA[MC][A-Za-z0-9]{100,}`, keywords: kw("eaam", "eaac"), word: true, alone: true},
		{name: "frameio-token", pattern: `fio-u-[A-Za-z0-9_=-]{64}`, keywords: kw("fio-u-")},
		{name: "harness-key", pattern: `(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}`, keywords: kw("pat.", "sat."), word: true},
		{name: "infracost-token", pattern: `ico-[A-Za-z0-9]{32}`, keywords: kw("ico-"), word: true, bounded: true},
		{name: "intra42-secret", pattern: `s-s4t2(?:ud|af)-[a-fA-F0-9]{64}`, keywords: kw("s-s4t2")},
		{name: "octopus-key", pattern: `API-[A-Z0-9]{26}`, keywords: kw("api-"), word: true, bounded: true},
		{name: "prefect-token", pattern: `pnu_[A-Za-z0-9]{36}`, keywords: kw("pnu_"), word: true, bounded: true},
		{name: "readme-token", pattern: `rdme_[a-z0-9]{70}`, keywords: kw("rdme_"), bounded: true},
		{name: "brevo-key", pattern: `xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}`, keywords: kw("xkeysib-")},
		{name: "sendgrid-key", pattern: `SG\.[A-Za-z0-9_=.-]{66}`, keywords: kw("sg."), word: true, bounded: true},
		{name: "settlemint-token", pattern: `sm_[aps]at_[A-Za-z0-9]{16}`, keywords: kw("sm_aat_", "sm_pat_", "sm_sat_"), bounded: true},
		{name: "shippo-token", pattern: `shippo_(?:live|test)_[a-fA-F0-9]{40}`, keywords: kw("shippo_")},
	}
}

// airtablePATs finds Airtable's personal access tokens in text: pat, 14 of
// [A-Za-z0-9], a dot and 64 of [a-f0-9], as pat[A-Za-z0-9]{14}\.[a-f0-9]{64}
// would, each byte looked at a bounded number of times.
func airtablePATs(text []byte, found func(start, end int)) {
	const n = 3 + 14 + 1 + 64
	for i := 0; i+n <= len(text); {
		j := bytes.Index(text[i:], []byte("pat"))
		if j < 0 || i+j+n > len(text) {
			return
		}
		i += j
		k := i + 3
		for k < i+17 && (isLetter(text[k]) || isDigit(text[k])) {
			k++
		}
		if k < i+17 {
			i = k // a token that starts before k would run into text[k]
			continue
		}
		if text[k] != '.' {
			i += 3 // the next pat may be within the run
			continue
		}
		for k++; k < i+n && (isDigit(text[k]) || 'a' <= text[k] && text[k] <= 'f'); k++ {
		}
		if k == i+n {
			found(i, i+n)
			i += n
			continue
		}
		i += 3
	}
}

// kubernetesSecrets finds the values of a Kubernetes Secret's data in
// text, which is lower case: in a YAML document (between --- lines) that
// holds kind: Secret, the name: value pairs after data: whose values are
// base64 of ten characters or more, as gitleaks' rule reads them. The
// first pair starts within maxDataGap bytes of data:, each next one
// within maxDataGap of the last value's end; a value may follow a block
// indicator (name: |). Each byte is looked at a bounded number of times.
func kubernetesSecrets(text []byte, found func(start, end int)) {
	docs := kindSecretDocs(text)
	if len(docs) == 0 {
		return
	}
	tried := 0 // pairs were looked for at every position before tried
	for off := 0; ; {
		d := bytes.Index(text[off:], []byte("data:"))
		if d < 0 {
			return
		}
		d += off
		off = d + len("data:")
		if d > 0 && isWordByte(text[d-1]) {
			continue // stringdata:, metadata:
		}
		for len(docs) > 0 && docs[0].end <= d {
			docs = docs[1:] // data: comes in order: no later one is in these
		}
		if len(docs) == 0 {
			return
		}
		if d < docs[0].start {
			continue
		}
		end := docs[0].end
		from := off
		for {
			s, e := nextDataPair(text, max(from, tried), min(from+maxDataGap, end))
			tried = max(tried, min(from+maxDataGap, end))
			if s < 0 {
				break
			}
			found(s, e)
			from, tried = e, e
		}
	}
}

// maxDataGap bounds the text between data: and its first value, and
// between one value and the next, as gitleaks' rule does.
const maxDataGap = 100

// secretDoc is a YAML document of a text that says kind: Secret: it starts
// at start and ends at end (a --- line, or the text's end).
type secretDoc struct{ start, end int }

// kindSecretDocs returns the documents of text, lower case, that hold
// kind: secret (the value quoted or not), in order.
func kindSecretDocs(text []byte) []secretDoc {
	var docs []secretDoc
	for off := 0; ; {
		k := bytes.Index(text[off:], []byte("kind:"))
		if k < 0 {
			return docs
		}
		k += off
		off = k + len("kind:")
		if n := len(docs); n > 0 && k < docs[n-1].end {
			continue // in a document found already
		}
		v := off
		for v < len(text) && (text[v] == ' ' || text[v] == '\t') {
			v++
		}
		if v < len(text) && (text[v] == '"' || text[v] == '\'') {
			v++
		}
		if !bytes.HasPrefix(text[v:], []byte("secret")) || v+6 < len(text) && isWordByte(text[v+6]) {
			continue
		}
		start := bytes.LastIndex(text[:k], []byte("\n---"))
		if n := len(docs); n > 0 {
			start = max(start, docs[n-1].end)
		}
		end := bytes.Index(text[k:], []byte("\n---"))
		if end < 0 {
			end = len(text)
		} else {
			end += k
		}
		docs = append(docs, secretDoc{max(start, 0), end})
		off = end
	}
}

// nextDataPair finds the first name: value pair of a Secret's data whose
// name starts in text[from:to] after white space, and returns its value's
// span, or -1.
func nextDataPair(text []byte, from, to int) (int, int) {
	isName := func(c byte) bool { return isWordByte(c) || c == '.' || c == '-' }
	for q := max(from, 1); q < to; q++ {
		if !isSpace(text[q-1]) || !isName(text[q]) {
			continue
		}
		k := q
		for k < len(text) && k-q < maxLabel && isName(text[k]) {
			k++
		}
		if k >= len(text) || text[k] != ':' {
			q = k // no name starts inside this one
			continue
		}
		if s, e := dataValue(text, k+1); s >= 0 {
			return s, e
		}
		q = k
	}
	return -1, -1
}

// dataValue reads a data value that starts after a name's colon at v:
// blanks, an optional block indicator (| or >, >-, >+) and the white space
// after it, an optional quote and ten or more of [a-z0-9+/] with up to
// three '=' after them. It returns the value's span, or -1.
func dataValue(text []byte, v int) (int, int) {
	blanks := func(k int) int {
		for k < len(text) && k-v < maxLabel && (text[k] == ' ' || text[k] == '\t') {
			k++
		}
		return k
	}
	k, ok := blockIndicator(text, blanks(v))
	if !ok {
		return -1, -1
	}
	k = blanks(k)
	if k < len(text) && (text[k] == '"' || text[k] == '\'') {
		k++
	}
	s := k
	for k < len(text) && (isLetter(text[k]) || isDigit(text[k]) || text[k] == '+' || text[k] == '/') {
		k++
	}
	if k-s < 10 {
		return -1, -1
	}
	for pad := 0; pad < 3 && k < len(text) && text[k] == '='; pad++ {
		k++
	}
	return s, k
}

// blockIndicator reads YAML's | or > (with - or + after it) at text[k]
// and the white space after it, and returns where the value starts; ok is
// false when an indicator has no white space after it. With no indicator,
// the value starts at k.
func blockIndicator(text []byte, k int) (int, bool) {
	if k >= len(text) || text[k] != '|' && text[k] != '>' {
		return k, true
	}
	k++
	if k < len(text) && (text[k] == '-' || text[k] == '+') {
		k++
	}
	w := k
	for w < len(text) && w-k < maxLabel && isSpace(text[w]) {
		w++
	}
	return w, w > k
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
