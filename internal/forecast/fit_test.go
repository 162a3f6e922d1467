package forecast

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// series samples f every step from -span to now (now = t0), with Gaussian
// noise of sd; skip drops samples.
type series struct {
	span, step time.Duration
	f          func(t float64) float64 // t: seconds since the first sample
	limit      func(t float64) float64
	sd         float64
	skip       func(t float64) bool
}

func (s series) samples(seed uint64) []Sample {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []Sample
	n := int(s.span / s.step)
	for i := 0; i <= n; i++ {
		t := float64(i) * s.step.Seconds()
		if s.skip != nil && s.skip(t) {
			continue
		}
		v := s.f(t) + r.NormFloat64()*s.sd
		out = append(out, Sample{Time: t0.Add(-s.span + time.Duration(i)*s.step), Used: math.Round(v), Limit: s.limit(t)})
	}
	return out
}

func constant(v float64) func(float64) float64 { return func(float64) float64 { return v } }

func TestFit(t *testing.T) {
	const h = 3600.0
	cases := []struct {
		name string
		s    series
		// want is the true ETA in seconds (0: none expected); why the
		// reason expected when none.
		want float64
		why  []Why
	}{
		{
			// 41 processes a minute towards a 32768 pid table, ±15 noise.
			name: "linear growth with noise",
			s:    series{span: 3 * time.Hour, step: 10 * time.Second, sd: 15, limit: constant(32768), f: func(t float64) float64 { return 2000 + 41.0/60*t }},
			want: (32768 - (2000 + 41.0/60*3*h)) / (41.0 / 60),
		},
		{
			name: "steep linear growth, 15 min of it",
			s:    series{span: 15 * time.Minute, step: 10 * time.Second, sd: 3, limit: constant(2000), f: func(t float64) float64 { return 300 + 0.5*t }},
			want: (2000 - (300 + 0.5*900)) / 0.5,
		},
		{
			name: "one-off spike on a flat line",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 10, limit: constant(4000), f: func(t float64) float64 {
				if t > 2*h && t < 2*h+60 {
					return 3500
				}
				return 1500
			}},
			why: []Why{NotRising, Noisy},
		},
		{
			name: "a spike under way now (apt-get)",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 10, limit: constant(4000), f: func(t float64) float64 {
				if t > 3*h-90 {
					return 1500 + (t-(3*h-90))*20
				}
				return 1500
			}},
			why: []Why{NotRising, Noisy},
		},
		{
			name: "a step: flat, one jump, flat",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 5, limit: constant(4000), f: func(t float64) float64 {
				if t > 1.5*h {
					return 2500
				}
				return 1000
			}},
			why: []Why{NotRising, Noisy},
		},
		{
			// A service leaking 1,000 sockets per 40-minute life, then restarted.
			name: "sawtooth",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 5, limit: constant(2000), f: func(t float64) float64 {
				return 500 + math.Mod(t, 2400)/2400*1000
			}},
			why: []Why{Resets},
		},
		{
			name: "one restart: the latest tooth only",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 5, limit: constant(3000), f: func(t float64) float64 {
				if t < 2*h {
					return 200 + t*0.3
				}
				return 100 + (t-2*h)*0.3
			}},
			want: (3000 - (100 + h*0.3)) / 0.3,
		},
		{
			name: "flat",
			s:    series{span: 3 * time.Hour, step: 10 * time.Second, sd: 20, limit: constant(4000), f: constant(3000)},
			why:  []Why{NotRising, Noisy},
		},
		{
			name: "falling",
			s:    series{span: 3 * time.Hour, step: 10 * time.Second, sd: 10, limit: constant(4000), f: func(t float64) float64 { return 3000 - t*0.1 }},
			why:  []Why{NotRising, Noisy},
		},
		{
			name: "a gap of an hour",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 5, limit: constant(20000), f: func(t float64) float64 { return 2000 + 1.5*t },
				skip: func(t float64) bool { return t > 1*h && t < 2*h }},
			want: (20000 - (2000 + 1.5*3*h)) / 1.5,
		},
		{
			name: "a gap up to now: stale",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 5, limit: constant(20000), f: func(t float64) float64 { return 2000 + 1.5*t },
				skip: func(t float64) bool { return t > 2*h }},
			why: []Why{Stale},
		},
		{
			name: "a limit raised in the middle",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 10, f: func(t float64) float64 { return 2000 + 0.5*t },
				limit: func(t float64) float64 {
					if t < 2*h {
						return 8000
					}
					return 16000
				}},
			want: (16000 - (2000 + 0.5*3*h)) / 0.5,
		},
		{
			name: "rising for hours, flat for the last 20 minutes",
			s: series{span: 3 * time.Hour, step: 10 * time.Second, sd: 3, limit: constant(20000), f: func(t float64) float64 {
				return 2000 + 0.5*min(t, 3*h-1200)
			}},
			why: []Why{Stopped},
		},
		{
			name: "below the floor (threads against pid_max)",
			s:    series{span: 3 * time.Hour, step: 10 * time.Second, sd: 2, limit: constant(4194304), f: func(t float64) float64 { return 300 + t/60 }},
			why:  []Why{BelowFloor},
		},
		{
			name: "beyond the horizon",
			s:    series{span: 3 * time.Hour, step: 10 * time.Second, sd: 1, limit: constant(1e6), f: func(t float64) float64 { return 100000 + t/60 }},
			why:  []Why{Beyond},
		},
		{
			name: "too short",
			s:    series{span: 5 * time.Minute, step: 10 * time.Second, sd: 1, limit: constant(2000), f: func(t float64) float64 { return 500 + t }},
			why:  []Why{Short},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				e, why := Fit(c.s.samples(seed), t0, Options{})
				if c.want == 0 {
					if why == OK {
						t.Fatalf("seed %d: ETA %.0fs at %.3f/s over %s (tau %.2f, R² %.2f); want none (%s)", seed, e.Seconds, e.Rate, e.Window, e.Tau, e.Quality, c.why)
					}
					if len(c.why) > 0 && !slices.Contains(c.why, why) {
						t.Errorf("seed %d: no ETA because %q, want %q", seed, why, c.why)
					}
					continue
				}
				if why != OK {
					t.Fatalf("seed %d: no ETA (%s), want %.0fs", seed, why, c.want)
				}
				if d := math.Abs(e.Seconds-c.want) / c.want; d > 0.15 {
					t.Errorf("seed %d: ETA %.0fs, want %.0fs ±15%% (off by %.0f%%; window %s, rate %.3f/s)", seed, e.Seconds, c.want, d*100, e.Window, e.Rate)
				}
			}
		})
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{FormatETA(7800), "~2h10m"}, {FormatETA(45), "~45s"}, {FormatETA(720), "~12m"}, {FormatETA(3*86400 + 4*3600), "~3d4h"},
		{FormatSpan(2700), "45m"}, {FormatSpan(7200), "2h"}, {FormatSpan(40), "40s"},
		{FormatRate(41.0/60, "processes"), "+41 processes/min"}, {FormatRate(20, "fds"), "+20 fds/s"}, {FormatRate(0.001, "pages"), "+3.6 pages/h"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// Ordinary churn near a limit — builds and test runs that take a cgroup
// from 60 tasks to 150 of its 200 for a few minutes and back, at random —
// forecast at every look for two hours, as the daemon would: never an ETA.
// This is the noise that makes people switch predict_linear off.
func TestChurnNeverCriesWolf(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		r := rand.New(rand.NewPCG(seed, 2))
		tr := NewTracker(Options{})
		now := t0.Add(-3 * time.Hour)
		var burstEnd time.Time
		var peak, ramp float64
		var burstStart time.Time
		for i := 0; i < 3*360; i++ {
			now = now.Add(10 * time.Second)
			if now.After(burstEnd) && r.Float64() < 0.02 {
				burstStart = now
				burstEnd = now.Add(time.Duration(60+r.IntN(240)) * time.Second)
				peak = 40 + r.Float64()*90
				ramp = float64(20 + r.IntN(100))
			}
			used := 60 + r.NormFloat64()*3
			if now.Before(burstEnd) {
				used += min(peak, peak*now.Sub(burstStart).Seconds()/ramp)
			}
			tr.Observe("pids", now, math.Round(used), 200)
			if i < 360 {
				continue
			}
			if e, why := tr.Fit("pids", now); why == OK {
				t.Fatalf("seed %d, look %d: ETA %.0fs at %.3f/s over %s (τ %.2f, R² %.2f) on churn", seed, i, e.Seconds, e.Rate, e.Window, e.Tau, e.Quality)
			}
		}
	}
}
