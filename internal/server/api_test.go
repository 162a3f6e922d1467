package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// strictDecode decodes the body into v, refusing fields v does not have:
// the shape is the contract.
func strictDecode(t *testing.T, body string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%.300s", v, err, body)
	}
}

func TestEndpoints(t *testing.T) {
	src := loadedSource(t)
	h := newServer(t, Options{Source: src}).Handler()
	tests := []struct {
		path, ctype string
		check       func(t *testing.T, body string)
	}{
		{"/api/v1/snapshot", "application/json", func(t *testing.T, body string) {
			var s snapshot.Snapshot
			strictDecode(t, body, &s)
			if s.Host != "moscow" || s.Processes.Total != 19 || s.Kernel.Sockstat.TCP.Orphan != 21564 || len(s.Processes.List) != 19 {
				t.Errorf("snapshot: host %q, %d processes, %d in list", s.Host, s.Processes.Total, len(s.Processes.List))
			}
			if !strings.Contains(body, `"comm":"\u001b[31mred\u001b[0m"`) {
				t.Errorf("a hostile comm is not escaped in the JSON")
			}
		}},
		{"/api/v1/findings", "application/json", func(t *testing.T, body string) {
			var r doctor.Report
			strictDecode(t, body, &r)
			if len(r.Findings) != len(doctor.Checks()) || r.Status != doctor.Critical {
				t.Errorf("findings: status %s, %d findings", r.Status, len(r.Findings))
			}
			if f, ok := r.Find("tcp-orphans"); !ok || f.Severity == doctor.OK {
				t.Errorf("tcp-orphans: %+v", f)
			}
		}},
		{"/api/v1/alarms", "application/json", func(t *testing.T, body string) {
			var a struct {
				Alarms []alarm.Alarm `json:"alarms"`
			}
			strictDecode(t, body, &a)
			if len(a.Alarms) != 2 || a.Alarms[0].Rule != "tcp-orphans" || a.Alarms[0].Level != alarm.Critical || a.Alarms[1].Status != alarm.Resolved {
				t.Errorf("alarms: %+v", a.Alarms)
			}
		}},
		{"/api/v1/journal", "application/json", func(t *testing.T, body string) {
			var j struct {
				Entries []map[string]any `json:"entries"`
			}
			strictDecode(t, body, &j)
			if len(j.Entries) != 1 || j.Entries[0]["id"] != "20261123T025900-3f9c2a" {
				t.Errorf("journal: %+v", j.Entries)
			}
		}},
		{"/healthz", "application/json", func(t *testing.T, body string) {
			var hb healthBody
			strictDecode(t, body, &hb)
			if hb.Status != "ok" || hb.AgeSeconds == nil || *hb.AgeSeconds != 5 || hb.DurationSeconds != 0.12 || hb.Config != "built-in default" || hb.StaleAfterSeconds != 120 {
				t.Errorf("healthz: %+v", hb)
			}
		}},
		{"/metrics", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores", func(t *testing.T, body string) {
			if !strings.Contains(body, "\npicket_processes 19\n") {
				t.Errorf("metrics: no picket_processes 19")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := do(t, h, "GET", tt.path, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tt.ctype)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			tt.check(t, w.Body.String())
			head := do(t, h, "HEAD", tt.path, nil)
			if head.Code != http.StatusOK {
				t.Errorf("HEAD: %d", head.Code)
			}
		})
	}
}

func TestBeforeFirstCollection(t *testing.T) {
	src := &fakeSource{journal: json.RawMessage("null")}
	h := newServer(t, Options{Source: src}).Handler()
	for _, p := range []string{"/api/v1/snapshot", "/api/v1/findings", "/api/v1/alarms"} {
		if msg := jsonError(t, do(t, h, "GET", p, nil), http.StatusServiceUnavailable); !strings.Contains(msg, "no collection yet") {
			t.Errorf("%s: %q", p, msg)
		}
	}
	// The journal outlives restarts: it is served from the start.
	w := do(t, h, "GET", "/api/v1/journal", nil)
	if w.Code != http.StatusOK || w.Body.String() != "{\"entries\":[]}\n" {
		t.Errorf("journal: %d %s", w.Code, w.Body)
	}
	w = do(t, h, "GET", "/healthz", nil)
	var hb healthBody
	strictDecode(t, w.Body.String(), &hb)
	if w.Code != http.StatusServiceUnavailable || hb.Status != "starting" || hb.AgeSeconds != nil || strings.Contains(w.Body.String(), "last_collection\"") {
		t.Errorf("healthz: %d %s", w.Code, w.Body)
	}
	w = do(t, h, "GET", "/metrics", nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "picket_build_info{") || strings.Contains(w.Body.String(), "picket_processes") {
		t.Errorf("metrics before the first collection: %d\n%s", w.Code, w.Body)
	}
}

func TestHealthzStale(t *testing.T) {
	src := loadedSource(t)
	now := fixtureTime.Add(3 * time.Minute)
	h := newServer(t, Options{Source: src, Now: func() time.Time { return now }}).Handler()
	w := do(t, h, "GET", "/healthz", nil)
	var hb healthBody
	strictDecode(t, w.Body.String(), &hb)
	if w.Code != http.StatusServiceUnavailable || hb.Status != "stale" || *hb.AgeSeconds != 180 {
		t.Errorf("3 minutes old: %d %+v", w.Code, hb)
	}
	h = newServer(t, Options{Source: src, Now: func() time.Time { return now }, StaleAfter: 5 * time.Minute}).Handler()
	if w := do(t, h, "GET", "/healthz", nil); w.Code != http.StatusOK {
		t.Errorf("StaleAfter 5m: %d %s", w.Code, w.Body)
	}
	// A refused reload is reported but does not make picket unhealthy.
	src.health.ConfigError = "line 3: unknown field"
	w = do(t, h, "GET", "/healthz", nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"config_error":"line 3: unknown field"`) {
		t.Errorf("config error: %d %s", w.Code, w.Body)
	}
}

func TestJournal(t *testing.T) {
	src := loadedSource(t)
	h := newServer(t, Options{Source: src}).Handler()
	do(t, h, "GET", "/api/v1/journal", nil)
	do(t, h, "GET", "/api/v1/journal?limit=7", nil)
	do(t, h, "GET", "/api/v1/journal?limit=1000", nil)
	if got := src.limits; len(got) != 3 || got[0] != defaultJournalLimit || got[1] != 7 || got[2] != 1000 {
		t.Errorf("limits passed: %v", got)
	}
	for _, q := range []string{"0", "-1", "1001", "x", "1e3", ""} {
		w := do(t, h, "GET", "/api/v1/journal?limit="+q, nil)
		if q == "" {
			if w.Code != http.StatusOK {
				t.Errorf("empty limit: %d", w.Code)
			}
			continue
		}
		jsonError(t, w, http.StatusBadRequest)
	}
	src.journal = json.RawMessage(`{"not":"an array"}`)
	jsonError(t, do(t, h, "GET", "/api/v1/journal", nil), http.StatusInternalServerError)
	src.journal = json.RawMessage(`[{"id":`)
	jsonError(t, do(t, h, "GET", "/api/v1/journal", nil), http.StatusInternalServerError)
	src.journal, src.journalEr = nil, errors.New("read /var/lib/picket/journal.jsonl: permission denied")
	if msg := jsonError(t, do(t, h, "GET", "/api/v1/journal", nil), http.StatusInternalServerError); !strings.Contains(msg, "permission denied") {
		t.Errorf("journal error: %q", msg)
	}
}

func TestSnapshotCache(t *testing.T) {
	src := loadedSource(t)
	h := newServer(t, Options{Source: src}).Handler()
	a := do(t, h, "GET", "/api/v1/snapshot", nil).Body.String()
	next := snaptest.Fixture(t, "moscow")
	next.Processes.Total = 20
	src.mu.Lock()
	src.snap = next
	src.mu.Unlock()
	b := do(t, h, "GET", "/api/v1/snapshot", nil).Body.String()
	if a == b || !strings.Contains(b, `"total":20`) {
		t.Errorf("a new snapshot was not served")
	}
}

func TestMethods(t *testing.T) {
	h := newServer(t, Options{Source: loadedSource(t), Mutator: &fakeMutator{}, TokenFile: writeToken(t, testToken, 0o600)}).Handler()
	for _, tt := range []struct{ method, path, allow string }{
		{"POST", "/metrics", "GET, HEAD"},
		{"PUT", "/api/v1/snapshot", "GET, HEAD"},
		{"DELETE", "/api/v1/findings", "GET, HEAD"},
		{"POST", "/api/v1/alarms", "GET, HEAD"},
		{"PATCH", "/api/v1/journal", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
		{"OPTIONS", "/api/v1/snapshot", "GET, HEAD"},
		{"GET", "/api/v1/undo/20261123T025900-3f9c2a", "POST"},
		{"GET", "/api/v1/silence", "POST"},
		{"OPTIONS", "/api/v1/silence", "POST"},
	} {
		// A CORS preflight gets nothing that would let a page read or post.
		w := do(t, h, tt.method, tt.path, nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
		jsonError(t, w, http.StatusMethodNotAllowed)
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		for k := range w.Header() {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s %s: CORS header %s", tt.method, tt.path, k)
			}
		}
	}
	for _, p := range []string{"/", "/api/v1/nope", "/api/v1/snapshot/x", "/index.html"} {
		jsonError(t, do(t, h, "GET", p, nil), http.StatusNotFound)
	}
}

func TestSecurityHeaders(t *testing.T) {
	assets := fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>picket</title>")}}
	h := newServer(t, Options{Source: loadedSource(t), Assets: assets}).Handler()
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/metrics", 200}, {"GET", "/api/v1/snapshot", 200}, {"GET", "/healthz", 200},
		{"GET", "/", 200}, {"GET", "/nope.js", 404}, {"POST", "/", 405}, {"POST", "/api/v1/silence", 403},
		{"GET", "/api/v1/nope", 404},
	} {
		w := do(t, h, tt.method, tt.path, nil)
		if w.Code != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.status)
		}
		for _, kv := range [][2]string{
			{"X-Content-Type-Options", "nosniff"},
			{"X-Frame-Options", "DENY"},
			{"Referrer-Policy", "no-referrer"},
		} {
			if got := w.Header().Get(kv[0]); got != kv[1] {
				t.Errorf("%s %s: %s %q", tt.method, tt.path, kv[0], got)
			}
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self';") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s %s: CSP %q", tt.method, tt.path, csp)
		}
	}
	if w := do(t, h, "GET", "/", nil); !strings.Contains(w.Body.String(), "<title>picket</title>") || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("dashboard: %s %q", w.Body, w.Header().Get("Content-Type"))
	}
}

func TestHostGuard(t *testing.T) {
	src := loadedSource(t)
	h := newServer(t, Options{Source: src, AllowedHosts: []string{"picket.internal"}}).Handler()
	for host, want := range map[string]int{
		"127.0.0.1:9749":      200,
		"localhost:9749":      200,
		"LOCALHOST":           200,
		"[::1]:9749":          200,
		"10.1.2.3":            200, // an IP literal cannot be rebound
		"picket.internal:80":  200,
		"evil.example":        421,
		"evil.example:9749":   421,
		"127.0.0.1.nip.io":    421,
		"localhost.evil.test": 421,
	} {
		// The guard comes before any route, public or private.
		w := doHost(h, host, "/healthz")
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
	// A non-loopback listener (token required) is reached by name.
	h = newServer(t, Options{Source: src, Listen: "0.0.0.0:9749", TokenFile: writeToken(t, testToken, 0o600)}).Handler()
	if w := doHost(h, "picket.example.net:9749", "/healthz"); w.Code != 200 {
		t.Errorf("non-loopback listener by name: %d", w.Code)
	}
}

// doHost sends a request with the Host header given.
func doHost(h http.Handler, host, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
	r.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestHostFeatures: what the start-up probe found is in /healthz and
// /metrics, found or not, with the kinds the host refuses.
func TestHostFeatures(t *testing.T) {
	h := newServer(t, Options{Source: loadedSource(t)}).Handler()
	w := do(t, h, "GET", "/healthz", nil)
	var hb healthBody
	strictDecode(t, w.Body.String(), &hb)
	if hb.Host == nil || hb.Host.Kernel != "3.10.0" || hb.Host.Features["pidfd"] || !hb.Host.Features["mem_available"] ||
		len(hb.Refused) != 1 || hb.Refused[0].Kind != "throttle" {
		t.Errorf("healthz: %s", w.Body)
	}
	m := do(t, h, "GET", "/metrics", nil).Body.String()
	for _, want := range []string{`picket_feature{name="pidfd"} 0`, `picket_feature{name="mem_available"} 1`,
		`picket_capability{name="CAP_NET_ADMIN"} 0`, `picket_capability{name="CAP_KILL"} 1`, `picket_action_kind_refused{kind="throttle"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// slowSource answers the journal slowly and counts how many requests it
// serves at once.
type slowSource struct {
	*fakeSource
	mu       sync.Mutex
	now, max int
	release  chan struct{}
}

func (s *slowSource) Journal(limit int) (json.RawMessage, error) {
	s.mu.Lock()
	s.now++
	s.max = max(s.max, s.now)
	s.mu.Unlock()
	<-s.release
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	return json.RawMessage(`[]`), nil
}

// Six concurrent journal requests: at most maxHeavy are served at once,
// the others wait their turn, and all are answered.
func TestLargeEndpointsAreBounded(t *testing.T) {
	src := &slowSource{fakeSource: loadedSource(t), release: make(chan struct{})}
	h := newServer(t, Options{Source: src}).Handler()
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = do(t, h, "GET", "/api/v1/journal?limit=1000", nil).Code }()
	}
	time.Sleep(200 * time.Millisecond)
	src.mu.Lock()
	inside := src.now
	src.mu.Unlock()
	if inside != maxHeavy {
		t.Errorf("%d journal requests served at once, want %d", inside, maxHeavy)
	}
	close(src.release)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("request %d: %d", i, c)
		}
	}
	if src.max > maxHeavy {
		t.Errorf("at most %d at once, want %d", src.max, maxHeavy)
	}
}
