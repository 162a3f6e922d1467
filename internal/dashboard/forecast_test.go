package dashboard

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/forecast"
	"github.com/picket-guard/picket/internal/history"
	"github.com/picket-guard/picket/internal/server"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// Names a process and a user chose, for the labels of their forecasts:
// markup if a page parsed them, and an escape sequence.
const (
	hostileFDComm = `<b>x</b>&"'`
	hostileUser   = "<img src=x onerror=alert(1)>\x1b[2J"
)

// TestDashboardProjection: an hour of looks fed through the daemon's own
// forecast.Tracker (no fit in the test or in the page), with orphans
// climbing toward a quarter of tcp_max_orphans, a process's fds and a
// user's tasks climbing toward their rlimits, and TCP memory flat. The page
// must draw, for each forecast, a dashed line along the fit that meets the
// limit at the ETA's x (asked of uPlot's valToPos in the page), the limit as
// a line and the ETA as a label; nothing on the flat series; and the names
// in the labels as text.
func TestDashboardProjection(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC().Truncate(time.Second)
	base := snaptest.Fixture(t, "imapd-storm")
	base.Kernel.TCPMaxOrphans = 262144 // resets at 65,536
	// The process whose fds leak, renamed; the user whose tasks grow.
	leak := -1
	for i, p := range base.Processes.List {
		if p.UID != 0 && p.FDLimit > 0 {
			leak = i
			break
		}
	}
	if leak < 0 {
		t.Fatal("the fixture has no process of a user with an fd limit")
	}
	base.Processes.List = append([]snapshot.Process(nil), base.Processes.List...)
	base.Processes.List[leak].Comm = hostileFDComm
	base.Processes.List[leak].FDLimit = 1024
	leakPID := base.Processes.List[leak].PID

	hist := newFakeHistory()
	tr := forecast.NewTracker(forecast.Options{Series: history.LimitSeries})
	const looks = 360 // an hour, every 10 s
	var snap *snapshot.Snapshot
	for i := looks; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * 10 * time.Second)
		f := float64(looks-i) / looks // 0 an hour ago, 1 now
		wobble := 1 + 0.01*math.Sin(float64(i)/2)
		s := *base
		s.Time = at
		st := *base.Kernel.Sockstat
		st.TCP.Orphan = int((10000 + 40000*f) * wobble)
		st.TCP.MemPages = 500000 // flat
		s.Kernel.Sockstat = &st
		s.Processes.List = append([]snapshot.Process(nil), base.Processes.List...)
		s.Processes.List[leak].FDs = int((300 + 300*f) * wobble)
		s.Processes.Users = append(append([]snapshot.User(nil), base.Processes.Users...),
			snapshot.User{User: hostileUser, UID: 4242, Count: 3, Threads: int((200 + 200*f) * wobble), NprocLimit: 1000})
		s.Forecasts = tr.Update(&s)
		hist.record(&s)
		// What the store keeps for the forecasts beside the host series.
		for _, l := range forecast.Limits(&s) {
			if name := history.LimitSeries(l); name != "" && name != history.SeriesOrphans && name != "kernel.sockstat.tcp.mem_pages" {
				hist.add(name, at, l.Used)
			}
		}
		snap = &s
	}

	type want struct {
		Plot   string  `json:"plot"`
		Series string  `json:"series"`
		Limit  string  `json:"limit"`
		Label  string  `json:"label"`
		At     float64 `json:"at"`
		ETA    float64 `json:"eta"`
		Max    float64 `json:"max"` // in the plot's units
	}
	var wants []want
	for _, f := range snap.Forecasts {
		var name string
		switch f.Limit {
		case forecast.TCPMaxOrphans:
			name = "tcp_max_orphans/4"
			wants = append(wants, want{"orphans", f.Series, f.Limit, name + " full in " + forecast.FormatETA(f.ETASeconds), float64(f.At.Unix()), f.ETASeconds, f.Max})
		case forecast.RlimitNofile:
			name = term.Escape(f.Comm) + " [" + strconv.Itoa(f.PID) + "] RLIMIT_NOFILE"
		case forecast.RlimitNproc:
			name = term.Escape(f.User) + " RLIMIT_NPROC"
		default:
			t.Errorf("a forecast of %s %s: only the orphans, the fds and the tasks rise (%+v)", f.Limit, f.Series, f)
			continue
		}
		wants = append(wants, want{"forecasts", f.Series, f.Limit, name + " full in " + forecast.FormatETA(f.ETASeconds), float64(f.At.Unix()), f.ETASeconds, 100})
	}
	limits := map[string]bool{}
	for _, w := range wants {
		limits[w.Limit] = true
		t.Logf("%s on %s: %q", w.Limit, w.Plot, w.Label)
	}
	if !limits[forecast.TCPMaxOrphans] || !limits[forecast.RlimitNofile] || !limits[forecast.RlimitNproc] {
		t.Fatalf("the tracker forecast %+v; want the orphans, pid %d's fds and the user's tasks", snap.Forecasts, leakPID)
	}

	rep := doctor.Run(doctor.Input{Cur: snap}, doctor.Checks())
	src := &liveSource{snap: snap, report: &rep, journal: json.RawMessage("[]"), hist: hist,
		health: server.Health{LastCollection: now, LastDuration: 80 * time.Millisecond, Config: "fixture"}}
	srv := serve(t, context.Background(), server.Options{Source: src, History: hist})
	b, err := json.Marshal(wants)
	if err != nil {
		t.Fatal(err)
	}
	h.run(t, context.Background(), "forecast", srv.Addr().String(),
		"DASH_FORECASTS="+string(b),
		`DASH_FLAT=["tcp-mem"]`,
	)
}
