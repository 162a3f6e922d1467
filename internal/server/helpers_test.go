package server

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// fixtureTime is the moscow snapshot's time; tests' clocks start there.
var fixtureTime = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

// fakeSource is the daemon as the server sees it.
type fakeSource struct {
	mu        sync.Mutex
	snap      *snapshot.Snapshot
	report    *doctor.Report
	alarms    []alarm.Alarm
	journal   json.RawMessage
	journalEr error
	health    Health
	limits    []int
	// block, when set, holds Journal until it is closed (for the graceful
	// shutdown test); entered is closed when Journal starts waiting.
	block, entered chan struct{}
}

func (f *fakeSource) Snapshot() *snapshot.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) Findings() *doctor.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.report
}

func (f *fakeSource) Alarms() []alarm.Alarm {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.alarms
}

func (f *fakeSource) Journal(limit int) (json.RawMessage, error) {
	f.mu.Lock()
	f.limits = append(f.limits, limit)
	j, err, block, entered := f.journal, f.journalEr, f.block, f.entered
	f.mu.Unlock()
	if block != nil {
		close(entered)
		<-block
	}
	return j, err
}

func (f *fakeSource) Health() Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

// loadedSource is a daemon after its first collection of moscow: doctor's
// real report, two alarms (one firing, one resolved) and a journal.
func loadedSource(t testing.TB) *fakeSource {
	snap := snaptest.Fixture(t, "moscow")
	rep := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())
	return &fakeSource{
		snap:   snap,
		report: &rep,
		alarms: []alarm.Alarm{
			{Host: "moscow", Rule: "tcp-orphans", Case: "critical", Level: alarm.Critical, Status: alarm.Firing, Table: "kernel", Key: "host", StartsAt: fixtureTime},
			{Host: "moscow", Rule: "storm", Case: "warn", Level: alarm.Warning, Status: alarm.Resolved, Table: "process_groups", Key: "user=alice comm=imapd", StartsAt: fixtureTime.Add(-time.Hour), EndsAt: fixtureTime},
		},
		journal: json.RawMessage(`[{"id":"20261123T025900-3f9c2a","phase":"result","type":"throttle"}]`),
		health: Health{LastCollection: fixtureTime, LastDuration: 120 * time.Millisecond, Config: "built-in default",
			Host: &HostFeatures{Kernel: "3.10.0", Container: "openvz", Features: map[string]bool{"pidfd": false, "psi": false, "mem_available": true},
				Capabilities: map[string]bool{"CAP_KILL": true, "CAP_NET_ADMIN": false}},
			Refused:      []Refusal{{Kind: "throttle", Rules: []string{"apache-thrash"}, Reason: "throttle cannot work on this host: picket does not hold CAP_NET_ADMIN"}},
			SpoolPending: 2, SpoolBytes: 900, SpoolDropped: map[string]uint64{"age": 0, "count": 3, "bytes": 0, "permanent": 1},
			RateLimited: map[RateLimitKey]uint64{{Rule: "ProcNumChkRed", Kind: "kill"}: 7}},
	}
}

// fakeMutator records what it was asked.
type fakeMutator struct {
	mu       sync.Mutex
	undone   []string
	silenced map[string]time.Duration
	undoErr  error
}

func (m *fakeMutator) Undo(_ context.Context, id string) (json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.undoErr != nil {
		return nil, m.undoErr
	}
	m.undone = append(m.undone, id)
	return json.RawMessage(`{"id":"` + id + `","type":"throttle","result":"undone"}`), nil
}

func (m *fakeMutator) Silence(_ context.Context, rule string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rule == "no-such-rule" {
		return &notFoundErr{rule}
	}
	if m.silenced == nil {
		m.silenced = map[string]time.Duration{}
	}
	m.silenced[rule] = d
	return nil
}

type notFoundErr struct{ rule string }

func (e *notFoundErr) Error() string { return "no rule " + e.rule }
func (e *notFoundErr) Unwrap() error { return ErrNotFound }

const testToken = "s3cret-token-0123456789abcdef"

// writeToken writes a token file with the mode given.
func writeToken(t testing.TB, tok string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func newServer(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return fixtureTime.Add(5 * time.Second) }
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends one request to the handler over a real loopback connection,
// from this test process (root: private answers are allowed, as for
// `sudo picket top --from`); see doAs for another user.
func do(t testing.TB, h http.Handler, method, path string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	return doAs(t, -1, h, method, path, body, hdr...)
}

// doAs is do from a socket made by uid (-1: this process's own).
func doAs(t testing.TB, uid int, h http.Handler, method, path string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{DisableKeepAlives: true}
	if uid >= 0 {
		tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return testkit.DialAs(ctx, uid, addr)
		}
	}
	defer tr.CloseIdleConnections()
	r, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Transport: tr}).Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	w := httptest.NewRecorder()
	maps.Copy(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return w
}

// jsonError checks a JSON error response and returns its message.
func jsonError(t testing.TB, w *httptest.ResponseRecorder, status int) string {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(w.Body.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error (%v): %s", err, w.Body)
	}
	return e.Error
}
