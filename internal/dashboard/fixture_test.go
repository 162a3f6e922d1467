package dashboard

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/server"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// TestDashboardFixture shows the imapd storm of docs/stories.md
// (testdata/snapshots/imapd-storm.json: 100 imapd of alice, 21,564 TCP
// orphans, a beancounter refusing sockets, hostile command names) as if it
// were happening now, after an hour of history climbing to it: the page of
// a host in trouble. Critical findings, beancounter gauges, the limit on
// the orphans plot and escaped control characters are checked, and its
// screenshot is the README's (PICKET_DOCS_SCREENSHOT=1 copies it to
// docs/screenshots/dashboard.png).
func TestDashboardFixture(t *testing.T) {
	h := newHarness(t)
	snap := snaptest.Fixture(t, "imapd-storm")
	now := time.Now().UTC().Truncate(time.Second)
	snap.Time = now
	rep := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())

	// An hour every 10s: a quiet host, then the storm of the last 20
	// minutes, ending in the fixture's numbers.
	hist := newFakeHistory()
	const samples = 360
	for i := samples; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * 10 * time.Second)
		minutes := float64(i) / 6
		f := 1 / (1 + math.Exp((minutes-12)/2.5)) // 0 an hour ago, 1 now
		f = max(0.04, min(1, f+0.02*math.Sin(float64(i)/3)))
		hist.record(scaled(snap, at, f))
	}
	src := &liveSource{snap: snap, report: &rep, journal: fakeJournal(t, now), hist: hist,
		health: server.Health{LastCollection: now, LastDuration: 80 * time.Millisecond, Config: "fixture"}}
	srv := serve(t, context.Background(), server.Options{Source: src, History: hist})
	h.run(t, context.Background(), "fixture", srv.Addr().String(),
		`DASH_ESCAPED=\x1b[31mred\x1b[0m`,
		"DASH_RULE="+hostileRule,
		"DASH_THROTTLE="+throttleID,
	)
	if os.Getenv("PICKET_DOCS_SCREENSHOT") != "" {
		b, err := os.ReadFile(filepath.Join(h.out, "dashboard-fixture.png"))
		if err == nil {
			err = os.WriteFile("../../docs/screenshots/dashboard.png", b, 0o644)
		}
		if err != nil {
			t.Error(err)
		}
	}
}

// scaled is the snapshot at time at with its storm at fraction f: groups
// and holders of 20 or more, orphans, TCP memory and pressure grow with f;
// the rest of the host stays as it is.
func scaled(s *snapshot.Snapshot, at time.Time, f float64) *snapshot.Snapshot {
	c := *s
	c.Time = at
	grow := func(n int) int {
		if n < 20 {
			return n
		}
		return max(1, int(math.Round(float64(n)*f)))
	}
	c.Processes.Groups = make([]snapshot.Group, len(s.Processes.Groups))
	for i, g := range s.Processes.Groups {
		g.Count = grow(g.Count)
		c.Processes.Groups[i] = g
	}
	c.Sockets.Processes = make([]snapshot.Holder, len(s.Sockets.Processes))
	for i, h := range s.Sockets.Processes {
		h.Total = max(1, int(math.Round(float64(h.Total)*(0.5+f/2))))
		c.Sockets.Processes[i] = h
	}
	if st := s.Kernel.Sockstat; st != nil {
		cp := *st
		cp.TCP.Orphan = int(float64(st.TCP.Orphan) * f)
		cp.TCP.MemPages = int(float64(st.TCP.MemPages) * f)
		c.Kernel.Sockstat = &cp
	}
	c.Memory.PSI = map[string]snapshot.PSI{}
	for k, p := range s.Memory.PSI {
		p.SomeAvg10 *= f
		p.FullAvg10 *= f
		c.Memory.PSI[k] = p
	}
	return &c
}
