package doctor

import (
	"fmt"
	"strings"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// OtherSockets lists who holds the sockets that are not TCP: unix, UDP,
// raw, netlink, packet. It is what an administrator of a frozen V-Server had to
// reconstruct with `netstat -p | wc -l`, `ss -xap` and `lsof -U`: OpenVZ's
// numothersock counts exactly these, and on any host a process leaking them
// runs into its RLIMIT_NOFILE. The top holders are always in the evidence;
// the verdict is a warning when one process holds an outsized share (at
// least HolderMinSockets and HolderMinPercent of all) or is near its own fd
// limit.
type OtherSockets struct{}

func (OtherSockets) ID() string { return "other-sockets" }

func (OtherSockets) Run(in Input) Finding {
	s := in.Cur
	t := in.Thresholds
	if s.Processes.Total == 0 {
		return unknownFinding("no process scan: socket holders unknown",
			"The processes under /proc could not be read, so no socket can be attributed to one.", Evidence{})
	}
	tot := s.Sockets.Totals
	nonTCP := tot.NonTCP()
	top := topHolders(s.Sockets.Processes, t.Top, func(h snapshot.Holder) int { return h.NonTCP() })
	rows := HolderRows{}
	for _, h := range top {
		rows = append(rows, holderRow(h, nonTCP))
	}
	flagged := HolderRows{}
	var reasons []string
	// outsized is the check's rule for one holder; the most a holder has
	// and the fullest fd table among them are what it grades.
	outsizedAt := func(n int) bool { return n >= t.HolderMinSockets && share(n, nonTCP) >= t.HolderMinPercent }
	most, fullest, limited := 0, 0.0, 0
	for _, h := range s.Sockets.Processes {
		n := h.NonTCP()
		if n == 0 {
			continue
		}
		most = max(most, n)
		pct := percent(float64(n), float64(nonTCP))
		outsized := outsizedAt(n)
		nearLimit := false
		if h.FDLimit > 0 && h.FDs >= 0 {
			limited++
			fullest = max(fullest, share(int64(h.FDs), h.FDLimit))
			nearLimit = share(int64(h.FDs), h.FDLimit) >= t.LimitWarnPercent
		}
		if !outsized && !nearLimit {
			continue
		}
		flagged = append(flagged, holderRow(h, nonTCP))
		who := fmt.Sprintf("pid %d (%s, user %s)", h.PID, term.Escape(h.Comm), term.Escape(h.User))
		if outsized {
			reasons = append(reasons, fmt.Sprintf("%s holds %d non-TCP sockets, %.1f%% of all %d", who, n, pct, nonTCP))
		}
		if nearLimit {
			reasons = append(reasons, fmt.Sprintf("%s has %d of its %d fds open (%.1f%%), %d of them non-TCP sockets",
				who, h.FDs, h.FDLimit, percent(float64(h.FDs), float64(h.FDLimit)), n))
		}
	}

	ev := Evidence{}
	ev.Add("non_tcp_total", nonTCP)
	ev.Add("unix", tot.Unix)
	ev.Add("udp", tot.UDP)
	ev.Add("raw", tot.Raw)
	ev.Add("netlink", tot.Netlink)
	ev.Add("packet", tot.Packet)
	ev.Add("other", tot.Other)
	ev.Add("tcp", tot.TCP)
	ev.Add("network_namespaces", s.Sockets.Namespaces)
	ev.Add("holders", len(s.Sockets.Processes))
	ev.Add("top_holders", rows)
	ev.Add("by_group", holderGroups(s, s.Sockets.Processes, min(t.Top, 5)))
	ev.Add("flagged", flagged)
	ev.Add("processes_unreadable", s.Processes.FDUnreadable)

	mostM := gauge("top_holder_non_tcp", float64(most), float64(nonTCP))
	if nonTCP > 0 {
		mostM.Warn = countAtLeast(max(float64(t.HolderMinSockets), t.HolderMinPercent*float64(nonTCP)/100), func(n int64) bool { return outsizedAt(int(n)) })
	}
	fds := percentMetric("holder_fd_percent", fullest)
	if limited > 0 {
		fds.Warn = atLeast(t.LimitWarnPercent)
	}
	f := Finding{Evidence: ev, Metrics: []Metric{
		mostM, fds,
		gauge("non_tcp", float64(nonTCP), 0),
		gauge("unix", float64(tot.Unix), 0),
		gauge("udp", float64(tot.UDP), 0),
		gauge("raw", float64(tot.Raw), 0),
		gauge("netlink", float64(tot.Netlink), 0),
		gauge("packet", float64(tot.Packet), 0),
		gauge("other", float64(tot.Other), 0),
		gauge("tcp", float64(tot.TCP), 0),
		gauge("holders", float64(len(s.Sockets.Processes)), 0),
	}}
	if len(flagged) > 0 {
		f.Severity = Warning
		h := flagged[0]
		f.Title = fmt.Sprintf("pid %d (%s) holds %d non-TCP sockets (%d unix, %d udp) of %d", h.PID, term.Escape(h.Comm), h.NonTCP, h.Unix, h.UDP, nonTCP)
		if len(flagged) > 1 {
			f.Title += fmt.Sprintf(", and %d more processes", len(flagged)-1)
		}
	} else {
		f.Severity = OK
		f.Title = fmt.Sprintf("%d non-TCP sockets (%d unix, %d udp, %d netlink, %d raw, %d other)", nonTCP, tot.Unix, tot.UDP, tot.Netlink, tot.Raw, tot.Packet+tot.Other)
		if len(rows) > 0 {
			f.Title += fmt.Sprintf("; most held by pid %d (%s): %d", rows[0].PID, term.Escape(rows[0].Comm), rows[0].NonTCP)
		}
	}
	what := "Every socket that is not TCP is one of these: unix sockets for local IPC (a service and its workers, " +
		"databases, D-Bus, syslog), UDP (DNS lookups, syslog, NTP), netlink (talking to the kernel), raw and packet sockets. " +
		"Each is an open file of the process holding it, so it counts against that process's RLIMIT_NOFILE, and in an " +
		"OpenVZ container all of them together count against numothersock. A process holding thousands " +
		"usually leaks them: a client that opens a connection per request and never closes it."
	var now string
	if len(reasons) > 0 {
		now = "Here " + strings.Join(reasons, "; ") + "."
	} else {
		now = fmt.Sprintf("Here no process holds at least %d non-TCP sockets and %.0f%% of them, and none is at %.0f%% of its fd limit.",
			t.HolderMinSockets, t.HolderMinPercent, t.LimitWarnPercent)
	}
	var note string
	if s.Processes.FDUnreadable > 0 {
		note = fmt.Sprintf("The fds of %d processes could not be read (run picket as root): their sockets are in the totals but not "+
			"attributed to a holder.", s.Processes.FDUnreadable)
	}
	f.Explanation = paragraphs(what, now, note)
	if f.Severity == OK {
		return f
	}
	var comms []string
	for _, h := range flagged {
		if len(f.Fix) >= 6 {
			break
		}
		comms = append(comms, h.Comm)
		f.Fix = append(f.Fix,
			fmt.Sprintf("ss -xp | grep -F 'pid=%d,' | head   # its unix sockets and their peers", h.PID),
			fmt.Sprintf("ss -uap | grep -F 'pid=%d,' | head  # its udp sockets", h.PID),
			fmt.Sprintf("prlimit --pid %d --nofile               # its fd limit", h.PID))
	}
	f.Fix = append(f.Fix, "# a leak grows: run picket doctor again in a minute and compare the counts")
	f.Fix = append(f.Fix, serviceFix(comms...)...)
	return f
}
