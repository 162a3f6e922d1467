// Package forecast says when a limit will be reached at the current trend,
// and says nothing when the trend is not one. It is pure: samples in, an
// estimate out; the daemon feeds it and the outputs show it.
//
// The method (docs/forecast.md says why each rule is there): a Theil–Sen
// slope, robust to the odd spike, fitted over more than one window; an
// estimate only from a window with enough samples and span, without a large
// gap, whose values rise in rank order with time (Kendall's tau), lie close
// to the fitted line (R²) and rise by many small steps rather than one jump;
// a series that fell sharply (a restart: the sawtooth of a service that is
// restarted) is fitted from its latest tooth only; the newest window must
// still be rising; usage must be above a floor of the limit; and the ETA
// must fall inside a horizon and within a bounded multiple of the span it
// was fitted on. Predict_linear over a fixed window, which fires on every
// package upgrade's spike, is what it is built not to be.
package forecast

import (
	"math"
	"slices"
	"time"
)

// Sample is one look at a used/limit pair.
type Sample struct {
	Time  time.Time
	Used  float64
	Limit float64
}

// Options tune the method. Zero values take the defaults (Defaults).
type Options struct {
	// Windows are the spans fitted, shortest first: the shortest says
	// whether the trend is still going, the longer ones give it weight.
	// Default 15m, 2h, 12h.
	Windows []time.Duration
	// MinSpan is the shortest trend given an ETA (default 10m), MinSamples
	// the fewest samples in it (default 8).
	MinSpan    time.Duration
	MinSamples int
	// Floor is the share of the limit usage must reach before any ETA
	// (default 0.05): below it, a few units of noise make a slope.
	Floor float64
	// Horizon is the furthest ETA given (default 7 days); Extrapolate
	// bounds the ETA to that many times the span it was fitted on
	// (default 12): two hours of data say little about next week.
	Horizon     time.Duration
	Extrapolate float64
	// MinTau, MinR2 are the fit's quality floors (defaults 0.6, 0.7);
	// MaxStep is the largest share of the rise one step between bins may
	// carry (default 0.34: a jump is not a trend).
	MinTau  float64
	MinR2   float64
	MaxStep float64
	// ResetDrop is the fall between two samples, as a share of the
	// earlier one, that counts as a reset (default 0.1).
	ResetDrop float64
	// Series names the history series a limit's used values are recorded
	// under (the daemon passes history.LimitSeries), copied to
	// snapshot.Forecast.Series so the dashboard plots the projection on
	// the series it was fitted from. Nil leaves Series empty.
	Series func(Limit) string
}

// Defaults returns the documented defaults.
func Defaults() Options {
	return Options{
		Windows:     []time.Duration{15 * time.Minute, 2 * time.Hour, 12 * time.Hour},
		MinSpan:     10 * time.Minute,
		MinSamples:  8,
		Floor:       0.05,
		Horizon:     7 * 24 * time.Hour,
		Extrapolate: 12,
		MinTau:      0.6,
		MinR2:       0.7,
		MaxStep:     0.34,
		ResetDrop:   0.1,
	}
}

func (o Options) withDefaults() Options {
	d := Defaults()
	if len(o.Windows) == 0 {
		o.Windows = d.Windows
	}
	if o.MinSpan <= 0 {
		o.MinSpan = d.MinSpan
	}
	if o.MinSamples <= 0 {
		o.MinSamples = d.MinSamples
	}
	if o.Floor <= 0 {
		o.Floor = d.Floor
	}
	if o.Horizon <= 0 {
		o.Horizon = d.Horizon
	}
	if o.Extrapolate <= 0 {
		o.Extrapolate = d.Extrapolate
	}
	if o.MinTau <= 0 {
		o.MinTau = d.MinTau
	}
	if o.MinR2 <= 0 {
		o.MinR2 = d.MinR2
	}
	if o.MaxStep <= 0 {
		o.MaxStep = d.MaxStep
	}
	if o.ResetDrop <= 0 {
		o.ResetDrop = d.ResetDrop
	}
	return o
}

// ETA is a forecast: the limit is reached in Seconds at Rate.
type ETA struct {
	Seconds float64
	// Rate is the fitted growth per second.
	Rate float64
	// Window is the span of samples the fit used (at most the window it
	// was chosen from), Samples how many points it had.
	Window  time.Duration
	Samples int
	// Quality is the fit's R² (0..1), Tau its Kendall rank correlation.
	Quality float64
	Tau     float64
	// Used is the fitted level now, Limit the current limit.
	Used, Limit float64
	// Reset is set when the series fell sharply in the lookback and the
	// fit used only what came after (the latest tooth of a sawtooth).
	Reset bool

	noise float64 // standard deviation of the residuals
}

// Why names the reason a series got no ETA, for tests and for the
// evidence of a check that wants to say why it is quiet.
type Why string

// The reasons, in the order the method tests them.
const (
	OK         Why = ""
	NoData     Why = "too few samples"
	NoLimit    Why = "no limit"
	Stale      Why = "no recent sample"
	Short      Why = "trend too short"
	NotRising  Why = "flat or falling"
	Noisy      Why = "no steady trend"
	Stopped    Why = "the latest window is not rising"
	BelowFloor Why = "usage below the floor"
	Beyond     Why = "beyond the horizon"
	Resets     Why = "the series resets before the limit"
)

// Fit forecasts when the series reaches its limit. samples must be oldest
// first; now is the time the ETA counts from. The current limit is the
// newest sample's, and only samples since the limit last changed are fitted.
func Fit(samples []Sample, now time.Time, o Options) (ETA, Why) {
	o = o.withDefaults()
	if len(samples) < 2 {
		return ETA{}, NoData
	}
	last := samples[len(samples)-1]
	if !(last.Limit > 0) || math.IsInf(last.Limit, 0) {
		return ETA{}, NoLimit
	}
	lookback := o.Windows[len(o.Windows)-1]
	start := 0
	for start < len(samples) && now.Sub(samples[start].Time) > lookback {
		start++
	}
	s := samples[start:]
	if len(s) < 2 {
		return ETA{}, NoData
	}
	// A sample older than a fifth of the shortest window, and older than
	// three of the series' own spacings, is a series no one is watching
	// (picket was stopped, the process is gone): nothing is said of now.
	spacing := medianSpacing(s)
	if age := now.Sub(last.Time); age > o.Windows[0]/5 && age > 3*spacing {
		return ETA{}, Stale
	}
	// The limit in force is the newest; what came before a change is fitted
	// against another limit (a raised sysctl, a prlimit) and is dropped.
	for i := len(s) - 1; i > 0; i-- {
		if s[i-1].Limit != last.Limit {
			s = s[i:]
			break
		}
	}
	// A sharp fall is a reset (the service restarted, a cache was
	// dropped): only the latest tooth says where the series is heading.
	// The earlier teeth say how long a tooth lasts.
	// The fall must also stand out of the series' own noise (five robust
	// standard deviations of the steps between looks), so a count jittering
	// near zero does not reset at every look.
	jump := 5 * stepNoise(s)
	var peaks []float64
	cut := 0
	for i := 1; i < len(s); i++ {
		prev := s[i-1].Used
		if d := prev - s[i].Used; prev > 0 && d > o.ResetDrop*prev && d > jump && d >= 2 {
			peaks = append(peaks, prev)
			cut = i
		}
	}
	reset := cut > 0
	s = s[cut:]
	if len(s) < o.MinSamples {
		return ETA{}, NoData
	}
	if s[len(s)-1].Time.Sub(s[0].Time) < o.MinSpan {
		return ETA{}, Short
	}

	var best *ETA
	why := Short
	var first ETA
	var firstWhy Why = NoData
	for wi, w := range o.Windows {
		e, ok, wwhy := fitWindow(s, now, w, o)
		if wi == 0 {
			first, firstWhy = e, wwhy
		}
		if !ok {
			if best == nil && wwhy != Short && wwhy != NoData {
				why = wwhy
			}
			continue
		}
		best = &e // the longest qualifying window: the most evidence
	}
	if best == nil {
		return ETA{}, why
	}
	// Rising over hours but not in the newest window, where the long
	// trend would have shown above the noise: the trend has stopped, and
	// an ETA from the hours would be the stale alarm people disable.
	if firstWhy != Short && firstWhy != NoData && best.Window > first.Window {
		want := best.Rate * first.Window.Seconds()
		if first.Rate*first.Window.Seconds() < want/4 && want > 2*first.noise {
			return ETA{}, Stopped
		}
	}
	best.Reset = reset
	if best.Used < o.Floor*best.Limit {
		return ETA{}, BelowFloor
	}
	if best.Seconds > o.Horizon.Seconds() || best.Seconds > o.Extrapolate*best.Window.Seconds() {
		return ETA{}, Beyond
	}
	// Teeth that came and went before: a series that has climbed this
	// high and fallen back more than once (a service restarted by cron,
	// a cache dropped) is doing what it always does until it climbs past
	// its earlier peaks.
	if len(peaks) >= 2 && best.Used <= slices.Max(peaks) {
		return ETA{}, Resets
	}
	return *best, OK
}

// maxBins bounds the points one window's fit reads: Theil–Sen is quadratic
// in them, and bins also average out the noise between two looks.
const maxBins = 48

type point struct{ x, y float64 } // seconds since the window's first sample, used

func fitWindow(all []Sample, now time.Time, w time.Duration, o Options) (ETA, bool, Why) {
	i := len(all)
	for i > 0 && now.Sub(all[i-1].Time) <= w {
		i--
	}
	s := all[i:]
	if len(s) < o.MinSamples {
		return ETA{}, false, NoData
	}
	span := s[len(s)-1].Time.Sub(s[0].Time)
	if span < o.MinSpan {
		return ETA{}, false, Short
	}
	// A hole of more than a quarter of the span (picket stopped, the host
	// slept) leaves too little of the window to call its shape.
	for j := 1; j < len(s); j++ {
		if s[j].Time.Sub(s[j-1].Time) > span/4 {
			return ETA{}, false, Short
		}
	}
	pts := bin(s, maxBins)
	if len(pts) < o.MinSamples {
		return ETA{}, false, NoData
	}
	slope, icpt := theilSen(pts)
	limit := s[len(s)-1].Limit
	x := now.Sub(s[0].Time).Seconds()
	level := icpt + slope*x
	e := ETA{Rate: slope, Window: span, Samples: len(s), Used: level, Limit: limit}
	e.Quality, e.noise = r2(pts, slope, icpt)
	if slope <= 0 {
		return e, false, NotRising
	}
	e.Tau = kendallTau(pts)
	rise := slope * pts[len(pts)-1].x
	maxStep := 0.0
	for j := 1; j < len(pts); j++ {
		maxStep = max(maxStep, pts[j].y-pts[j-1].y)
	}
	if e.Tau < o.MinTau || e.Quality < o.MinR2 || rise <= 0 || maxStep > o.MaxStep*rise {
		return e, false, Noisy
	}
	e.Seconds = max((limit-level)/slope, 0)
	return e, true, OK
}

// bin averages the samples into at most n bins of equal time.
func bin(s []Sample, n int) []point {
	t0 := s[0].Time
	span := s[len(s)-1].Time.Sub(t0).Seconds()
	if len(s) <= n || span <= 0 {
		out := make([]point, len(s))
		for i, v := range s {
			out[i] = point{v.Time.Sub(t0).Seconds(), v.Used}
		}
		return out
	}
	out := make([]point, 0, n)
	width := span / float64(n)
	var sx, sy float64
	var k int
	cur := 0
	flush := func() {
		if k > 0 {
			out = append(out, point{sx / float64(k), sy / float64(k)})
		}
		sx, sy, k = 0, 0, 0
	}
	for _, v := range s {
		x := v.Time.Sub(t0).Seconds()
		b := min(int(x/width), n-1)
		if b != cur {
			flush()
			cur = b
		}
		sx += x
		sy += v.Used
		k++
	}
	flush()
	return out
}

// theilSen is the median of the pairwise slopes and the median intercept
// (Sen 1968): up to 29 % of the points can be wild without moving it.
func theilSen(p []point) (slope, icpt float64) {
	slopes := make([]float64, 0, len(p)*(len(p)-1)/2)
	for i := range p {
		for j := i + 1; j < len(p); j++ {
			if dx := p[j].x - p[i].x; dx > 0 {
				slopes = append(slopes, (p[j].y-p[i].y)/dx)
			}
		}
	}
	if len(slopes) == 0 {
		return 0, p[0].y
	}
	slope = median(slopes)
	rest := make([]float64, len(p))
	for i, v := range p {
		rest[i] = v.y - slope*v.x
	}
	return slope, median(rest)
}

func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// r2 is 1 − SSres/SStot of the points about the fitted line, and the
// residuals' standard deviation.
func r2(p []point, slope, icpt float64) (float64, float64) {
	var mean float64
	for _, v := range p {
		mean += v.y
	}
	mean /= float64(len(p))
	var res, tot float64
	for _, v := range p {
		d := v.y - (icpt + slope*v.x)
		res += d * d
		tot += (v.y - mean) * (v.y - mean)
	}
	sd := math.Sqrt(res / float64(len(p)))
	if tot == 0 {
		return 0, sd
	}
	return 1 - res/tot, sd
}

// kendallTau is (concordant − discordant) / all pairs, ties counting as
// neither: 1 for a series that only rises, 0 for noise.
func kendallTau(p []point) float64 {
	var c, d int
	for i := range p {
		for j := i + 1; j < len(p); j++ {
			switch {
			case p[j].y > p[i].y:
				c++
			case p[j].y < p[i].y:
				d++
			}
		}
	}
	n := len(p) * (len(p) - 1) / 2
	if n == 0 {
		return 0
	}
	return float64(c-d) / float64(n)
}

func medianSpacing(s []Sample) time.Duration {
	if len(s) < 2 {
		return 0
	}
	d := make([]float64, len(s)-1)
	for i := 1; i < len(s); i++ {
		d[i-1] = float64(s[i].Time.Sub(s[i-1].Time))
	}
	return time.Duration(median(d))
}

// stepNoise is a robust standard deviation of the steps between samples
// (1.4826 × their median absolute deviation).
func stepNoise(s []Sample) float64 {
	if len(s) < 3 {
		return 0
	}
	d := make([]float64, len(s)-1)
	for i := 1; i < len(s); i++ {
		d[i-1] = s[i].Used - s[i-1].Used
	}
	m := median(d)
	for i := range d {
		d[i] = math.Abs(d[i] - m)
	}
	return 1.4826 * median(d)
}
