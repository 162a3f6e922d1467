package snapshot

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/picket-guard/picket/internal/term"
)

// SummaryOptions shape WriteSummary.
type SummaryOptions struct {
	Top int // rows per table (default 10)
}

// WriteSummary prints the compact human view of a snapshot: the limits as
// used/limit with percent, the top user × command groups and the top socket
// holders. Every name a process chose goes through term.Escape.
func WriteSummary(w io.Writer, s *Snapshot, o SummaryOptions) error {
	if o.Top <= 0 {
		o.Top = 10
	}
	ew := term.NewPrinter(w)
	ew.Printf("picket snapshot of %s at %s (%d processes, %d threads, %d sockets; took %.0f ms)\n",
		term.Escape(s.Host), s.Time.Format("2006-01-02 15:04:05Z07:00"),
		s.Processes.Total, s.Processes.Threads, s.Sockets.Totals.Sum(), s.DurationSeconds*1000)
	if s.Root != "" {
		ew.Printf("read from %s\n", term.Escape(s.Root))
	}

	ew.Printf("\nLIMITS\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for _, l := range Limits(s) {
		if l.Beancounter && l.Percent() < 80 && l.Failcnt == 0 {
			continue // the beancounters section below has the rest
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", l.Name, l.usedText(), l.limitText(), l.percentText())
	}
	tw.Flush()
	writeForecasts(ew, s, o.Top)

	writeCgroups(ew, s, o.Top)

	ew.Printf("\nSOCKETS  tcp %d  udp %d  unix %d  raw %d  netlink %d  packet %d  other %d",
		s.Sockets.Totals.TCP, s.Sockets.Totals.UDP, s.Sockets.Totals.Unix, s.Sockets.Totals.Raw,
		s.Sockets.Totals.Netlink, s.Sockets.Totals.Packet, s.Sockets.Totals.Other)
	if s.Sockets.Namespaces > 1 {
		ew.Printf("  (%d network namespaces)", s.Sockets.Namespaces)
	}
	ew.Printf("\n")
	if len(s.Sockets.TCPStates) > 0 {
		var parts []string
		for _, st := range tcpStateOrder {
			if n := s.Sockets.TCPStates[st]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", st, n))
			}
		}
		ew.Printf("  tcp states: %s\n", strings.Join(parts, ", "))
	}

	ew.Printf("\nTOP USER × COMMAND (%d groups)\n", len(s.Processes.Groups))
	ew.Printf("  %6s %7s %10s  %-16s %s\n", "COUNT", "THREADS", "RSS", "USER", "COMMAND")
	for i, g := range s.Processes.Groups {
		if i >= o.Top {
			break
		}
		ew.Printf("  %6d %7d %10s  %-16s %s\n", g.Count, g.Threads, HumanBytes(g.RSSBytes),
			term.Truncate(term.Escape(g.User), 16), term.Truncate(term.Escape(g.Comm), 40))
	}

	if len(s.Processes.Units) > 0 {
		ew.Printf("\nTOP UNITS (%d units)\n", len(s.Processes.Units))
		ew.Printf("  %9s %7s %7s %7s %10s  %s\n", "PROCESSES", "THREADS", "FDS", "SOCKETS", "RSS", "UNIT")
		for i, u := range s.Processes.Units {
			if i >= o.Top {
				break
			}
			ew.Printf("  %9d %7d %7d %7d %10s  %s\n", u.Processes, u.Threads, u.FDs, u.Sockets, HumanBytes(u.RSSBytes),
				term.TruncateLeft(term.Escape(u.Unit), 50))
		}
	}

	ew.Printf("\nTOP SOCKET HOLDERS (%d processes)\n", len(s.Sockets.Processes))
	ew.Printf("  %7s %6s %6s %6s %6s %5s %7s %6s %13s  %-16s %s\n", "PID", "TOTAL", "TCP", "UDP", "UNIX", "RAW", "NETLINK", "OTHER", "FDS/LIMIT", "USER", "COMMAND")
	for i, h := range s.Sockets.Processes {
		if i >= o.Top {
			break
		}
		fds := fmt.Sprint(h.FDs)
		if h.FDLimit > 0 {
			fds = fmt.Sprintf("%d/%d", h.FDs, h.FDLimit)
		}
		ew.Printf("  %7d %6d %6d %6d %6d %5d %7d %6d %13s  %-16s %s\n", h.PID, h.Total, h.TCP, h.UDP, h.Unix, h.Raw,
			h.Netlink, h.Packet+h.Other, fds, term.Truncate(term.Escape(h.User), 16), term.Truncate(term.Escape(h.Comm), 40))
	}
	if s.Processes.FDUnreadable > 0 {
		ew.Printf("  (%d processes' fds unreadable: run as root to attribute their sockets)\n", s.Processes.FDUnreadable)
	}

	if m := s.Memory; m.MemTotalBytes > 0 {
		switch m.MemAvailableSource {
		case "":
			ew.Printf("\nMEMORY  available %s of %s", HumanBytes(m.MemAvailableBytes), HumanBytes(m.MemTotalBytes))
		case MemAvailableUnknown:
			ew.Printf("\nMEMORY  available unknown (no MemAvailable, nor the counters to estimate it) of %s", HumanBytes(m.MemTotalBytes))
		default:
			ew.Printf("\nMEMORY  available %s of %s (%s: no MemAvailable before Linux 3.14)", HumanBytes(m.MemAvailableBytes),
				HumanBytes(m.MemTotalBytes), m.MemAvailableSource)
		}
		if m.SwapTotalBytes > 0 {
			ew.Printf("  swap used %s of %s", HumanBytes(m.SwapTotalBytes-m.SwapFreeBytes), HumanBytes(m.SwapTotalBytes))
		}
		if p, ok := m.PSI["memory"]; ok {
			ew.Printf("  psi some %.2f%% full %.2f%% (avg10)", p.SomeAvg10, p.FullAvg10)
		}
		ew.Printf("\n")
	}
	if n := len(s.Beancounters); n > 0 {
		ew.Printf("\nBEANCOUNTERS (%d rows; those with failcnt > 0: allocations refused)\n", n)
		for _, b := range s.Beancounters {
			if b.Failcnt > 0 {
				ew.Printf("  %s %s held %d barrier %d limit %d failcnt %d\n", term.Escape(b.UID), term.Escape(b.Resource), b.Held, b.Barrier, b.Limit, b.Failcnt)
			}
		}
	}
	for _, e := range s.Errors {
		ew.Printf("error: %s\n", term.Escape(e))
	}
	return ew.Err()
}

// writeCgroups prints the cgroups at 80 % of a limit or with refusals:
// systemd's "Tasks: 498 (limit: 512)" for every unit at once.
func writeCgroups(ew *term.Printer, s *Snapshot, top int) {
	limited := 0
	for i := range s.Cgroups {
		if s.Cgroups[i].Limited() {
			limited++
		}
	}
	if limited == 0 {
		return
	}
	near := NearLimit(s.Cgroups, 80, top)
	ew.Printf("\nCGROUPS NEAR A LIMIT (%d of %d cgroups with a limit", len(near), limited)
	if l := s.CgroupLayout; l != nil && l.Partial {
		ew.Printf("; a light look: only those")
	}
	ew.Printf(")\n")
	if len(near) == 0 {
		ew.Printf("  none at 80%% of pids.max or memory.max, none refused anything\n")
		return
	}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", "TASKS/MAX", "MEMORY/MAX", "REFUSED", "UNIT", "CGROUP")
	for _, c := range near {
		tasks, mem := "-", "-"
		if p, ok := c.PidsPercent(); ok {
			tasks = fmt.Sprintf("%d/%d %.0f%%", *c.PidsCurrent, *c.PidsMax, p)
		}
		if p, ok := c.MemoryPercent(); ok {
			lim := c.MemoryMax
			if lim == nil {
				lim = c.MemoryHigh
			}
			mem = fmt.Sprintf("%s/%s %.0f%%", HumanBytes(c.WorkingSet()), HumanBytes(*lim), p)
		}
		var ref []string
		forks, ooms, failcnt := c.Refusals()
		if forks > 0 {
			ref = append(ref, fmt.Sprintf("%d forks", forks))
		}
		if ooms > 0 {
			ref = append(ref, fmt.Sprintf("%d oom kills", ooms))
		}
		if failcnt > 0 {
			ref = append(ref, fmt.Sprintf("failcnt %d", failcnt))
		}
		if len(ref) == 0 {
			ref = append(ref, "-")
		}
		unit := c.Unit
		if unit == "" {
			unit = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", tasks, mem, strings.Join(ref, ", "),
			term.TruncateLeft(term.Escape(unit), 40), term.TruncateLeft(term.Escape(c.Path), 60))
	}
	tw.Flush()
}

var tcpStateOrder = []string{"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV", "BOUND_INACTIVE"}

// Limit is one kernel limit beside its usage.
type Limit struct {
	Name  string
	Used  int64
	Max   int64 // 0: unknown
	Unit  string
	Bytes int64 // bytes per unit, for pages
	// Beancounter rows carry their failcnt: allocations already refused.
	Beancounter bool
	Failcnt     uint64
}

func (l Limit) usedText() string {
	if l.Bytes > 0 {
		return fmt.Sprintf("%d %s (%s)", l.Used, l.Unit, HumanBytes(uint64(l.Used*l.Bytes)))
	}
	return fmt.Sprintf("%d", l.Used)
}

func (l Limit) limitText() string {
	if l.Max <= 0 {
		return "/ ?"
	}
	if l.Bytes > 0 {
		return fmt.Sprintf("/ %d (%s)", l.Max, HumanBytes(uint64(l.Max*l.Bytes)))
	}
	return fmt.Sprintf("/ %d", l.Max)
}

func (l Limit) percentText() string {
	if l.Max <= 0 {
		return ""
	}
	return fmt.Sprintf("%5.1f%%", l.Percent())
}

// Percent is used/max × 100, 0 when the limit is unknown.
func (l Limit) Percent() float64 {
	if l.Max <= 0 {
		return 0
	}
	return float64(l.Used) * 100 / float64(l.Max)
}

// Limits lists each kernel limit the snapshot knows with its usage, in the
// order an administrator reads them.
func Limits(s *Snapshot) []Limit {
	k := s.Kernel
	var out []Limit
	if k.Sockstat != nil {
		out = append(out, Limit{Name: "tcp orphans (tcp_max_orphans)", Used: int64(k.Sockstat.TCP.Orphan), Max: k.TCPMaxOrphans})
		if len(k.TCPMemPages) == 3 {
			out = append(out, Limit{Name: "tcp memory (tcp_mem[2])", Used: int64(k.Sockstat.TCP.MemPages), Max: k.TCPMemPages[2], Unit: "pages", Bytes: int64(k.PageSize)})
		}
	}
	if k.FileNr != nil {
		out = append(out, Limit{Name: "open files (file-max)", Used: k.FileNr.Allocated, Max: k.FileNr.Max})
	}
	if k.PidMax > 0 {
		out = append(out, Limit{Name: "processes (pid_max)", Used: int64(s.Processes.Total), Max: k.PidMax})
	}
	if k.ThreadsMax > 0 {
		out = append(out, Limit{Name: "threads (threads-max)", Used: int64(s.Processes.Threads), Max: k.ThreadsMax})
	}
	if k.Conntrack != nil {
		out = append(out, Limit{Name: "conntrack (nf_conntrack_max)", Used: k.Conntrack.Count, Max: k.Conntrack.Max})
	}
	for _, b := range s.Beancounters {
		// vmguarpages and oomguarpages are guarantees, not limits: held above
		// the barrier is the container's right, not a shortage.
		if b.Held == 0 && b.Failcnt == 0 || b.Barrier == 0 || b.Barrier >= 1<<62 ||
			b.Resource == "oomguarpages" || b.Resource == "vmguarpages" {
			continue
		}
		out = append(out, Limit{Name: fmt.Sprintf("beancounter %s %s", term.Escape(b.UID), term.Escape(b.Resource)), Used: int64(b.Held), Max: int64(b.Barrier), Beancounter: true, Failcnt: b.Failcnt})
	}
	return out
}

// HumanBytes prints a byte count with a binary unit.
func HumanBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// writeForecasts prints the limits heading for exhaustion at their trend
// (from picket run's history), soonest first.
func writeForecasts(ew *term.Printer, s *Snapshot, top int) {
	if len(s.Forecasts) == 0 {
		return
	}
	ew.Printf("\nFORECASTS (time to exhaustion at the current trend)\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for i, f := range s.Forecasts {
		if i >= top {
			break
		}
		what := f.Limit
		switch {
		case f.Cgroup != "":
			what += " " + term.Escape(f.Cgroup)
		case f.PID != 0:
			what += fmt.Sprintf(" pid %d (%s)", f.PID, term.Escape(f.Comm))
		case f.Resource != "":
			what += " " + term.Escape(f.UID) + " " + term.Escape(f.Resource)
		case f.User != "":
			what += " " + term.Escape(f.User)
		}
		eta := (time.Duration(f.ETASeconds) * time.Second).Round(time.Minute)
		if f.ETASeconds < 120 {
			eta = time.Duration(f.ETASeconds) * time.Second
		}
		fmt.Fprintf(tw, "  %s\t%.0f/%.0f\tfull in %s\t%+.3g/min\tfit over %s\n", what, f.Used, f.Max, eta,
			f.RatePerSecond*60, (time.Duration(f.WindowSeconds) * time.Second).Round(time.Second))
	}
	tw.Flush()
}
