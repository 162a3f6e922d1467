package dashboard

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/server"
)

func readAsset(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(Assets(), name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The vendored uPlot is the one scripts/vendor-uplot pins: the sums are
// read from the script, so there is one place to change them.
func TestVendoredUPlot(t *testing.T) {
	script, err := os.ReadFile("../../scripts/vendor-uplot")
	if err != nil {
		t.Fatal(err)
	}
	sums := regexp.MustCompile(`(?m)^([0-9a-f]{64})  (\S+)$`).FindAllStringSubmatch(string(script), -1)
	if len(sums) != 3 {
		t.Fatalf("scripts/vendor-uplot: %d sums, want 3", len(sums))
	}
	for _, m := range sums {
		b, err := fs.ReadFile(Assets(), "vendor/"+m[2])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != m[1] {
			t.Errorf("vendor/%s: sha256 %s, scripts/vendor-uplot pins %s (run scripts/vendor-uplot --write)", m[2], got, m[1])
		}
	}
}

// The page runs under CSP default-src 'self': nothing inline, nothing from
// elsewhere, and every file it names is embedded.
func TestPageIsSelfContained(t *testing.T) {
	html := readAsset(t, "index.html")
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`),     // inline script
		regexp.MustCompile(`<style`),                       // inline style sheet
		regexp.MustCompile(`\sstyle=`),                     // style attribute
		regexp.MustCompile(`\son[a-z]+=`),                  // event handler attribute
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`), // another origin
	} {
		if loc := bad.FindStringIndex(html); loc != nil {
			t.Errorf("index.html: %q at %d", html[loc[0]:min(loc[1]+20, len(html))], loc[0])
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"#?]+)"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 5 {
		t.Fatalf("index.html names %d files", len(refs))
	}
	for _, m := range refs {
		if strings.HasPrefix(m[1], "api/") {
			continue
		}
		if _, err := fs.Stat(Assets(), m[1]); err != nil {
			t.Errorf("index.html names %s: %v", m[1], err)
		}
	}
}

// The script writes text only: no HTML parsing of anything, so no name a
// process chose can become markup.
func TestScriptWritesTextOnly(t *testing.T) {
	for _, f := range []string{"app.js", "auth.js"} {
		scriptWritesTextOnly(t, f)
	}
}

func scriptWritesTextOnly(t *testing.T, name string) {
	js := readAsset(t, name)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('on", "DOMParser", "createContextualFragment"} {
		if strings.Contains(js, bad) {
			t.Errorf("%s uses %s", name, bad)
		}
	}
}

// Served by internal/server, under its security headers, with the types a
// browser needs to run a module script under nosniff.
func TestServed(t *testing.T) {
	srv, err := server.New(server.Options{Source: nilSource{}, Assets: Assets()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, ctype, has string }{
		{"/", "text/html; charset=utf-8", `<script src="app.js" type="module">`},
		{"/app.js", "text/javascript; charset=utf-8", "textContent"},
		{"/app.css", "text/css; charset=utf-8", ".gauge"},
		{"/auth.js", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/auth.css", "text/css; charset=utf-8", ".token-form"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
		{"/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot"},
		{"/vendor/uPlot.min.css", "text/css; charset=utf-8", ".uplot"},
	} {
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1"+tc.path, nil))
		if w.Code != http.StatusOK {
			t.Errorf("%s: status %d", tc.path, w.Code)
			continue
		}
		if ct := w.Header().Get("Content-Type"); ct != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, ct, tc.ctype)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", tc.path, csp)
		}
		if !strings.Contains(w.Body.String(), tc.has) {
			t.Errorf("%s: no %q in the body", tc.path, tc.has)
		}
	}
}
