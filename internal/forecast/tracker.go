package forecast

import (
	"sort"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// Tracker keeps the recent looks at every limit picket knows and fits them:
// the daemon's memory of trends between two collections. It is bounded:
// at most maxPoints samples a limit (the older half thinned to every other
// sample when full, so the newest minutes stay dense and the hours sparse,
// which is all a fit over hours needs) and at most maxKeys limits; a limit
// not seen for the longest window is forgotten. Not safe for concurrent
// use: the collection loop owns it.
type Tracker struct {
	opts  Options
	paths map[string]*track
}

type track struct {
	s    []Sample
	seen time.Time
}

const (
	maxPoints = 256
	maxKeys   = 4096
)

// NewTracker returns an empty tracker using the options (zero: defaults).
func NewTracker(o Options) *Tracker {
	return &Tracker{opts: o.withDefaults(), paths: map[string]*track{}}
}

// Observe adds one look at the limit keyed by key.
func (t *Tracker) Observe(key string, at time.Time, used, limit float64) {
	tr, ok := t.paths[key]
	if !ok {
		if len(t.paths) >= maxKeys {
			return // bounded: a host with more limits than this keeps the first
		}
		tr = &track{}
		t.paths[key] = tr
	}
	if n := len(tr.s); n > 0 && !at.After(tr.s[n-1].Time) {
		return // the clock went back, or the same look twice
	}
	if len(tr.s) >= maxPoints {
		half := len(tr.s) / 2
		k := 0
		for i := 0; i < half; i += 2 {
			tr.s[k] = tr.s[i+1]
			k++
		}
		k += copy(tr.s[k:], tr.s[half:])
		tr.s = tr.s[:k]
	}
	tr.s = append(tr.s, Sample{Time: at, Used: used, Limit: limit})
	tr.seen = at
}

// Fit forecasts the limit keyed by key (false: never observed).
func (t *Tracker) Fit(key string, now time.Time) (ETA, Why) {
	tr, ok := t.paths[key]
	if !ok {
		return ETA{}, NoData
	}
	return Fit(tr.s, now, t.opts)
}

// Forget drops the limits not observed within the longest window.
func (t *Tracker) Forget(now time.Time) {
	lookback := t.opts.Windows[len(t.opts.Windows)-1]
	for k, tr := range t.paths {
		if now.Sub(tr.seen) > lookback {
			delete(t.paths, k)
		}
	}
}

// Len is how many limits the tracker holds.
func (t *Tracker) Len() int { return len(t.paths) }

// Update observes every limit of the snapshot and returns the forecasts of
// those with a trend, soonest first.
func (t *Tracker) Update(s *snapshot.Snapshot) []snapshot.Forecast {
	var out []snapshot.Forecast
	for _, l := range Limits(s) {
		t.Observe(l.Key, s.Time, l.Used, l.Max)
		e, why := t.Fit(l.Key, s.Time)
		if why != OK {
			continue
		}
		f := l.Forecast
		f.At = s.Time
		if t.opts.Series != nil {
			f.Series = t.opts.Series(l)
		}
		f.Used, f.Max = round(e.Used), e.Limit
		f.ETASeconds = round(e.Seconds)
		f.RatePerSecond = e.Rate
		f.WindowSeconds = round(e.Window.Seconds())
		f.Samples = e.Samples
		f.Quality = float64(int(e.Quality*1000)) / 1000
		f.Reset = e.Reset
		out = append(out, f)
	}
	t.Forget(s.Time)
	sort.SliceStable(out, func(i, j int) bool { return out[i].ETASeconds < out[j].ETASeconds })
	return out
}

func round(x float64) float64 {
	if x < 0 {
		return -float64(int64(-x + 0.5))
	}
	return float64(int64(x + 0.5))
}

// Seed fills the limits of the snapshot that the tracker does not know
// yet with their past (picket run after a restart, picket snapshot reading
// the daemon's history): past returns a limit's samples, oldest first,
// before s.Time. A limit with no past is left to its looks.
func (t *Tracker) Seed(s *snapshot.Snapshot, past func(Limit) []Sample) {
	for _, l := range Limits(s) {
		if _, ok := t.paths[l.Key]; ok {
			continue
		}
		for _, x := range past(l) {
			if x.Time.Before(s.Time) {
				t.Observe(l.Key, x.Time, x.Used, x.Limit)
			}
		}
	}
}
