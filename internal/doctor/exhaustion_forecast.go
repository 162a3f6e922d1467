package doctor

import (
	"fmt"
	"math"

	"github.com/picket-guard/picket/internal/forecast"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// ExhaustionForecast names the limits that their trend reaches soon: the
// imapd count climbing, a holder's fds growing, orphans creeping toward
// tcp_max_orphans, hours before the freeze. It reads the forecasts picket
// run fitted (Snapshot.Forecasts; internal/forecast, docs/forecast.md):
// warning when a limit is reached within ForecastWarn (24 h), critical
// within ForecastCrit (2 h), however low usage is now.
type ExhaustionForecast struct{}

func (ExhaustionForecast) ID() string { return "exhaustion-forecast" }

func (ExhaustionForecast) Run(in Input) Finding {
	t := in.Thresholds
	if in.History == nil && len(in.Cur.Forecasts) == 0 {
		return Finding{Severity: OK,
			Title:    "forecasting needs history: run picket run, or watch picket top",
			Evidence: Evidence{{"forecasting", false}},
			Explanation: "A time to exhaustion is fitted over many looks; one look has no trend. picket run fits every " +
				"limit's recent looks and this check then names those reached within " + t.ForecastWarn.String() + "."}
	}
	var rows []Evidence
	sev := OK
	for _, f := range in.Cur.Forecasts {
		if len(rows) < t.Top {
			rows = append(rows, forecastRow(f))
		}
		switch d := f.ETASeconds; {
		case d <= t.ForecastCrit.Seconds():
			sev = worse(sev, Critical)
		case d <= t.ForecastWarn.Seconds():
			sev = worse(sev, Warning)
		}
	}
	if rows == nil {
		rows = []Evidence{}
	}
	ev := Evidence{{"forecasting", true}, {"warn_within", t.ForecastWarn.String()}, {"critical_within", t.ForecastCrit.String()},
		{"forecasts", rows}}
	n := gauge("limits_trending", float64(len(in.Cur.Forecasts)), 0)
	metrics := []Metric{n}
	if len(in.Cur.Forecasts) > 0 {
		m := gauge("soonest_eta", in.Cur.Forecasts[0].ETASeconds, 0)
		m.UOM = "s"
		m.Warn = &Range{Start: 0, End: t.ForecastWarn.Seconds(), Inside: true}
		m.Crit = &Range{Start: 0, End: t.ForecastCrit.Seconds(), Inside: true}
		metrics = append(metrics, m)
	}
	f := Finding{Severity: sev, Evidence: ev, Metrics: metrics}
	f.Explanation = "Each limit's recent looks are fitted with a robust slope over 15 minutes, 2 hours and 12 hours; " +
		"an ETA is given only for a steady rise (not a spike, a step, a sawtooth or noise) of at least 10 minutes, " +
		"above 5 % of the limit, reached within 7 days. docs/forecast.md says why."
	if len(in.Cur.Forecasts) == 0 {
		f.Title = "no limit is heading for exhaustion at its current trend"
		return f
	}
	first := in.Cur.Forecasts[0]
	if sev == OK {
		f.Title = fmt.Sprintf("%d limits rising; the soonest, %s, not within %s", len(in.Cur.Forecasts),
			ForecastPhrase(first), t.ForecastWarn)
		return f
	}
	f.Title = ForecastPhrase(first)
	if k := len(in.Cur.Forecasts) - 1; k > 0 {
		f.Title += fmt.Sprintf(", and %d more limits rising", k)
	}
	f.Explanation = paragraphs("At the trend of its recent looks, "+ForecastPhrase(first)+
		fmt.Sprintf(". It is at %s of %s now (%.0f%%).", num(first.Used), num(first.Max), percent(first.Used, first.Max)),
		f.Explanation)
	f.Fix = forecastFix(first)
	return f
}

func forecastRow(f snapshot.Forecast) Evidence {
	r := Evidence{{"limit", f.Limit}}
	if f.Cgroup != "" {
		r.Add("cgroup", f.Cgroup)
	}
	if f.PID != 0 {
		r.Add("pid", f.PID)
		r.Add("comm", f.Comm)
	}
	if f.User != "" {
		r.Add("user", f.User)
	}
	if f.Resource != "" {
		r.Add("uid", f.UID)
		r.Add("resource", f.Resource)
	}
	r.Add("used", f.Used)
	r.Add("max", f.Max)
	r.Add("eta_seconds", f.ETASeconds)
	r.Add("eta", forecast.FormatETA(f.ETASeconds))
	r.Add("per_minute", math.Round(f.RatePerSecond*600)/10)
	r.Add("window_seconds", f.WindowSeconds)
	r.Add("quality", f.Quality)
	r.Add("reset", f.Reset)
	return r
}

// ForecastPhrase says a forecast in a sentence: "pid table full in ~2h10m
// at +41 tasks/min (fit over the last 45m)". Names others chose are
// escaped.
func ForecastPhrase(f snapshot.Forecast) string {
	what, unit := forecastWhat(f)
	return fmt.Sprintf("%s in %s at %s (fit over the last %s)", what, forecast.FormatETA(f.ETASeconds),
		forecast.FormatRate(f.RatePerSecond, unit), forecast.FormatSpan(f.WindowSeconds))
}

func forecastWhat(f snapshot.Forecast) (what, unit string) {
	switch f.Limit {
	case forecast.PidMax:
		return "pid table full", "tasks"
	case forecast.ThreadsMax:
		return "threads-max reached", "tasks"
	case forecast.FileMax:
		return "fs.file-max reached", "files"
	case forecast.TCPMaxOrphans:
		return "orphan resets (a quarter of tcp_max_orphans)", "orphans"
	case forecast.TCPMem:
		return "tcp_mem's high mark reached", "pages"
	case forecast.NfConntrackMax:
		return "conntrack table full", "entries"
	case forecast.Beancounter:
		return fmt.Sprintf("beancounter %s of %s at its barrier", term.Escape(f.Resource), term.Escape(f.UID)), "units"
	case forecast.PidsMax:
		return fmt.Sprintf("cgroup %s at pids.max", term.Escape(f.Cgroup)), "tasks"
	case forecast.MemoryMax:
		return fmt.Sprintf("cgroup %s at memory.max", term.Escape(f.Cgroup)), "bytes"
	case forecast.RlimitNofile:
		return fmt.Sprintf("%s (pid %d) out of fds (RLIMIT_NOFILE)", term.Escape(f.Comm), f.PID), "fds"
	case forecast.RlimitNproc:
		return fmt.Sprintf("user %s at RLIMIT_NPROC", term.Escape(f.User)), "tasks"
	}
	return term.Escape(f.Limit) + " reached", "units"
}

func forecastFix(f snapshot.Forecast) []string {
	fix := []string{"picket top   # every limit with its ETA"}
	switch f.Limit {
	case forecast.PidMax, forecast.ThreadsMax, forecast.PidsMax, forecast.RlimitNproc:
		fix = append(fix, "ps -eLo user=,comm= | sort | uniq -c | sort -rn | head   # who holds the tasks")
	case forecast.FileMax:
		fix = append(fix, "sysctl fs.file-nr", "picket doctor --check fd-exhaustion")
	case forecast.RlimitNofile:
		fix = append(fix, fmt.Sprintf("ls /proc/%d/fd | wc -l   # its fds now", f.PID),
			fmt.Sprintf("picket history holder/%d --since 2h   # how they grew", f.PID))
	case forecast.TCPMaxOrphans, forecast.TCPMem:
		fix = append(fix, "picket doctor --check tcp-orphans")
	case forecast.NfConntrackMax:
		fix = append(fix, "picket doctor --check conntrack")
	case forecast.MemoryMax:
		fix = append(fix, "picket doctor --check cgroup-limits")
	}
	return append(fix, "# then find what grows and stop it; raising the limit buys the time the ETA says, no more")
}

// num writes a count without a fraction.
func num(x float64) string { return fmt.Sprintf("%.0f", x) }
