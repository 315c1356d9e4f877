package redact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

// difflore is the product binary, built once by TestMain from the
// repository root.
var difflore string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "difflore-redact-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		difflore = filepath.Join(dir, "difflore")
		build := exec.Command("go", "build", "-o", difflore, ".")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build difflore: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// newDetector returns gitleaks' detector with its default rules, decoding
// as its command line does by default (--max-decode-depth 5: percent,
// base64 and hex), and its log silenced.
func newDetector(t testing.TB) *detect.Detector {
	t.Helper()
	logging.Logger = zerolog.Nop()
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatalf("gitleaks default config: %v", err)
	}
	d.MaxDecodeDepth = 5
	return d
}

// redactor runs 'difflore redact' in a data home of its own, so that no
// config.toml of the user's adds rules or allowed values.
type redactor struct {
	home string
}

func newRedactor(t testing.TB) *redactor {
	return &redactor{home: filepath.Join(t.TempDir(), "home")}
}

// redact returns payload as 'difflore redact' prints it: as the daemon
// would send it.
func (r *redactor) redact(payload []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, difflore, "redact", "-")
	cmd.Env = append(os.Environ(), "DIFFLORE_HOME="+r.home, "DIFFLORE_REDACT=")
	cmd.Stdin = bytes.NewReader(payload)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("difflore redact: %w\n%s", err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// parallel runs f for 0..n-1 on as many workers as there are CPUs, and
// returns the first error.
func parallel(n int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// jsonStrings returns every string of a JSON text, object keys included,
// in the order they appear.
func jsonStrings(p []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	var out []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

// percentDecode decodes %XX escapes, leaving a % that starts none as it
// is: what a reader of a URL recovers from it, valid or not.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	unhex := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// percentEncode encodes every byte but the unreserved ones of RFC 3986,
// as a URL carries a value inside another URL's query.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
