package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHistory is the daemon's store as the server sees it: a few series and
// a record of what was asked.
type fakeHistory struct {
	mu      sync.Mutex
	series  map[string][]Point
	asked   []historyAsk
	prefix  []string
	failure error
}

type historyAsk struct {
	series       string
	since, until time.Time
	step         time.Duration
}

func (f *fakeHistory) Query(series string, since, until time.Time, step time.Duration) ([]Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, historyAsk{series, since, until, step})
	if f.failure != nil {
		return nil, f.failure
	}
	pts, ok := f.series[series]
	if !ok {
		return nil, fmt.Errorf("history: %w: %q", ErrNotFound, series)
	}
	var out []Point
	for _, p := range pts {
		if !p.Time.Before(since) && !p.Time.After(until) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakeHistory) Series(prefix string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prefix = append(f.prefix, prefix)
	if f.failure != nil {
		return nil, f.failure
	}
	var out []string
	for name := range f.series {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out, nil
}

func (f *fakeHistory) lastAsk(t *testing.T) historyAsk {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		t.Fatal("the history was not asked")
	}
	return f.asked[len(f.asked)-1]
}

// hostileGroup is a group series whose command a process chose.
const hostileGroup = "group/root/<b>x</b>&\"'/count"

func newFakeHistory() *fakeHistory {
	now := fixtureTime.Add(5 * time.Second)
	pts := func(vs ...float64) []Point {
		var out []Point
		for i, v := range vs {
			out = append(out, Point{Time: now.Add(time.Duration(i-len(vs)+1) * time.Minute), Value: v, Min: v, Max: v})
		}
		return out
	}
	return &fakeHistory{series: map[string][]Point{
		"kernel.sockstat.tcp.orphan": pts(100, 200, 21564),
		"kernel.tcp_max_orphans":     pts(16384, 16384, 16384),
		"group/alice/imapd/count":    pts(10, 50, 800),
		hostileGroup:                 pts(1, 1),
		"nan":                        {{Time: now, Value: math.NaN()}, {Time: now, Value: 1, Min: 1, Max: 1}},
	}}
}

func TestHistory(t *testing.T) {
	hist := newFakeHistory()
	now := fixtureTime.Add(5 * time.Second)
	h := newServer(t, Options{Source: loadedSource(t), History: hist}).Handler()

	t.Run("defaults", func(t *testing.T) {
		w := do(t, h, "GET", "/api/v1/history?series=kernel.sockstat.tcp.orphan", nil)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var b historyBody
		strictDecode(t, w.Body.String(), &b)
		if b.Series != "kernel.sockstat.tcp.orphan" || len(b.Points) != 3 || b.Points[2].Value != 21564 {
			t.Errorf("body: %+v", b)
		}
		if !b.Until.Equal(now) || !b.Since.Equal(now.Add(-time.Hour)) || b.StepSeconds != 5 {
			t.Errorf("window %s..%s step %vs, want the last hour in 720 steps of 5s", b.Since, b.Until, b.StepSeconds)
		}
		a := hist.lastAsk(t)
		if a.series != b.Series || !a.since.Equal(b.Since) || !a.until.Equal(now) || a.step != 5*time.Second {
			t.Errorf("asked %+v", a)
		}
	})

	t.Run("window and step", func(t *testing.T) {
		for _, tc := range []struct {
			query        string
			since, until time.Time
			step         time.Duration
		}{
			{"since=24h&step=1m", now.Add(-24 * time.Hour), now, time.Minute},
			{"since=7d&step=1h", now.Add(-7 * 24 * time.Hour), now, time.Hour},
			{"since=7d", now.Add(-7 * 24 * time.Hour), now, 840 * time.Second},
			{"since=2026-11-23T02:00:00Z&until=2026-11-23T02:30:00Z&step=10s",
				fixtureTime.Add(-time.Hour), fixtureTime.Add(-30 * time.Minute), 10 * time.Second},
			{"since=90m&until=30m", now.Add(-90 * time.Minute), now.Add(-30 * time.Minute), 5 * time.Second},
		} {
			w := do(t, h, "GET", "/api/v1/history?series=kernel.tcp_max_orphans&"+tc.query, nil)
			if w.Code != http.StatusOK {
				t.Errorf("%s: status %d: %s", tc.query, w.Code, w.Body)
				continue
			}
			a := hist.lastAsk(t)
			if !a.since.Equal(tc.since) || !a.until.Equal(tc.until) || a.step != tc.step {
				t.Errorf("%s: asked %s..%s step %s, want %s..%s step %s", tc.query, a.since, a.until, a.step, tc.since, tc.until, tc.step)
			}
		}
	})

	t.Run("hostile series name", func(t *testing.T) {
		w := do(t, h, "GET", "/api/v1/history?series="+url.QueryEscape(hostileGroup), nil)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if !strings.Contains(w.Body.String(), `"series":"group/root/\u003cb\u003ex\u003c/b\u003e\u0026\"'/count"`) {
			t.Errorf("the name is not escaped in the JSON: %s", w.Body)
		}
		var b historyBody
		strictDecode(t, w.Body.String(), &b)
		if b.Series != hostileGroup || len(b.Points) != 2 {
			t.Errorf("body: %+v", b)
		}
	})

	t.Run("NaN dropped", func(t *testing.T) {
		w := do(t, h, "GET", "/api/v1/history?series=nan", nil)
		var b historyBody
		strictDecode(t, w.Body.String(), &b)
		if w.Code != http.StatusOK || len(b.Points) != 1 {
			t.Errorf("status %d: %s", w.Code, w.Body)
		}
	})

	t.Run("empty series answers an empty list", func(t *testing.T) {
		w := do(t, h, "GET", "/api/v1/history?series=group/alice/imapd/count&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z", nil)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"points":[]`) {
			t.Errorf("status %d: %s", w.Code, w.Body)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			query  string
			status int
			want   string
		}{
			{"", 400, "series: missing"},
			{"series=" + strings.Repeat("x", 1025), 400, "longer than"},
			{"series=no.such", 404, `no series "no.such"`},
			{"series=nan&since=yesterday", 400, "since:"},
			{"series=nan&since=-1h", 400, "negative"},
			{"series=nan&until=soon", 400, "until:"},
			{"series=nan&since=1h&until=2h", 400, "before until"},
			{"series=nan&since=40000d", 400, "since:"},
			{"series=nan&since=1000d", 400, "at most"},
			{"series=nan&since=401d", 400, "at most"},
			{"series=nan&step=0s", 400, "step"},
			{"series=nan&step=-1m", 400, "step"},
			{"series=nan&step=fast", 400, "step"},
			{"series=nan&since=7d&step=1s", 400, "coarser step"},
		} {
			w := do(t, h, "GET", "/api/v1/history?"+tc.query, nil)
			if msg := jsonError(t, w, tc.status); !strings.Contains(msg, tc.want) {
				t.Errorf("%s: %q, want %q in it", tc.query, msg, tc.want)
			}
		}
		w := do(t, h, "POST", "/api/v1/history?series=nan", nil)
		jsonError(t, w, http.StatusMethodNotAllowed)
	})

	t.Run("store error", func(t *testing.T) {
		hist := newFakeHistory()
		hist.failure = errors.New("disk on fire")
		h := newServer(t, Options{Source: loadedSource(t), History: hist}).Handler()
		for _, p := range []string{"/api/v1/history?series=nan", "/api/v1/history/series?prefix="} {
			if msg := jsonError(t, do(t, h, "GET", p, nil), 500); !strings.Contains(msg, "disk on fire") {
				t.Errorf("%s: %q", p, msg)
			}
		}
	})
}

func TestHistorySeries(t *testing.T) {
	hist := newFakeHistory()
	h := newServer(t, Options{Source: loadedSource(t), History: hist}).Handler()
	for _, tc := range []struct {
		prefix string
		want   string
	}{
		{"group/", `{"series":["group/alice/imapd/count","group/root/\u003cb\u003ex\u003c/b\u003e\u0026\"'/count"]}`},
		{"kernel.", `{"series":["kernel.sockstat.tcp.orphan","kernel.tcp_max_orphans"]}`},
		{"holder/", `{"series":[]}`},
		{"", `{"series":["group/alice/imapd/count","group/root/\u003cb\u003ex\u003c/b\u003e\u0026\"'/count","kernel.sockstat.tcp.orphan","kernel.tcp_max_orphans","nan"]}`},
	} {
		w := do(t, h, "GET", "/api/v1/history/series?prefix="+url.QueryEscape(tc.prefix), nil)
		if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != tc.want {
			t.Errorf("prefix %q: status %d: %s\nwant %s", tc.prefix, w.Code, w.Body, tc.want)
		}
	}
	if msg := jsonError(t, do(t, h, "GET", "/api/v1/history/series?prefix="+strings.Repeat("g", 1025), nil), 400); !strings.Contains(msg, "prefix") {
		t.Errorf("long prefix: %q", msg)
	}
}

func TestHistoryNone(t *testing.T) {
	h := newServer(t, Options{Source: loadedSource(t)}).Handler()
	for _, p := range []string{"/api/v1/history?series=kernel.tcp_max_orphans", "/api/v1/history/series?prefix=group/"} {
		if msg := jsonError(t, do(t, h, "GET", p, nil), http.StatusNotFound); !strings.Contains(msg, "no history") {
			t.Errorf("%s: %q", p, msg)
		}
	}
}
