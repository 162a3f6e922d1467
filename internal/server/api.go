package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/snapshot"
)

// Journal limits: enough for a dashboard page, bounded so one request
// cannot make the daemon decode its whole history.
const (
	defaultJournalLimit = 100
	maxJournalLimit     = 1000
)

func (s *Server) routes() (http.Handler, error) {
	m, err := s.metricsHandler()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", get(m))
	mux.Handle("/healthz", get(http.HandlerFunc(s.healthz)))
	mux.Handle("/api/v1/snapshot", get(s.private(s.bounded(http.HandlerFunc(s.snapshot)))))
	mux.Handle("/api/v1/findings", get(s.private(http.HandlerFunc(s.findings))))
	mux.Handle("/api/v1/alarms", get(s.private(http.HandlerFunc(s.alarms))))
	mux.Handle("/api/v1/journal", get(s.private(s.bounded(http.HandlerFunc(s.journal)))))
	// The history and /metrics are public but for their per-process
	// series, which they leave out for whom authorize refuses.
	mux.Handle("/api/v1/history", get(s.bounded(http.HandlerFunc(s.history))))
	mux.Handle("/api/v1/history/series", get(http.HandlerFunc(s.historySeries)))
	mux.Handle("/api/v1/undo/{id}", post(s.mutating(s.undo)))
	mux.Handle("/api/v1/silence", post(s.mutating(s.silence)))
	mux.HandleFunc("/api/", notFound)
	if s.opts.Assets != nil {
		mux.Handle("/", get(http.FileServerFS(s.opts.Assets)))
	} else {
		mux.HandleFunc("/", notFound)
	}
	return s.secure(mux), nil
}

// The endpoints whose answers are large (snapshot, journal, history) run
// at most maxHeavy at once; a request waits up to heavyWait for its turn,
// then gets 503 with Retry-After. picket is mlocked at oom_score_adj -1000:
// memory a burst of requests makes it take is memory a dying host never
// gets back, so concurrency is bounded here rather than left to the
// number of clients.
const (
	maxHeavy  = 2
	heavyWait = 10 * time.Second
)

func (s *Server) bounded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(heavyWait)
		defer t.Stop()
		select {
		case s.heavy <- struct{}{}:
			defer func() { <-s.heavy }()
			h.ServeHTTP(w, r)
		case <-t.C:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "busy: too many large requests at once; retry in a second")
		case <-r.Context().Done():
		}
	})
}

// securityHeaders go on every response, errors included. The API is read
// by picket's own dashboard only: no CORS headers, ever, so a page from
// another origin can neither read the API nor send the Authorization header.
var securityHeaders = [][2]string{
	{"X-Content-Type-Options", "nosniff"},
	{"Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"Cross-Origin-Resource-Policy", "same-origin"},
}

func (s *Server) secure(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range s.opts.AllowedHosts {
		allowed[strings.ToLower(h)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, kv := range securityHeaders {
			h.Set(kv[0], kv[1])
		}
		if s.loopback && !hostAllowed(r.Host, allowed) {
			writeError(w, http.StatusMisdirectedRequest, "host "+strconv.Quote(r.Host)+" is not served here: use 127.0.0.1, [::1] or localhost")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed guards a loopback listener against DNS rebinding: a web page
// from evil.example that re-resolves its own name to 127.0.0.1 could
// otherwise read the process list through the victim's browser. Such a
// request carries the attacker's name in Host; a local client (curl,
// Prometheus, an ssh tunnel, the dashboard opened as localhost) sends an IP
// literal or "localhost".
func hostAllowed(hostport string, extra map[string]bool) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil {
		return true
	}
	return extra[host]
}

// get allows GET and HEAD (net/http drops the body of a HEAD).
func get(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: GET or HEAD")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func post(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: POST")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no such endpoint: "+strconv.Quote(r.URL.Path))
}

// writeRaw sends JSON that is already encoded.
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// writeJSON encodes v whole before sending, so an encoding error is a clean
// 500 and not half a document. encoding/json escapes <, > and & and replaces
// invalid UTF-8, so names a process chose cannot break out of the JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode: "+err.Error())
		return
	}
	writeRaw(w, status, append(b, '\n'))
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(errorBody{msg})
	writeRaw(w, status, append(b, '\n'))
}

const notYet = "no collection yet: picket is starting"

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	snap := s.opts.Source.Snapshot()
	if snap == nil {
		writeError(w, http.StatusServiceUnavailable, notYet)
		return
	}
	q, narrowed, err := parseSnapQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var b []byte
	if narrowed {
		b, err = s.snapNarrow.get(snap, q)
	} else {
		b, err = s.snapJSON.get(snap)
	}
	if err != nil {
		s.log.Error("encode snapshot", "err", err)
		writeError(w, http.StatusInternalServerError, "encode snapshot: "+err.Error())
		return
	}
	writeRaw(w, http.StatusOK, b)
}

// snapCache keeps the JSON of the latest snapshot: a dashboard polls it
// every few seconds and a busy host's snapshot is megabytes, while the
// daemon replaces it only once per collection. Snapshots are never modified
// once published (Source's contract), so the pointer identifies the bytes.
type snapCache struct {
	mu   sync.Mutex
	snap *snapshot.Snapshot
	b    []byte
}

func (c *snapCache) get(snap *snapshot.Snapshot) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == snap {
		return c.b, nil
	}
	b, err := snap.AppendJSON(nil)
	if err != nil {
		return nil, err
	}
	c.snap, c.b = snap, append(b, '\n')
	return c.b, nil
}

func (s *Server) findings(w http.ResponseWriter, r *http.Request) {
	rep := s.opts.Source.Findings()
	if rep == nil {
		writeError(w, http.StatusServiceUnavailable, notYet)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) alarms(w http.ResponseWriter, r *http.Request) {
	// Before the first collection no rule has run: "no alarms" would be a
	// lie, so this answers 503 like the snapshot.
	if s.opts.Source.Snapshot() == nil {
		writeError(w, http.StatusServiceUnavailable, notYet)
		return
	}
	as := s.opts.Source.Alarms()
	if as == nil {
		as = []alarm.Alarm{}
	}
	writeJSON(w, http.StatusOK, struct {
		Alarms []alarm.Alarm `json:"alarms"`
	}{as})
}

func (s *Server) journal(w http.ResponseWriter, r *http.Request) {
	limit := defaultJournalLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxJournalLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number from 1 to %d", v, maxJournalLimit))
			return
		}
		limit = n
	}
	raw, err := s.opts.Source.Journal(limit)
	if err != nil {
		s.log.Error("read journal", "err", err)
		writeError(w, http.StatusInternalServerError, "read journal: "+err.Error())
		return
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("[]")
	}
	if raw[0] != '[' || !json.Valid(raw) {
		s.log.Error("journal is not a JSON array", "bytes", len(raw))
		writeError(w, http.StatusInternalServerError, "read journal: the daemon returned something other than a JSON array")
		return
	}
	b := make([]byte, 0, len(raw)+16)
	b = append(b, `{"entries":`...)
	b = append(b, raw...)
	b = append(b, "}\n"...)
	writeRaw(w, http.StatusOK, b)
}

type healthBody struct {
	// Status is "ok", "stale" (the last collection is older than
	// stale_after_seconds) or "starting" (no collection yet).
	Status            string        `json:"status"`
	LastCollection    time.Time     `json:"last_collection,omitzero"`
	AgeSeconds        *float64      `json:"last_collection_age_seconds,omitempty"`
	DurationSeconds   float64       `json:"last_duration_seconds"`
	StaleAfterSeconds float64       `json:"stale_after_seconds"`
	LastError         string        `json:"last_error,omitempty"`
	Config            string        `json:"config,omitempty"`
	ConfigError       string        `json:"config_error,omitempty"`
	Host              *HostFeatures `json:"host,omitempty"`
	Refused           []Refusal     `json:"refused,omitempty"`
}

// healthz reads only Health, never the snapshot: it must answer fast on a
// host that is out of memory (within 1 s under memory pressure).
// A refused reload does not make picket unhealthy: the previous
// configuration keeps running, and the body says why.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	h := s.opts.Source.Health()
	body := healthBody{
		Status:            "ok",
		LastCollection:    h.LastCollection,
		DurationSeconds:   h.LastDuration.Seconds(),
		StaleAfterSeconds: s.opts.StaleAfter.Seconds(),
		LastError:         h.LastError,
		Config:            h.Config,
		ConfigError:       h.ConfigError,
		Host:              h.Host,
		Refused:           h.Refused,
	}
	status := http.StatusOK
	if h.LastCollection.IsZero() {
		body.Status, status = "starting", http.StatusServiceUnavailable
	} else {
		age := max(s.opts.Now().Sub(h.LastCollection), 0)
		secs := age.Seconds()
		body.AgeSeconds = &secs
		if age > s.opts.StaleAfter {
			body.Status, status = "stale", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, body)
}
