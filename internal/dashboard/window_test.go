package dashboard

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/server"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// TestDashboardPlotWindow: every plot's x axis is the chosen window (1h,
// 6h) ending now, whether the history holds no sample, one, two or a full
// hour of them. In the first minutes after `picket run` one or two samples
// made uPlot pad the axis to years ("Mar 2027" … "Jun 2029").
func TestDashboardPlotWindow(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC().Truncate(time.Second)
	type site struct {
		URL     string `json:"url"`
		Samples int    `json:"samples"`
	}
	var sites []site
	for _, n := range []int{360, 0, 1, 2} {
		snap := snaptest.Fixture(t, "imapd-storm")
		snap.Time = now
		rep := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())
		hist := newFakeHistory()
		for i := n - 1; i >= 0; i-- {
			hist.record(scaled(snap, now.Add(-time.Duration(i)*10*time.Second), 1))
		}
		src := &liveSource{snap: snap, report: &rep, journal: json.RawMessage("[]"), hist: hist,
			health: server.Health{LastCollection: now, LastDuration: 80 * time.Millisecond, Config: "fixture"}}
		srv := serve(t, context.Background(), server.Options{Source: src, History: hist})
		sites = append(sites, site{"http://" + srv.Addr().String() + "/", n})
	}
	b, err := json.Marshal(sites)
	if err != nil {
		t.Fatal(err)
	}
	h.run(t, context.Background(), "window", sites[0].URL[len("http://"):len(sites[0].URL)-1], "DASH_WINDOWS="+string(b))
}
