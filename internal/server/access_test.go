package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// nobody is the uid of a local user with no rights (65534 on Debian).
const nobody = 65534

// TestPrivateNeedsRootOrToken: what only root can read (per-process rows
// and descriptors, findings, alarms, the journal, holders' series) goes to
// root's own loopback connections and to whoever sends the token; another
// local user gets 401 and how to get in, with or without a wrong token.
// The public part (health, the dashboard's files, host series) is served
// to anyone. The clients are real loopback connections whose sockets were
// made by root or by nobody.
func TestPrivateNeedsRootOrToken(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: connects as root and as nobody; CI runs as root")
	}
	hist := newFakeHistory()
	holder := "holder/4242@1764464000/sshd/fds"
	hist.series[holder] = []Point{{Time: fixtureTime, Value: 7, Min: 7, Max: 7}}
	assets := fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>picket</title>")}}
	h := newServer(t, Options{Source: loadedSource(t), History: hist, Assets: assets, TokenFile: writeToken(t, testToken, 0o600)}).Handler()

	public := []string{"/healthz", "/", "/index.html", "/api/v1/history?series=kernel.sockstat.tcp.orphan", "/api/v1/history?series=group/alice/imapd/count", "/metrics"}
	private := []string{"/api/v1/snapshot", "/api/v1/snapshot?top=5", "/api/v1/findings", "/api/v1/alarms", "/api/v1/journal", "/api/v1/history?series=" + holder}
	bearer := "Bearer " + testToken
	for _, c := range []struct {
		name   string
		uid    int
		auth   string
		status int // of the private endpoints
	}{
		{"root", -1, "", 200},
		{"root with the token", -1, bearer, 200},
		{"root with a wrong token", -1, "Bearer not-the-token-0123456789", 401},
		{"nobody", nobody, "", 401},
		{"nobody with the token", nobody, bearer, 200},
		{"nobody with a wrong token", nobody, "Bearer not-the-token-0123456789", 401},
		{"nobody with another scheme", nobody, "Basic " + testToken, 401},
	} {
		hdr := []string{}
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		for _, p := range private {
			w := doAs(t, c.uid, h, "GET", p, nil, hdr...)
			if c.status == 200 {
				if w.Code != 200 {
					t.Errorf("%s: GET %s: %d, want 200: %s", c.name, p, w.Code, w.Body)
				}
				continue
			}
			msg := jsonError(t, w, c.status)
			if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="picket"`) {
				t.Errorf("%s: GET %s: WWW-Authenticate %q", c.name, p, w.Header().Get("WWW-Authenticate"))
			}
			if c.auth == "" && !strings.Contains(msg, "only root") || c.auth != "" && strings.HasPrefix(c.auth, "Bearer") && msg != "wrong token" {
				t.Errorf("%s: GET %s: %q", c.name, p, msg)
			}
			if strings.Contains(w.Body.String(), "sshd") || strings.Contains(w.Body.String(), "imapd") {
				t.Errorf("%s: GET %s: the refusal shows data: %s", c.name, p, w.Body)
			}
		}
		for _, p := range public {
			if w := doAs(t, c.uid, h, "GET", p, nil); w.Code != 200 {
				t.Errorf("%s: GET %s (public): %d: %s", c.name, p, w.Code, w.Body)
			}
		}
	}

	// The series list leaves the holders out for nobody; root sees them.
	if w := doAs(t, nobody, h, "GET", "/api/v1/history/series", nil); w.Code != 200 || strings.Contains(w.Body.String(), "holder/") || !strings.Contains(w.Body.String(), "kernel.tcp_max_orphans") {
		t.Errorf("series as nobody: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/api/v1/history/series", nil); w.Code != 200 || !strings.Contains(w.Body.String(), holder) {
		t.Errorf("series as root: %d %s", w.Code, w.Body)
	}

	// /metrics: the socket holders' pids, commands and descriptors for
	// root and the token only; the host totals and groups for anyone.
	for _, c := range []struct {
		name    string
		uid     int
		hdr     []string
		holders bool
	}{
		{"root", -1, nil, true},
		{"nobody", nobody, nil, false},
		{"nobody with the token", nobody, []string{"Authorization", bearer}, true},
	} {
		w := doAs(t, c.uid, h, "GET", "/metrics", nil, c.hdr...)
		text := w.Body.String()
		if w.Code != 200 || !strings.Contains(text, "picket_processes ") || !strings.Contains(text, "picket_process_group_processes{") {
			t.Fatalf("%s: /metrics: %d, no host series", c.name, w.Code)
		}
		if got := strings.Contains(text, "picket_socket_holder_open_fds{"); got != c.holders {
			t.Errorf("%s: /metrics has the holders' descriptors: %v, want %v", c.name, got, c.holders)
		}
	}
	if w := doAs(t, nobody, h, "GET", "/metrics", nil, "Authorization", "Bearer not-the-token-0123456789"); w.Code != 401 {
		t.Errorf("/metrics with a wrong token: %d, want 401", w.Code)
	}
}

// TestPrivateWithoutTokenFile: with no token file only root's own
// connections read the private part; anyone else is told so (403: no
// token would help), and a token sent is no key.
func TestPrivateWithoutTokenFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: connects as root and as nobody; CI runs as root")
	}
	h := newServer(t, Options{Source: loadedSource(t)}).Handler()
	if w := do(t, h, "GET", "/api/v1/snapshot", nil); w.Code != 200 {
		t.Errorf("root: %d", w.Code)
	}
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer " + testToken}} {
		msg := jsonError(t, doAs(t, nobody, h, "GET", "/api/v1/journal", nil, hdr...), http.StatusForbidden)
		if !strings.Contains(msg, "sudo picket top --from") || !strings.Contains(msg, "no token file") {
			t.Errorf("nobody: %q", msg)
		}
	}
	if w := doAs(t, nobody, h, "GET", "/healthz", nil); w.Code != 200 {
		t.Errorf("nobody: /healthz: %d", w.Code)
	}
}

// TestMutationsNeedTokenEvenFromRoot: a page in root's browser can POST
// to 127.0.0.1 from any origin, so root's own connection is not enough
// to undo or silence; the token is.
func TestMutationsNeedTokenEvenFromRoot(t *testing.T) {
	m := &fakeMutator{}
	h := newServer(t, Options{Source: loadedSource(t), Mutator: m, TokenFile: writeToken(t, testToken, 0o600)}).Handler()
	body := `{"rule": "storm", "duration": "1h"}`
	jsonError(t, do(t, h, "POST", "/api/v1/silence", strings.NewReader(body), "Content-Type", "text/plain"), http.StatusUnauthorized)
	if len(m.silenced) != 0 {
		t.Fatalf("silenced without the token: %v", m.silenced)
	}
	if w := do(t, h, "POST", "/api/v1/silence", strings.NewReader(body), "Authorization", "Bearer "+testToken); w.Code != 200 || m.silenced["storm"] != time.Hour {
		t.Errorf("with the token: %d %s", w.Code, w.Body)
	}
}

// BenchmarkAuthorize: a small private answer (/api/v1/alarms) over a
// kept-alive loopback connection, let in by the socket's owner (one
// sock_diag request per connection, or per request without the
// connection's cache), by the token (the token file read each time),
// and a public one (/healthz) beside them for scale.
func BenchmarkAuthorize(b *testing.B) {
	s := newServer(b, Options{Source: loadedSource(b), TokenFile: writeToken(b, testToken, 0o600)})
	cached := httptest.NewUnstartedServer(s.Handler())
	cached.Config.ConnContext = s.connContext // as ListenAndServe has it
	cached.Start()
	defer cached.Close()
	plain := httptest.NewServer(s.Handler())
	defer plain.Close()
	for _, bc := range []struct {
		name       string
		srv        *httptest.Server
		path, auth string
	}{
		{"public", cached, "/healthz", ""},
		{"peer-root", cached, "/api/v1/alarms", ""},
		{"peer-root-uncached", plain, "/api/v1/alarms", ""},
		{"token", cached, "/api/v1/alarms", "Bearer " + testToken},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req, err := http.NewRequest("GET", bc.srv.URL+bc.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			if bc.auth != "" {
				req.Header.Set("Authorization", bc.auth)
			}
			c := bc.srv.Client()
			for b.Loop() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", bc.path, resp.StatusCode)
				}
			}
		})
	}
}
