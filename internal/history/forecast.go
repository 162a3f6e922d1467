package history

import (
	"strconv"
	"time"

	"github.com/picket-guard/picket/internal/forecast"
)

// PastStep is the resolution LimitSamples reads at, PastSpan how far back:
// two hours in 240 steps, enough for the forecast's 15-minute and 2-hour
// windows after a restart (the 12-hour one fills from the looks).
const (
	PastStep = 30 * time.Second
	PastSpan = 2 * time.Hour
)

// LimitSamples is a limit's recorded past, for forecast.Tracker.Seed: the
// used series in steps of PastStep over PastSpan before now, each with the
// limit recorded at the time (the current one where the limit is not
// kept, as for rlimits and cgroups). Nil when the store has no such series.
func (s *Store) LimitSamples(l forecast.Limit, now time.Time) []forecast.Sample {
	used, limit, scale := limitSeries(l)
	if used == "" {
		return nil
	}
	pts, err := s.Query(used, now.Add(-PastSpan), now, PastStep)
	if err != nil || len(pts) == 0 {
		return nil
	}
	var lims []Point
	if limit != "" {
		lims, _ = s.Query(limit, now.Add(-PastSpan), now, PastStep)
	}
	out := make([]forecast.Sample, 0, len(pts))
	j := 0
	for _, p := range pts {
		max := l.Max
		for j < len(lims) && !lims[j].Time.After(p.Time) {
			j++
		}
		if j > 0 {
			max = lims[j-1].Value * scale
		}
		out = append(out, forecast.Sample{Time: p.Time, Used: p.Value, Limit: max})
	}
	return out
}

// LimitSeries names the series of what is used against a limit, the one
// LimitSamples reads (empty where none is kept): forecast.Options.Series,
// so a forecast names the series the dashboard draws its projection on.
func LimitSeries(l forecast.Limit) string {
	used, _, _ := limitSeries(l)
	return used
}

// limitSeries names the series behind a limit: what is used, the limit
// where it is kept, and what the limit is multiplied by (tcp_max_orphans
// bites at a quarter).
func limitSeries(l forecast.Limit) (used, limit string, scale float64) {
	f := l.Forecast
	switch f.Limit {
	case forecast.PidMax:
		return "processes.threads", "kernel.pid_max", 1
	case forecast.ThreadsMax:
		return "processes.threads", "kernel.threads_max", 1
	case forecast.FileMax:
		return "kernel.file_nr.allocated", "kernel.file_nr.max", 1
	case forecast.TCPMaxOrphans:
		return SeriesOrphans, "kernel.tcp_max_orphans", 0.25
	case forecast.TCPMem:
		return "kernel.sockstat.tcp.mem_pages", "kernel.tcp_mem_pages.high", 1
	case forecast.NfConntrackMax:
		return "kernel.conntrack.count", "kernel.conntrack.max", 1
	case forecast.Beancounter:
		p := "beancounter." + f.UID + "." + f.Resource
		return p + ".held", p + ".barrier", 1
	case forecast.PidsMax:
		return CgroupSeries(f.Cgroup, "pids"), "", 1
	case forecast.MemoryMax:
		return CgroupSeries(f.Cgroup, "working_set"), "", 1
	case forecast.RlimitNofile:
		if l.Start.IsZero() {
			return "", "", 0
		}
		return HolderSeries(f.PID, l.Start, f.Comm, "fds"), "", 1
	case forecast.RlimitNproc:
		uid, _ := strconv.ParseUint(f.UID, 10, 32)
		return UserSeries(f.User, uint32(uid), "threads"), "", 1
	}
	return "", "", 0
}
