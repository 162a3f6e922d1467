package history

import (
	"math"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/forecast"
)

// A tracker seeded from history forecasts at once what it would have
// forecast had it watched all along (picket run after a restart, picket
// snapshot reading picket run's history).
func TestLimitSamplesSeedATracker(t *testing.T) {
	c := &clock{now: t0}
	s, _ := openTest(t, c, Options{})
	h := &host{}
	const looks = 160 // 40 minutes every 15 s, 40 more tasks a look
	for i := range looks {
		snap := h.snapshot(t0.Add(time.Duration(i) * 15 * time.Second))
		snap.Processes.Total, snap.Processes.Threads, snap.Kernel.PidMax = 500, 2000+40*i, 32768
		mustRecord(t, s, snap)
	}
	now := t0.Add(looks * 15 * time.Second)
	c.now = now
	cur := h.snapshot(now)
	cur.Processes.Total, cur.Processes.Threads, cur.Kernel.PidMax = 500, 2000+40*looks, 32768
	tr := forecast.NewTracker(forecast.Options{Series: LimitSeries})
	tr.Seed(cur, func(l forecast.Limit) []forecast.Sample { return s.LimitSamples(l, now) })
	var got float64
	for _, f := range tr.Update(cur) {
		if f.Limit == forecast.PidMax {
			got = f.ETASeconds
			// The series the forecast names is the store's, with the looks
			// it was fitted from.
			if pts, err := s.Query(f.Series, now.Add(-time.Hour), now, 0); err != nil || len(pts) < looks/2 {
				t.Errorf("series %q: %d points, %v", f.Series, len(pts), err)
			}
		}
	}
	want := float64(32768-(2000+40*looks)) / (40.0 / 15)
	if math.Abs(got-want)/want > 0.05 {
		t.Errorf("pid_max ETA %.0fs after seeding, want %.0fs", got, want)
	}
}
