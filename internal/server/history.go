package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// HistorySource is the daemon's history store as the dashboard's plots read
// it. The daemon adapts its store to it; a nil HistorySource makes the
// history endpoints answer 404.
type HistorySource interface {
	// Query returns a series between since and until (both inclusive),
	// oldest first. With step > 0 the points are grouped into intervals of
	// step, each the average, minimum and maximum of what fell in it. An
	// unknown series is an error wrapping ErrNotFound.
	Query(series string, since, until time.Time, step time.Duration) ([]Point, error)
	// Series lists the names of the series that start with prefix, sorted.
	Series(prefix string) ([]string, error)
}

// Point is a series' value at a time: a raw sample (Value, Min and Max the
// same) or an interval's average, minimum and maximum.
type Point struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
}

// Bounds of one history request: a plot is a few hundred pixels wide, so a
// few thousand points is already more than it can show, and a series name
// is a user and a command (history keeps names under 1 KiB).
const (
	defaultHistoryWindow = time.Hour
	defaultHistoryPoints = 720
	maxHistoryPoints     = 10000
	maxHistoryWindow     = 400 * 24 * time.Hour
	maxSeriesName        = 1024
	maxSeriesList        = 10000
)

type historyBody struct {
	Series      string    `json:"series"`
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	StepSeconds float64   `json:"step_seconds"`
	Points      []Point   `json:"points"`
}

// history answers GET /api/v1/history?series=NAME&since=24h&until=...&step=1m.
// since and until are durations before now ("24h", "7d") or RFC 3339
// times; since defaults to 1h, until to now. step defaults to the window
// cut into defaultHistoryPoints intervals.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	if s.opts.History == nil {
		writeError(w, http.StatusNotFound, "no history: this picket keeps none")
		return
	}
	q := r.URL.Query()
	name := q.Get("series")
	if name == "" {
		writeError(w, http.StatusBadRequest, "series: missing (list them with /api/v1/history/series?prefix=)")
		return
	}
	if len(name) > maxSeriesName {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("series: longer than %d bytes", maxSeriesName))
		return
	}
	if privateSeries(name) {
		if d := s.authorize(r); d != nil {
			d.write(w)
			return
		}
	}
	now := s.opts.Now()
	since, err := parseWhen(q.Get("since"), now, now.Add(-defaultHistoryWindow))
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	until, err := parseWhen(q.Get("until"), now, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "until: "+err.Error())
		return
	}
	window := until.Sub(since)
	if window <= 0 {
		writeError(w, http.StatusBadRequest, "since must be before until")
		return
	}
	if window > maxHistoryWindow {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("window of %s: at most %s", window, maxHistoryWindow))
		return
	}
	step := (window + defaultHistoryPoints - 1) / defaultHistoryPoints
	if v := q.Get("step"); v != "" {
		step, err = parseDuration(v)
		if err != nil || step <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("step %q: want a positive duration such as 10s, 1m or 1h", v))
			return
		}
	}
	if window/step > maxHistoryPoints {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("step %s over %s is more than %d points: use a coarser step", step, window, maxHistoryPoints))
		return
	}
	pts, err := s.opts.History.Query(name, since, until, step)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "no series "+strconv.Quote(name))
		return
	}
	if err != nil {
		s.log.Error("query history", "series", name, "err", err)
		writeError(w, http.StatusInternalServerError, "query history: "+err.Error())
		return
	}
	// JSON has no NaN or infinity: such a point is dropped rather than
	// failing the whole answer.
	out := make([]Point, 0, len(pts))
	for _, p := range pts {
		if finite(p.Value) && finite(p.Min) && finite(p.Max) {
			out = append(out, p)
		}
	}
	writeJSON(w, http.StatusOK, historyBody{Series: name, Since: since, Until: until, StepSeconds: step.Seconds(), Points: out})
}

// privateSeries says whether a history series is one process's sockets or
// descriptors (history's holder/PID@START/COMM/...): what only root can
// count (/proc/PID/fd), so private as the snapshot is. The other series
// are host totals and limits, user × command groups and cgroups, which
// /metrics shows to anyone.
func privateSeries(name string) bool { return strings.HasPrefix(name, "holder/") }

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// historySeries answers GET /api/v1/history/series?prefix=P.
func (s *Server) historySeries(w http.ResponseWriter, r *http.Request) {
	if s.opts.History == nil {
		writeError(w, http.StatusNotFound, "no history: this picket keeps none")
		return
	}
	prefix := r.URL.Query().Get("prefix")
	if len(prefix) > maxSeriesName {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("prefix: longer than %d bytes", maxSeriesName))
		return
	}
	names, err := s.opts.History.Series(prefix)
	if err != nil {
		s.log.Error("list history series", "prefix", prefix, "err", err)
		writeError(w, http.StatusInternalServerError, "list history series: "+err.Error())
		return
	}
	if names == nil {
		names = []string{}
	}
	if s.authorize(r) != nil {
		names = slices.DeleteFunc(names, privateSeries)
	}
	sort.Strings(names)
	truncated := false
	if len(names) > maxSeriesList {
		names, truncated = names[:maxSeriesList], true
	}
	writeJSON(w, http.StatusOK, struct {
		Series    []string `json:"series"`
		Truncated bool     `json:"truncated,omitempty"`
	}{names, truncated})
}

// parseWhen reads a time: empty is def, a duration is that long before now,
// anything else must be RFC 3339.
func parseWhen(v string, now, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if d, err := parseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a negative duration", v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a duration before now (90m, 24h, 7d) or an RFC 3339 time", v)
	}
	return t, nil
}

// parseDuration is time.ParseDuration plus whole days ("7d"), the unit the
// dashboard's windows are named in (bounded far below Duration's 292 years).
func parseDuration(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 100*366 {
			return 0, fmt.Errorf("bad duration %q", v)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}
