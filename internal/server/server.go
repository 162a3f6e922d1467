// Package server is picket's HTTP side: Prometheus metrics, a
// read-only JSON API over what the daemon last saw, a health check, and two
// mutating endpoints (undo an action, silence a rule) behind a bearer token.
// The dashboard is served from here too, and reads only the JSON
// API: there is no second source of truth.
//
// The server never collects: every request reads the latest values the
// daemon keeps (Source), so a scrape or a dashboard poll costs no /proc walk
// and cannot slow collection down.
//
// Endpoints (all GET or HEAD unless said otherwise; any other method is 405):
//
//	/metrics              Prometheus text format (see metrics.go for names)
//	/api/v1/snapshot      the latest snapshot.Snapshot
//	/api/v1/findings      the latest doctor.Report
//	/api/v1/alarms        {"alarms": [alarm.Alarm...]}
//	/api/v1/journal       {"entries": [...]} newest first; ?limit=N (1..1000, default 100)
//	/api/v1/history       {"series", "points": [{time, value, min, max}...]};
//	                      ?series=NAME&since=24h&until=&step=1m (see history.go)
//	/api/v1/history/series  {"series": [NAME...]} ?prefix=P
//	/healthz              {"status": "ok"|"stale"|"starting", ...}; 503 unless ok
//	POST /api/v1/undo/{id}  undo action id (token required)
//	POST /api/v1/silence    {"rule": NAME, "duration": "1h"} (token required)
//	/                     the dashboard, when Options.Assets is set
//
// The snapshot, findings, alarms, journal, and the per-process series of
// /metrics and the history are private: they go to the bearer token or to
// root's own loopback connections (access.go; docs/api.md).
//
// Snapshot, findings and alarms answer 503 with a JSON error until the first
// collection; the journal is served from the start (it outlives restarts).
// Snapshot, journal and history serve at most two requests at once; the
// others wait their turn, then answer 503 (see bounded).
// Errors are always JSON: {"error": "..."}.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/picket-guard/picket/internal/alarm"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
)

// DefaultListen is where picket listens unless told otherwise: loopback
// only, so a fresh install exposes nothing.
const DefaultListen = "127.0.0.1:9749"

// Source is what the daemon gives the server. Every method must be cheap and
// safe for concurrent use (the daemon keeps the latest values behind a mutex
// or an atomic), and the values returned must not be modified afterwards:
// the server encodes them while the daemon moves on to the next collection.
type Source interface {
	// Snapshot is the latest collection; nil before the first.
	Snapshot() *snapshot.Snapshot
	// Findings is the latest doctor report; nil before the first.
	Findings() *doctor.Report
	// Alarms are the alarms the server shows. The daemon returns the ones
	// currently firing; a Source may add recently resolved ones (Status
	// tells them apart): /metrics counts only the firing.
	Alarms() []alarm.Alarm
	// Journal is the action journal, newest first, at most limit entries,
	// already JSON (a JSON array of act's entries; null means none).
	Journal(limit int) (json.RawMessage, error)
	// Health is how collection and configuration are going.
	Health() Health
}

// Health is the daemon's own state, for /healthz and /metrics.
type Health struct {
	// LastCollection is when the last successful collection was taken;
	// zero before the first.
	LastCollection time.Time `json:"last_collection"`
	// LastDuration is how long that collection (and its diagnosis) took.
	LastDuration time.Duration `json:"-"`
	// LastError is why the last collection failed or was partial; "" when
	// it was clean.
	LastError string `json:"last_error,omitempty"`
	// Config names the running configuration ("built-in default" or a path).
	Config string `json:"config"`
	// ConfigError is why the last reload was refused (the previous
	// configuration keeps running); "" after a good load.
	ConfigError string `json:"config_error,omitempty"`
	// SpoolPending and SpoolBytes are what the notification spool holds;
	// SpoolDropped counts batches it dropped undelivered, by reason (nil:
	// no spool, and no spool metrics).
	SpoolPending int               `json:"-"`
	SpoolBytes   int64             `json:"-"`
	SpoolDropped map[string]uint64 `json:"-"`
	// RateLimited counts the actions a rate limit refused since the
	// start, by rule and kind.
	RateLimited map[RateLimitKey]uint64 `json:"-"`
	// Host is what the start-up probe found: the kernel, each feature and
	// each capability, found or not.
	Host *HostFeatures `json:"host,omitempty"`
	// Refused lists the action kinds the configuration uses that this host
	// cannot take, and why: they are refused at once, not mid-storm.
	Refused []Refusal `json:"refused,omitempty"`
}

// RateLimitKey names the actions one rate-limit count is about.
type RateLimitKey struct{ Rule, Kind string }

// HostFeatures is the probe's answer, as /healthz shows it.
type HostFeatures struct {
	Kernel       string          `json:"kernel"`
	Container    string          `json:"container,omitempty"`
	Features     map[string]bool `json:"features"`
	Capabilities map[string]bool `json:"capabilities"`
}

// Refusal is an action kind this host cannot take.
type Refusal struct {
	Kind   string   `json:"kind"`
	Rules  []string `json:"rules"`
	Reason string   `json:"reason"`
}

// Mutator changes the daemon's state. It is optional: a nil Mutator makes a
// read-only server.
type Mutator interface {
	// Undo reverts the journaled action id and returns its result as JSON.
	// An error wrapping ErrNotFound answers 404; any other error 409.
	Undo(ctx context.Context, id string) (json.RawMessage, error)
	// Silence stops rule's notifications for d.
	Silence(ctx context.Context, rule string, d time.Duration) error
}

// ErrNotFound is what a Mutator wraps when the thing named does not exist
// (an unknown action id, an unknown rule): the server answers 404.
var ErrNotFound = errors.New("not found")

// Options configure a Server.
type Options struct {
	// Listen is host:port (default DefaultListen). A host that is not a
	// loopback address (127.0.0.0/8, ::1 or "localhost") needs TokenFile.
	Listen string
	// TokenFile holds the bearer token of the mutating endpoints and of
	// the private ones for other users than root (one line, at least 16
	// characters). It must be a regular file owned by root or
	// by picket's user, and not readable or writable by group or others.
	// Without it the mutating endpoints answer 403, and the private ones
	// 403 to all but root.
	TokenFile string
	Source    Source
	Mutator   Mutator
	Logger    *slog.Logger
	// Assets is the dashboard, served at / when set. Its pages
	// run under Content-Security-Policy default-src 'self': no inline
	// scripts or styles, no CDN.
	Assets fs.FS
	// History is the store the dashboard's plots read; nil makes the
	// history endpoints answer 404.
	History HistorySource
	// Version is reported as picket_build_info{version}; default: the
	// main module's version from the build info.
	Version string
	// AllowedHosts are extra Host header values (without port) accepted on a
	// loopback listener; see hostGuard.
	AllowedHosts []string

	// StaleAfter is how old the last collection may be before /healthz
	// answers 503 (default 2m; set it to a few collection intervals).
	StaleAfter time.Duration
	// Metric cardinality bounds; see metrics.go. Defaults 20, 50, 20.
	TopGroups         int
	GroupMinProcesses int
	TopHolders        int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves one Source.
type Server struct {
	opts     Options
	log      *slog.Logger
	loopback bool
	token    *tokenFile
	handler  http.Handler
	addr     atomic.Pointer[net.Addr]
	snapJSON snapCache
	// snapNarrow answers ?top= and the filters (snapshot_query.go).
	snapNarrow narrowCache
	heavy      chan struct{} // turns of the large endpoints; see bounded
}

// Timeouts and bounds of the listener. Writes get longer than reads: a full
// snapshot of a busy host is a few MiB, and an undo may wait on nftables.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 5 * time.Second
	mutateTimeout     = 30 * time.Second
)

// New checks the options and builds the server; it does not listen yet.
func New(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("server: no Source")
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 2 * time.Minute
	}
	if opts.TopGroups <= 0 {
		opts.TopGroups = 20
	}
	if opts.GroupMinProcesses <= 0 {
		opts.GroupMinProcesses = 50
	}
	if opts.TopHolders <= 0 {
		opts.TopHolders = 20
	}
	if opts.Version == "" {
		opts.Version = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			opts.Version = bi.Main.Version
		}
	}
	loopback, err := isLoopbackListen(opts.Listen)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, loopback: loopback, heavy: make(chan struct{}, maxHeavy)}
	if opts.TokenFile != "" {
		s.token = &tokenFile{path: opts.TokenFile}
		if _, err := s.token.read(); err != nil {
			return nil, err
		}
	} else if !loopback {
		return nil, fmt.Errorf("refusing to listen on %s without a token file: it is not a loopback address, so anyone who can reach it could read what picket sees; give --token-file (mode 0600) or listen on 127.0.0.1", opts.Listen)
	}
	h, err := s.routes()
	if err != nil {
		return nil, err
	}
	s.handler = h
	return s, nil
}

// isLoopbackListen says whether host:port only listens on loopback. An
// empty host means every interface; a name other than "localhost" is not
// trusted to resolve to loopback.
func isLoopbackListen(listen string) (bool, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return false, fmt.Errorf("listen address %q: %w", listen, err)
	}
	if port == "" {
		return false, fmt.Errorf("listen address %q: no port", listen)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// Handler is every endpoint, with the security headers and the Host check.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address ListenAndServe bound (useful with port 0); nil until
// it has.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// ListenAndServe listens on Options.Listen and serves until ctx is done,
// then shuts down gracefully: requests in flight get shutdownTimeout to
// finish. It returns nil after a shutdown asked for by ctx.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.opts.Listen, err)
	}
	a := ln.Addr()
	s.addr.Store(&a)
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       s.connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("http listening", "addr", a.String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", a, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		hs.Close()
		return fmt.Errorf("shutdown %s: %w", a, err)
	}
	return nil
}
