package doctor

import (
	"fmt"
	"sort"
	"time"

	"github.com/picket-guard/picket/internal/forecast"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// SocketHistory is what the socket-leak check asks of the daemon's history:
// how a process's socket count moved over a window. A History that does not
// implement it (or a nil one: `picket doctor` alone) leaves the check ok,
// saying it needs history.
type SocketHistory interface {
	// SocketGrowth is the trend of the process's total sockets over window:
	// the least-squares slope per hour, whether it rose steadily (not a
	// single jump on a flat line), and false when too little is recorded.
	SocketGrowth(pid int, start time.Time, comm string, window time.Duration) (perHour float64, rising bool, ok bool)
}

// The leak thresholds: a holder of at least leakMinSockets whose count rose
// steadily by at least leakMinPerHour over leakWindow. A leak is typically
// found by watching `ss -x | wc -l` grow between cron runs; half an hour of
// steady growth is what an admin would call a trend, and 20 sockets an hour
// is a leak that fills a 1,024-fd limit within two days.
const (
	leakMinSockets = 100
	leakMinPerHour = 20.0
	leakWindow     = 30 * time.Minute
)

// SocketLeak names processes whose socket count grows steadily (the socket
// leak that administrators hunt with ss and lsof). It needs history, so it reads
// the daemon's; one snapshot cannot tell a leak from a busy process.
type SocketLeak struct{}

func (SocketLeak) ID() string { return "socket-leak" }

func (SocketLeak) Run(in Input) Finding {
	h, ok := in.History.(SocketHistory)
	if !ok || in.History == nil {
		return Finding{
			Severity: OK,
			Title:    "socket growth needs history: run picket run, or watch picket top",
			Evidence: Evidence{{"history", false}},
			Fix:      []string{},
			Explanation: "A leak is a count that keeps growing; one look cannot see that. picket run keeps each " +
				"holder's socket counts and this check then names the processes whose count rose steadily for " +
				fmt.Sprintf("%s (at least %d sockets, %.0f more an hour).", leakWindow, leakMinSockets, leakMinPerHour),
		}
	}
	starts := map[int]time.Time{}
	for _, p := range in.Cur.Processes.List {
		starts[p.PID] = p.StartTime
	}
	type leak struct {
		pid            int
		user, comm     string
		total, fds     int
		fdLimit        int64
		perHour        float64
		hoursToFDLimit float64
		eta            string // the fitted time to the fd limit ("" when none)
	}
	var leaks []leak
	for _, hd := range in.Cur.Sockets.Processes {
		if hd.Total < leakMinSockets {
			continue
		}
		perHour, rising, ok := h.SocketGrowth(hd.PID, starts[hd.PID], hd.Comm, leakWindow)
		if !ok || !rising || perHour < leakMinPerHour {
			continue
		}
		l := leak{pid: hd.PID, user: hd.User, comm: hd.Comm, total: hd.Total, fds: hd.FDs, fdLimit: hd.FDLimit, perHour: perHour}
		if hd.FDLimit > 0 && int64(hd.FDs) < hd.FDLimit {
			l.hoursToFDLimit = float64(hd.FDLimit-int64(hd.FDs)) / perHour
		}
		// The fd forecast (the same fit exhaustion-forecast reads) counts
		// every fd, not only sockets, and is fitted on fresher looks.
		if f, ok := fdForecast(in.Cur.Forecasts, hd.PID); ok {
			l.hoursToFDLimit, l.eta = f.ETASeconds/3600, forecast.FormatETA(f.ETASeconds)
		}
		leaks = append(leaks, l)
	}
	sort.Slice(leaks, func(i, j int) bool { return leaks[i].perHour > leaks[j].perHour })
	rows := make([]Evidence, 0, len(leaks))
	for _, l := range leaks {
		rows = append(rows, Evidence{{"pid", l.pid}, {"user", l.user}, {"comm", l.comm}, {"sockets", l.total},
			{"per_hour", round1(l.perHour)}, {"fds", l.fds}, {"fd_limit", l.fdLimit}, {"hours_to_fd_limit", round1(l.hoursToFDLimit)}, {"eta", l.eta}})
	}
	ev := Evidence{{"history", true}, {"window", leakWindow.String()}, {"min_sockets", leakMinSockets},
		{"min_per_hour", leakMinPerHour}, {"leaking", rows}}
	leaking := gauge("leaking", float64(len(leaks)), 0)
	leaking.Warn = above(0)
	metrics := []Metric{leaking}
	if len(leaks) > 0 {
		metrics = append(metrics, gauge("fastest_per_hour", leaks[0].perHour, 0))
	}
	if len(leaks) == 0 {
		return Finding{Severity: OK, Evidence: ev, Fix: []string{}, Metrics: metrics,
			Title: fmt.Sprintf("no process's sockets grew steadily over the last %s", leakWindow),
			Explanation: "Every holder of " + fmt.Sprint(leakMinSockets) + " sockets or more was flat, falling or " +
				"jumping rather than climbing over the window."}
	}
	l := leaks[0]
	f := Finding{Severity: Warning, Evidence: ev, Metrics: metrics}
	f.Title = fmt.Sprintf("%s (pid %d, %s) gains %.0f sockets an hour, now %d", term.Escape(l.comm), l.pid, term.Escape(l.user), l.perHour, l.total)
	if len(leaks) > 1 {
		f.Title += fmt.Sprintf(", and %d more processes", len(leaks)-1)
	}
	f.Explanation = paragraphs(
		"A socket leak: a process opens sockets and never closes them. Each one holds a file "+
			"descriptor and kernel memory; the process fails with EMFILE at its RLIMIT_NOFILE, and on OpenVZ every "+
			"non-TCP one counts against numothersock.",
		leakETA(l.hoursToFDLimit, l.eta))
	f.Fix = []string{
		fmt.Sprintf("ls -l /proc/%d/fd | grep -c socket   # count them yourself", l.pid),
		fmt.Sprintf("ss -xp | grep 'pid=%d,'   # which unix sockets, to which peers", l.pid),
		fmt.Sprintf("picket history holder/%d --since 6h   # the growth, as picket recorded it (see picket history --list holder/)", l.pid),
		"# then restart the service and report the leak; as a stopgap, a picket rule can restart it when its sockets pass a count",
	}
	return f
}

func leakETA(hours float64, eta string) string {
	if eta != "" {
		return fmt.Sprintf("Its count rose steadily over the last %s; at its fitted trend it is out of fds (RLIMIT_NOFILE) in %s.", leakWindow, eta)
	}
	return fmt.Sprintf("Its count rose steadily over the last %s. At this rate it reaches its fd limit in %.1f hours.", leakWindow, hours)
}

// fdForecast finds the process's RLIMIT_NOFILE forecast.
func fdForecast(fs []snapshot.Forecast, pid int) (snapshot.Forecast, bool) {
	for _, f := range fs {
		if f.Limit == forecast.RlimitNofile && f.PID == pid {
			return f, true
		}
	}
	return snapshot.Forecast{}, false
}
