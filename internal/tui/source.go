package tui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/picket-guard/picket/internal/forecast"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
)

// Source gives `picket top` its numbers, one refresh at a time. Fetch is
// called again only after the previous call returned.
type Source interface {
	// Fetch returns the latest snapshot and the doctor's report on it. A
	// snapshot returned with an error is partial but shown (the error goes
	// on the status line); a nil snapshot keeps the last one on screen.
	Fetch(ctx context.Context) (*snapshot.Snapshot, *doctor.Report, error)
	// String says where the numbers come from, for the status line.
	String() string
}

// Collecting collects the host itself on every Fetch (no daemon needed)
// and runs the doctor over the last two snapshots, so its rate checks have
// the refresh interval to measure over.
type Collecting struct {
	c        *collect.Collector
	root     string
	interval time.Duration
	prev     *snapshot.Snapshot
	// trends fits the looks top takes itself: watched long enough (ten
	// minutes of a steady rise), top forecasts as picket run does.
	trends *forecast.Tracker
}

// NewCollecting reads root ("/" for this host) through a collector of its
// own; interval is the refresh interval the doctor's rates are told about.
func NewCollecting(root string, interval time.Duration) (*Collecting, error) {
	c, err := collect.New(collect.Options{Root: root})
	if err != nil {
		return nil, err
	}
	return &Collecting{c: c, root: root, interval: interval, trends: forecast.NewTracker(forecast.Options{})}, nil
}

// Fetch collects once.
func (s *Collecting) Fetch(ctx context.Context) (*snapshot.Snapshot, *doctor.Report, error) {
	snap, err := s.c.Collect(ctx, collect.Full)
	if snap == nil || ctx.Err() != nil {
		if err == nil {
			err = ctx.Err()
		}
		return nil, nil, err
	}
	snap.Forecasts = s.trends.Update(snap)
	rep := doctor.Run(doctor.Input{Prev: s.prev, Cur: snap, Interval: s.interval}, doctor.Checks())
	s.prev = snap
	return snap, &rep, err
}

func (s *Collecting) String() string {
	if s.root == "" || s.root == "/" {
		return "collected here"
	}
	return "read from " + s.root
}

// maxBody bounds what one API answer may be: a busy host's snapshot is a
// few megabytes, and a server that never stops sending must not fill this
// one's memory.
const maxBody = 256 << 20

// Daemon reads a running picket's JSON API: GET /api/v1/snapshot (a
// snapshot.Snapshot) and /api/v1/findings (a doctor.Report).
type Daemon struct {
	base   *url.URL
	client *http.Client
	// Top is how many of each table's heaviest rows to ask for
	// (/api/v1/snapshot?top=N): a screenful, not the megabytes of every
	// process on a busy host. 0 means DefaultDaemonTop.
	Top int
	// Token is sent as "Authorization: Bearer Token" when set: the
	// snapshot and findings are private, and a user other than root (or
	// a host other than the daemon's) needs the daemon's token to read
	// them.
	Token string
}

// DefaultDaemonTop is more rows than any terminal shows: sorting by
// another column than the server's (count, total) sorts these rows.
const DefaultDaemonTop = 200

// NewDaemon reads the API at base (http://127.0.0.1:9749, say); a nil
// client means one with a 10 s timeout.
func NewDaemon(base string, client *http.Client) (*Daemon, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--from %q: want http://HOST:PORT, where picket run listens (by default http://127.0.0.1:9749)", base)
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return &Daemon{base: u, client: client}, nil
}

// Fetch reads the snapshot, then the findings. Without a snapshot there is
// nothing to show and the error says why; findings that cannot be read
// leave the verdict line saying so, and the snapshot is still shown.
func (d *Daemon) Fetch(ctx context.Context) (*snapshot.Snapshot, *doctor.Report, error) {
	var snap snapshot.Snapshot
	top := d.Top
	if top <= 0 {
		top = DefaultDaemonTop
	}
	if err := d.get(ctx, "/api/v1/snapshot?top="+strconv.Itoa(top), &snap); err != nil {
		return nil, nil, err
	}
	var rep doctor.Report
	if err := d.get(ctx, "/api/v1/findings", &rep); err != nil {
		return &snap, nil, err
	}
	rep.Host = snap.Host
	return &snap, &rep, nil
}

func (d *Daemon) get(ctx context.Context, path string, v any) error {
	u := *d.base
	path, u.RawQuery, _ = strings.Cut(path, "?")
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if d.Token != "" {
		req.Header.Set("Authorization", "Bearer "+d.Token)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxBody+1)
	if resp.StatusCode != http.StatusOK {
		// picket's errors are {"error": "..."}; anything else is shown by
		// its status alone, never its body.
		var e struct {
			Error string `json:"error"`
		}
		if json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&e) == nil && e.Error != "" {
			return fmt.Errorf("GET %s: %s: %s", u.Path, resp.Status, e.Error)
		}
		return fmt.Errorf("GET %s: %s", u.Path, resp.Status)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u.Path, err)
	}
	if len(b) > maxBody {
		return fmt.Errorf("GET %s: answer larger than %d MiB", u.Path, maxBody>>20)
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("GET %s: not JSON at byte %d: %w", u.Path, se.Offset, err)
		}
		return fmt.Errorf("GET %s: %w", u.Path, err)
	}
	return nil
}

func (d *Daemon) String() string { return "from " + d.base.Redacted() }
