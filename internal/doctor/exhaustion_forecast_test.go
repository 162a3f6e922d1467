package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestExhaustionForecast(t *testing.T) {
	th := DefaultThresholds()
	pid := snapshot.Forecast{Limit: "pid_max", Used: 3000, Max: 32768, ETASeconds: 2*3600 + 10*60, RatePerSecond: 41.0 / 60, WindowSeconds: 45 * 60, Samples: 270, Quality: 0.98}
	fd := snapshot.Forecast{Limit: "RLIMIT_NOFILE", PID: 42, Comm: "leaky\x1b[2J", User: "app", Used: 400, Max: 1024, ETASeconds: 1800, RatePerSecond: 0.35, WindowSeconds: 1200}
	far := snapshot.Forecast{Limit: "file-max", Used: 90000, Max: 813957, ETASeconds: 3 * 86400, RatePerSecond: 2.5, WindowSeconds: 12 * 3600}
	for _, c := range []struct {
		name  string
		fs    []snapshot.Forecast
		sev   Severity
		title string
	}{
		{"none", nil, OK, "no limit is heading for exhaustion at its current trend"},
		{"far off", []snapshot.Forecast{far}, OK, "1 limits rising; the soonest, fs.file-max reached in ~3d0h at +2.5 files/s (fit over the last 12h), not within 24h0m0s"},
		{"pid table in two hours", []snapshot.Forecast{pid, far}, Warning, "pid table full in ~2h10m at +41 tasks/min (fit over the last 45m), and 1 more limits rising"},
		{"a holder out of fds in half an hour", []snapshot.Forecast{fd, pid}, Critical, `leaky\x1b[2J (pid 42) out of fds (RLIMIT_NOFILE) in ~30m at +21 fds/min (fit over the last 20m), and 1 more limits rising`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &snapshot.Snapshot{Forecasts: c.fs}
			f := ExhaustionForecast{}.Run(Input{Cur: s, History: fakeGrowth{}, Thresholds: th})
			if f.Severity != c.sev || f.Title != c.title {
				t.Errorf("%s %q, want %s %q", f.Severity, f.Title, c.sev, c.title)
			}
			if g := Grade(f.Metrics); g != f.Severity {
				t.Errorf("metrics grade %s: %s", g, Perfdata(f.Metrics))
			}
			for _, l := range f.Fix {
				if strings.Contains(l, "leaky") {
					t.Errorf("a fix line holds a process's name: %q", l)
				}
			}
		})
	}
	// Without picket run (no history, no forecasts) the check says what it needs.
	if f := (ExhaustionForecast{}).Run(Input{Cur: &snapshot.Snapshot{}, Thresholds: th}); f.Severity != OK || !strings.Contains(f.Title, "needs history") {
		t.Errorf("one-shot doctor: %s %q", f.Severity, f.Title)
	}
}

// socket-leak gives the fitted ETA to the fd limit when there is one.
func TestSocketLeakUsesTheForecast(t *testing.T) {
	s := &snapshot.Snapshot{Forecasts: []snapshot.Forecast{{Limit: "RLIMIT_NOFILE", PID: 42, ETASeconds: 5400, RatePerSecond: 0.1, WindowSeconds: 1800}}}
	s.Sockets.Processes = []snapshot.Holder{{PID: 42, User: "app", Comm: "leaky", SocketCounts: snapshot.SocketCounts{Unix: 400}, Total: 400, FDs: 410, FDLimit: 1024}}
	f := SocketLeak{}.Run(Input{Cur: s, History: fakeGrowth{}, Interval: time.Second})
	if !strings.Contains(f.Explanation, "out of fds (RLIMIT_NOFILE) in ~1h30m") {
		t.Errorf("explanation: %s", f.Explanation)
	}
}
