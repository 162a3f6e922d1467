package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
)

// WebhookSpec POSTs each batch as JSON (webhookPayload) to URL.
type WebhookSpec struct {
	URL string `yaml:"url" json:"url"`
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Retries is how many more attempts follow a failed one (default 2,
	// at most 10), Backoff apart and doubling (default 1s). After the last
	// one the batch goes to the spool.
	Retries *int          `yaml:"retries" json:"retries,omitempty"`
	Backoff time.Duration `yaml:"backoff" json:"backoff,omitempty"`
	// Headers are added to the request (an Authorization token...).
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
}

const (
	defaultHTTPTimeout    = 10 * time.Second
	defaultWebhookRetries = 2
	maxWebhookRetries     = 10
	defaultWebhookBackoff = time.Second
	maxWebhookBackoff     = 30 * time.Second
)

// Validate checks the spec.
func (s *WebhookSpec) Validate() error {
	fields := map[string]string{"url": s.URL}
	for k, v := range s.Headers {
		fields["headers."+k] = k + v
	}
	if err := noPlaceholders(fields); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if err := checkHTTPURL(s.URL); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if s.Timeout < 0 || s.Backoff < 0 {
		return fmt.Errorf("webhook: timeout and backoff must be positive")
	}
	if s.Retries != nil && (*s.Retries < 0 || *s.Retries > maxWebhookRetries) {
		return fmt.Errorf("webhook: retries %d: want 0 to %d (the spool retries after that)", *s.Retries, maxWebhookRetries)
	}
	for k, v := range s.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n\t") || strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("webhook: header %q: bad name or value", k)
		}
	}
	return nil
}

func checkHTTPURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("url: missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: want http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q: no host", raw)
	}
	return nil
}

// httpClient is a client that does not follow redirects: a 3xx to a POST is
// an error to fix in the configuration, not a hop to wherever it points.
func httpClient() *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     http.DefaultTransport.(*http.Transport).Clone(),
	}
}

type webhookNotifier struct {
	name    string
	s       WebhookSpec
	env     Env
	client  *http.Client
	timeout time.Duration
	retries int
	backoff time.Duration
}

func newWebhook(name string, s WebhookSpec, env Env) (*webhookNotifier, error) {
	w := &webhookNotifier{name: name, s: s, env: env, client: httpClient(),
		timeout: s.Timeout, retries: defaultWebhookRetries, backoff: s.Backoff}
	if w.timeout == 0 {
		w.timeout = defaultHTTPTimeout
	}
	if s.Retries != nil {
		w.retries = *s.Retries
	}
	if w.backoff == 0 {
		w.backoff = defaultWebhookBackoff
	}
	return w, nil
}

func (w *webhookNotifier) Name() string { return w.name }
func (w *webhookNotifier) spec() Spec   { s := w.s; return &s }

// Close drops idle connections.
func (w *webhookNotifier) Close() error { w.client.CloseIdleConnections(); return nil }

// webhookPayload is the JSON a webhook receives: the Batch, with a version
// and the delivery id (the same on every retry and after a restart).
type webhookPayload struct {
	Version  int    `json:"version"`
	Delivery string `json:"delivery,omitempty"`
	Output   string `json:"output"`
	alarm.Batch
	Firing   int `json:"firing"`
	Resolved int `json:"resolved"`
}

// Notify POSTs b, retrying a bounded number of times.
func (w *webhookNotifier) Notify(ctx context.Context, b alarm.Batch) error {
	p := webhookPayload{Version: 1, Delivery: DeliveryID(ctx), Output: w.name, Batch: b}
	p.Firing, p.Resolved = counts(b)
	body, err := marshalJSON(p)
	if err != nil {
		return Permanent(fmt.Errorf("webhook: encode: %w", err))
	}
	headers := map[string]string{}
	for k, v := range w.s.Headers {
		headers[k] = v
	}
	if p.Delivery != "" {
		headers["Idempotency-Key"] = p.Delivery
	}
	return postWithRetries(ctx, w.client, w.s.URL, body, headers, w.timeout, w.retries, w.backoff)
}

// postWithRetries POSTs body up to 1+retries times; 2xx is success; 400,
// 413 and 422 stop at once (the same request will not be accepted later);
// anything else waits backoff (doubling) and retries.
func postWithRetries(ctx context.Context, c *http.Client, target string, body []byte, headers map[string]string,
	timeout time.Duration, retries int, backoff time.Duration) error {
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (after: %v)", ctx.Err(), last)
			case <-t.C:
			}
			backoff = min(2*backoff, maxWebhookBackoff)
		}
		err := postOnce(ctx, c, target, body, headers, timeout)
		if err == nil {
			return nil
		}
		last = err
		if IsPermanent(err) || ctx.Err() != nil {
			break
		}
	}
	return last
}

// statusError is a non-2xx answer.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.code, textSafe(e.body))
}

func postOnce(ctx context.Context, c *http.Client, target string, body []byte, headers map[string]string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("POST %s: %w", redact(target), err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "picket")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, redacted, below
		}
		return fmt.Errorf("POST %s: %w", redact(target), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("POST %s: %w", redact(target), &statusError{resp.StatusCode, strings.TrimSpace(string(snippet))})
	switch {
	case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusRequestEntityTooLarge,
		resp.StatusCode == http.StatusUnprocessableEntity:
		return Permanent(err)
	}
	return err
}

// redact hides a password in a URL for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	return u.Redacted()
}

// marshalJSON encodes v without HTML escaping (< > & are data here).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
