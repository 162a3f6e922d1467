package doctor

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// Beancounters reads OpenVZ/Virtuozzo's /proc/user_beancounters (the frozen
// V-Server of docs/stories.md: numothersock hit its barrier of 400). Each
// row is a resource the container is charged for; failcnt counts the
// charges the kernel refused. A failcnt above 0 is critical, a row held at
// 90 % of its barrier a warning. Outside OpenVZ the file does not exist and
// there is no such limit to hit: that is ok, not unknown, or every plain
// host would page its administrator with "unknown" forever.
type Beancounters struct{}

func (Beancounters) ID() string { return "beancounters" }

// unlimitedBarrier: OpenVZ prints LONG_MAX (9223372036854775807) for "no
// limit"; 32-bit kernels print 2147483647.
func unlimitedBarrier(v uint64) bool { return v >= 1<<62 || v == 1<<31-1 }

// beancounterMeaning says what a resource counts and what fails at its
// barrier, for the resources hosts are known to run out of; the rest get a
// generic line.
var beancounterMeaning = map[string]string{
	"numothersock": "numothersock counts the container's sockets that are not TCP: unix sockets (local IPC, such as Postfix's master " +
		"talking to its smtpd and cleanup children, PHP-FPM and MySQL sockets), UDP (every DNS lookup), netlink and raw. At the barrier " +
		"socket() and socketpair() fail with ENOMEM: programs hang or log \"cannot allocate memory\", MySQL dies, and a busy " +
		"container freezes.",
	"numtcpsock": "numtcpsock counts the container's TCP sockets, listening and connected. At the barrier socket() fails: new " +
		"connections in and out are refused.",
	"numproc": "numproc counts the container's processes and threads. At the barrier fork(), clone() and pthread_create() fail " +
		"with EAGAIN: daemons stop spawning workers and logins fail.",
	"numfile": "numfile counts the container's open files (sockets included). At the barrier open() and socket() fail with ENFILE.",
	"kmemsize": "kmemsize is the kernel memory charged to the container (process structures, socket buffers' bookkeeping, dentries); " +
		"at the barrier the kernel refuses it and almost anything may fail.",
	"privvmpages": "privvmpages is the memory the container's processes have allocated (not necessarily used); at the barrier " +
		"malloc() and mmap() fail.",
	"othersockbuf": "othersockbuf is the buffer memory of non-TCP sockets; at the barrier sends on unix and UDP sockets block or fail.",
	"tcpsndbuf":    "tcpsndbuf is the send buffer memory of TCP sockets; at the barrier sends stall.",
	"tcprcvbuf":    "tcprcvbuf is the receive buffer memory of TCP sockets; at the barrier receives stall.",
	"numiptent":    "numiptent counts the container's iptables rules; at the barrier new rules are refused.",
}

func (Beancounters) Run(in Input) Finding {
	s := in.Cur
	if e, ok := s.SourceError(snapshot.SourceBeancounters); ok {
		return unknownFinding("/proc/user_beancounters not readable",
			"The file exists but could not be read or parsed: "+term.Escape(e), Evidence{{"present", true}})
	}
	if len(s.Beancounters) == 0 {
		return Finding{
			Severity:    OK,
			Title:       "no beancounters: not an OpenVZ/Virtuozzo container",
			Evidence:    Evidence{{"present", false}},
			Explanation: "There is no /proc/user_beancounters, so this kernel charges no per-container beancounters and none can run out. The host's own limits are the other checks.",
		}
	}
	t := in.Thresholds
	prevFail := map[string]uint64{}
	if in.Prev != nil {
		for _, b := range in.Prev.Beancounters {
			prevFail[b.UID+"\x00"+b.Resource] = b.Failcnt
		}
	}
	rows := BeancounterRows{}
	sev := OK
	containers := map[string]bool{}
	refused := map[string]bool{}
	for _, b := range s.Beancounters {
		containers[b.UID] = true
	}
	var (
		heldMetrics []Metric
		fullest     float64 // the highest share of its barrier a limit row holds
		limits      int     // rows with a barrier that is a limit
		failures    uint64  // failcnt over every row
	)
	for _, b := range s.Beancounters {
		if b.Resource == "dummy" {
			continue
		}
		limited := b.Barrier > 0 && !unlimitedBarrier(b.Barrier)
		pct, exact := 0.0, 0.0
		if limited {
			pct, exact = percent(float64(b.Held), float64(b.Barrier)), share(b.Held, b.Barrier)
		}
		// vmguarpages and oomguarpages are guarantees, not limits: held
		// above the barrier is the container's right, not a shortage.
		guarantee := b.Resource == "vmguarpages" || b.Resource == "oomguarpages"
		near := !guarantee && limited && exact >= t.BeancounterWarnPercent
		label := b.Resource
		if len(containers) > 1 {
			label = b.UID + "/" + b.Resource
		}
		m := Metric{Label: label, Value: float64(b.Held), Min: bound(0)}
		if limited {
			m.Max = bound(float64(b.Barrier))
		}
		heldMetrics = append(heldMetrics, m)
		failures += b.Failcnt
		if limited && !guarantee {
			limits++
			fullest = max(fullest, exact)
		}
		if b.Failcnt == 0 && !near {
			continue
		}
		row := BeancounterRow{UID: b.UID, Resource: b.Resource, Held: b.Held, MaxHeld: b.MaxHeld, Barrier: b.Barrier,
			Limit: b.Limit, Failcnt: b.Failcnt, PercentOfBarrier: pct}
		if in.Prev != nil {
			inc := uint64(0)
			if p, ok := prevFail[b.UID+"\x00"+b.Resource]; ok && b.Failcnt > p {
				inc = b.Failcnt - p
			}
			row.FailcntIncrease = &inc
		}
		rows = append(rows, row)
		if b.Failcnt > 0 {
			sev = Critical
			refused[b.Resource] = true
		} else {
			sev = worse(sev, Warning)
		}
	}
	// Refusals first, then the fullest.
	sort.SliceStable(rows, func(i, j int) bool {
		if (rows[i].Failcnt > 0) != (rows[j].Failcnt > 0) {
			return rows[i].Failcnt > 0
		}
		return rows[i].PercentOfBarrier > rows[j].PercentOfBarrier
	})

	ev := Evidence{}
	ev.Add("present", true)
	ev.Add("containers", len(containers))
	ev.Add("rows_checked", len(s.Beancounters))
	ev.Add("rows", rows)
	resources := map[string]bool{}
	for _, r := range rows {
		resources[r.Resource] = true
	}
	var holderComms []string
	n := t.Top
	if resources["numothersock"] || resources["othersockbuf"] {
		top := topHolders(s.Sockets.Processes, n, func(h snapshot.Holder) int { return h.NonTCP() })
		hr := HolderRows{}
		for _, h := range top {
			hr = append(hr, holderRow(h, s.Sockets.Totals.NonTCP()))
			holderComms = append(holderComms, h.Comm)
		}
		ev.Add("non_tcp_sockets", s.Sockets.Totals.NonTCP())
		ev.Add("top_non_tcp_holders", hr)
		groups := holderGroups(s, s.Sockets.Processes, n)
		for _, g := range groups {
			holderComms = append(holderComms, g.Comm)
		}
		ev.Add("non_tcp_by_group", groups)
	}
	if resources["numtcpsock"] || resources["tcpsndbuf"] || resources["tcprcvbuf"] {
		top := topHolders(s.Sockets.Processes, n, func(h snapshot.Holder) int { return h.TCP })
		hr := HolderRows{}
		for _, h := range top {
			hr = append(hr, holderRow(h, s.Sockets.Totals.NonTCP()))
			holderComms = append(holderComms, h.Comm)
		}
		ev.Add("tcp_sockets", s.Sockets.Totals.TCP)
		ev.Add("top_tcp_holders", hr)
	}
	if resources["numproc"] {
		gs := append([]snapshot.Group(nil), s.Processes.Groups...)
		sort.SliceStable(gs, func(i, j int) bool { return gs[i].Threads > gs[j].Threads })
		if len(gs) > n {
			gs = gs[:n]
		}
		ev.Add("tasks", s.Processes.Threads)
		ev.Add("top_groups_by_threads", groupRows(s, in.Prev, gs))
		for _, g := range gs {
			holderComms = append(holderComms, g.Comm)
		}
	}
	if resources["numfile"] {
		ev.Add("top_fd_holders", topFDRows(s, n))
	}

	// Two numbers grade the file (the fullest limit row against the warning
	// share, every refusal critical); each row's held value follows, with
	// its barrier as the limit.
	full := percentMetric("barrier_percent", fullest)
	if limits > 0 {
		full.Warn = atLeast(t.BeancounterWarnPercent)
	}
	refusals := Metric{Label: "failcnt", Value: float64(failures), UOM: "c", Min: bound(0), Crit: above(0)}
	f := Finding{Severity: sev, Evidence: ev, Metrics: append([]Metric{full, refusals}, heldMetrics...)}
	switch {
	case len(rows) == 0:
		f.Title = fmt.Sprintf("%d beancounter rows, none refused, none near its barrier", len(s.Beancounters))
	default:
		r := rows[0]
		if r.Failcnt > 0 {
			f.Title = fmt.Sprintf("%s refused %d allocations (held %d of barrier %d)", term.Escape(r.Resource), r.Failcnt, r.Held, r.Barrier)
		} else {
			f.Title = fmt.Sprintf("%s held at %.1f%% of its barrier (%d of %d)", term.Escape(r.Resource), r.PercentOfBarrier, r.Held, r.Barrier)
		}
		if len(rows) > 1 {
			f.Title += fmt.Sprintf(", and %d more rows", len(rows)-1)
		}
	}

	var ps []string
	ps = append(ps, "OpenVZ charges each container for every resource in /proc/user_beancounters and refuses a charge that "+
		"would pass the row's barrier (or limit); failcnt counts the refusals. It is cumulative since the container started, "+
		"so an old refusal stays visible until a restart: the +FAILCNT column, when two snapshots were taken, says whether "+
		"refusals are happening now.")
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.Resource] {
			continue
		}
		seen[r.Resource] = true
		if m, ok := beancounterMeaning[r.Resource]; ok {
			ps = append(ps, m)
		}
	}
	if g, ok := ev.Get("non_tcp_by_group"); ok {
		if gs := g.(HolderGroupRows); len(gs) > 0 && gs[0].Unit != "" {
			ps = append(ps, fmt.Sprintf("The heaviest group, %s × %s, runs in the systemd unit %s: its TasksMax= (and the "+
				"service's own process limit) bounds how many workers hold these sockets.", term.Escape(gs[0].User), term.Escape(gs[0].Comm), term.Escape(gs[0].Unit)))
		}
	}
	if g, ok := ev.Get("top_groups_by_threads"); ok {
		if gs := g.(GroupRows); len(gs) > 0 && gs[0].Unit != "" {
			ps = append(ps, fmt.Sprintf("The group with the most threads, %s × %s, runs in the systemd unit %s.",
				term.Escape(gs[0].User), term.Escape(gs[0].Comm), term.Escape(gs[0].Unit)))
		}
	}
	if resources["numothersock"] {
		ps = append(ps, "The top holders above are what numothersock is made of. Each worker process of a pre-forking "+
			"service holds its own unix sockets, so the count follows the number of workers: lowering a service's process "+
			"limit lowers it, as Postfix's default_process_limit = 10 does for a small mail server (the default, 100, is sized for "+
			"large mail servers).")
	}
	f.Explanation = paragraphs(ps...)
	if sev == OK {
		return f
	}
	var fix []string
	if resources["numothersock"] || resources["numtcpsock"] || resources["numproc"] || resources["numfile"] {
		fix = append(fix, "# lower the process limits of the services holding them:")
		sf := serviceFix(holderComms...)
		if len(sf) == 0 {
			// Nothing recognised among the holders: Postfix's process
			// limit is still the best example of the kind of change to make.
			sf = services[0].fix
		}
		fix = append(fix, sf...)
	}
	for _, r := range rows {
		if r.Failcnt == 0 {
			continue
		}
		// vzctl takes the container id; the file gives it, and it is a
		// number on every OpenVZ kernel. Anything else is not echoed into
		// a command.
		if _, err := strconv.ParseUint(r.UID, 10, 32); err == nil && r.UID != "0" && isResourceName(r.Resource) {
			fix = append(fix, fmt.Sprintf("# or, on the hardware node, raise the barrier: vzctl set %s --%s %d:%d --save",
				r.UID, r.Resource, readableCeil(int64(r.Barrier)*2), readableCeil(int64(r.Limit)*2)))
		}
	}
	f.Fix = fix
	return f
}

// isResourceName accepts the lowercase ASCII names beancounter resources
// have, so a fix line never carries anything else.
func isResourceName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// topFDRows lists the processes with the most open files.
func topFDRows(s *snapshot.Snapshot, n int) FDRows {
	ps := make([]snapshot.Process, 0, len(s.Processes.List))
	for _, p := range s.Processes.List {
		if p.FDs > 0 {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].FDs > ps[j].FDs })
	if len(ps) > n {
		ps = ps[:n]
	}
	out := FDRows{}
	for _, p := range ps {
		out = append(out, fdRow(p))
	}
	return out
}

func fdRow(p snapshot.Process) FDRow {
	r := FDRow{PID: p.PID, User: p.User, UID: p.UID, Comm: p.Comm, FDs: p.FDs, FDLimit: p.FDLimit}
	if p.FDLimit > 0 {
		r.Percent = percent(float64(p.FDs), float64(p.FDLimit))
	}
	return r
}
