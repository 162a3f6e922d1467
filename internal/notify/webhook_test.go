package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// hookServer answers with the status codes in plan, one per request (the
// last one repeats), and records the bodies.
type hookServer struct {
	*httptest.Server
	mu      sync.Mutex
	plan    []int
	delay   time.Duration
	bodies  [][]byte
	headers []http.Header
}

func newHookServer(t *testing.T, plan ...int) *hookServer {
	h := &hookServer{plan: plan}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		h.headers = append(h.headers, r.Header.Clone())
		code := h.plan[min(len(h.bodies)-1, len(h.plan)-1)]
		delay := h.delay
		h.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			code = http.StatusMethodNotAllowed
		}
		w.WriteHeader(code)
		io.WriteString(w, http.StatusText(code))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

func intp(i int) *int { return &i }

func newWebhookNotifier(t *testing.T, spec WebhookSpec) Notifier {
	t.Helper()
	n, err := New("hook", &spec, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWebhookRetriesThenSucceeds(t *testing.T) {
	h := newHookServer(t, 500, 503, 200)
	n := newWebhookNotifier(t, WebhookSpec{URL: h.URL + "/picket", Retries: intp(3), Backoff: 10 * time.Millisecond})
	if err := n.Notify(context.Background(), stormBatch()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if got := h.requests(); got != 3 {
		t.Fatalf("%d requests, want 3 (500, 503, then 200)", got)
	}
	var p struct {
		Version int    `json:"version"`
		Output  string `json:"output"`
		Host    string `json:"host"`
		Rule    string `json:"rule"`
		Level   string `json:"level"`
		Firing  int    `json:"firing"`
		Alarms  []struct {
			Status string         `json:"status"`
			Row    map[string]any `json:"row"`
		} `json:"alarms"`
	}
	if err := json.Unmarshal(h.bodies[2], &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.Output != "hook" || p.Host != "moscow" || p.Rule != "ProcNumChkRed" || p.Level != "emergency" ||
		p.Firing != 3 || len(p.Alarms) != 3 || p.Alarms[1].Row["user"] != "bob" || p.Alarms[1].Row["count"] != float64(121) {
		t.Errorf("payload: %s", h.bodies[2])
	}
}

func TestWebhookRetriesAreBounded(t *testing.T) {
	h := newHookServer(t, 500)
	n := newWebhookNotifier(t, WebhookSpec{URL: h.URL, Retries: intp(2), Backoff: 5 * time.Millisecond})
	err := n.Notify(context.Background(), stormBatch())
	var se *statusError
	if !errors.As(err, &se) || se.code != 500 || IsPermanent(err) {
		t.Fatalf("Notify = %v, want a retryable HTTP 500", err)
	}
	if got := h.requests(); got != 3 {
		t.Fatalf("%d requests, want 1 + 2 retries", got)
	}
}

func TestWebhookBadRequestIsPermanent(t *testing.T) {
	h := newHookServer(t, 400)
	n := newWebhookNotifier(t, WebhookSpec{URL: h.URL, Retries: intp(5), Backoff: time.Millisecond})
	if err := n.Notify(context.Background(), stormBatch()); !IsPermanent(err) {
		t.Fatalf("Notify = %v, want permanent", err)
	}
	if got := h.requests(); got != 1 {
		t.Fatalf("%d requests for a 400, want 1", got)
	}
}

func TestWebhookTimeoutHonoured(t *testing.T) {
	h := newHookServer(t, 200)
	h.delay = 5 * time.Second
	n := newWebhookNotifier(t, WebhookSpec{URL: h.URL, Timeout: 100 * time.Millisecond, Retries: intp(1), Backoff: 10 * time.Millisecond})
	start := time.Now()
	err := n.Notify(context.Background(), stormBatch())
	took := time.Since(start)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, want a deadline error", err)
	}
	// Two attempts of 100ms and a 10ms pause; far below the server's 5s.
	if took > 2*time.Second {
		t.Fatalf("Notify took %v with a 100ms timeout", took)
	}
	if got := h.requests(); got != 2 {
		t.Errorf("%d requests, want 2", got)
	}
}

func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	target := newHookServer(t, 200)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	n := newWebhookNotifier(t, WebhookSpec{URL: redirect.URL, Retries: intp(0)})
	if err := n.Notify(context.Background(), stormBatch()); err == nil {
		t.Fatal("a 302 counted as delivered")
	}
	if target.requests() != 0 {
		t.Fatal("the redirect was followed")
	}
}

// Through the Dispatcher the delivery id rides along, the same on the
// retry from the spool.
func TestWebhookIdempotencyKeyStableAcrossSpool(t *testing.T) {
	h := newHookServer(t, 500, 200)
	env := testEnv(t)
	n, err := New("hook", &WebhookSpec{URL: h.URL, Retries: intp(0)}, env)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDispatcher(DispatcherOptions{Env: env, Outputs: map[string]Notifier{"hook": n}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if err := d.Send(ctx, n, stormBatch()); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if err := d.Flush(ctx); err == nil {
		t.Fatal("a 500 was taken for a delivery")
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if h.requests() != 2 {
		t.Fatalf("%d requests, want 2", h.requests())
	}
	k1, k2 := h.headers[0].Get("Idempotency-Key"), h.headers[1].Get("Idempotency-Key")
	if k1 == "" || k1 != k2 {
		t.Errorf("Idempotency-Key %q then %q", k1, k2)
	}
	var p struct {
		Delivery string `json:"delivery"`
	}
	if err := json.Unmarshal(h.bodies[1], &p); err != nil || p.Delivery != k1 {
		t.Errorf("payload delivery %q, header %q (%v)", p.Delivery, k1, err)
	}
}
