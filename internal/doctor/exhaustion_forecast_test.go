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

// Each limit is named in the administrator's words, with its unit, and the
// fix points at the tool that shows who holds it; names others chose are
// escaped.
func TestForecastNamesEachLimit(t *testing.T) {
	th := DefaultThresholds()
	const ps = "ps -eLo user=,comm= | sort | uniq -c | sort -rn | head   # who holds the tasks"
	for _, c := range []struct {
		f      snapshot.Forecast
		phrase string
		fix    []string // between "picket top" and the closing advice
	}{
		{snapshot.Forecast{Limit: "pid_max"}, "pid table full in ~30m at +6.0 tasks/min", []string{ps}},
		{snapshot.Forecast{Limit: "threads-max"}, "threads-max reached in ~30m at +6.0 tasks/min", []string{ps}},
		{snapshot.Forecast{Limit: "file-max"}, "fs.file-max reached in ~30m at +6.0 files/min", []string{"sysctl fs.file-nr", "picket doctor --check fd-exhaustion"}},
		{snapshot.Forecast{Limit: "tcp_max_orphans"}, "orphan resets (a quarter of tcp_max_orphans) in ~30m at +6.0 orphans/min", []string{"picket doctor --check tcp-orphans"}},
		{snapshot.Forecast{Limit: "tcp_mem"}, "tcp_mem's high mark reached in ~30m at +6.0 pages/min", []string{"picket doctor --check tcp-orphans"}},
		{snapshot.Forecast{Limit: "nf_conntrack_max"}, "conntrack table full in ~30m at +6.0 entries/min", []string{"picket doctor --check conntrack"}},
		{snapshot.Forecast{Limit: "beancounter", UID: "101", Resource: "numproc\x1b"}, `beancounter numproc\x1b of 101 at its barrier in ~30m at +6.0 units/min`, nil},
		{snapshot.Forecast{Limit: "pids.max", Cgroup: "/system.slice/php\x1b.service"}, `cgroup /system.slice/php\x1b.service at pids.max in ~30m at +6.0 tasks/min`, []string{ps}},
		{snapshot.Forecast{Limit: "memory.max", Cgroup: "/system.slice/php.service"}, "cgroup /system.slice/php.service at memory.max in ~30m at +6.0 bytes/min", []string{"picket doctor --check cgroup-limits"}},
		{snapshot.Forecast{Limit: "RLIMIT_NOFILE", PID: 42, Comm: "leaky"}, "leaky (pid 42) out of fds (RLIMIT_NOFILE) in ~30m at +6.0 fds/min",
			[]string{"ls /proc/42/fd | wc -l   # its fds now", "picket history holder/42 --since 2h   # how they grew"}},
		{snapshot.Forecast{Limit: "RLIMIT_NPROC", User: "alice\x1b"}, `user alice\x1b at RLIMIT_NPROC in ~30m at +6.0 tasks/min`, []string{ps}},
		{snapshot.Forecast{Limit: "future\x1b"}, `future\x1b reached in ~30m at +6.0 units/min`, nil},
	} {
		t.Run(c.f.Limit, func(t *testing.T) {
			c.f.ETASeconds, c.f.RatePerSecond, c.f.WindowSeconds, c.f.Used, c.f.Max = 1800, 0.1, 1200, 100, 1000
			f := ExhaustionForecast{}.Run(Input{Cur: &snapshot.Snapshot{Forecasts: []snapshot.Forecast{c.f}}, History: fakeGrowth{}, Thresholds: th})
			if want := c.phrase + " (fit over the last 20m)"; f.Title != want {
				t.Errorf("title %q, want %q", f.Title, want)
			}
			if f.Severity != Critical {
				t.Errorf("severity %s, want critical (30 minutes away)", f.Severity)
			}
			want := append(append([]string{"picket top   # every limit with its ETA"}, c.fix...),
				"# then find what grows and stop it; raising the limit buys the time the ETA says, no more")
			if strings.Join(f.Fix, "\n") != strings.Join(want, "\n") {
				t.Errorf("fix:\n%s\nwant:\n%s", strings.Join(f.Fix, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// "Within" includes the edge: a limit exactly ForecastCrit away is
// critical, exactly ForecastWarn away a warning, a second later neither.
func TestForecastEdges(t *testing.T) {
	th := DefaultThresholds()
	for _, c := range []struct {
		eta float64
		sev Severity
	}{
		{th.ForecastCrit.Seconds(), Critical},
		{th.ForecastCrit.Seconds() + 1, Warning},
		{th.ForecastWarn.Seconds(), Warning},
		{th.ForecastWarn.Seconds() + 1, OK},
	} {
		fc := snapshot.Forecast{Limit: "pid_max", Used: 100, Max: 32768, ETASeconds: c.eta, RatePerSecond: 1, WindowSeconds: 1200}
		f := ExhaustionForecast{}.Run(Input{Cur: &snapshot.Snapshot{Forecasts: []snapshot.Forecast{fc}}, History: fakeGrowth{}, Thresholds: th})
		if f.Severity != c.sev {
			t.Errorf("ETA %vs: %s, want %s", c.eta, f.Severity, c.sev)
		}
	}
}
