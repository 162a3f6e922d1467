package doctor

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/kmsg"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// The kernel's own words in every finding. A catalogue entry of
// internal/kmsg lists the finding ids its message is evidence for
// (snapshot.KernelKind.Findings); withKernelLog, run after every check,
// adds those messages and the counters behind them to the finding, and a
// message of the last hour raises the finding by itself (kernelFloors):
// the kernel's word that a limit bit outlives the numbers that made it
// bite (the orphans have drained, the conntrack table has emptied, the OOM
// victim is dead). A kernel message may belong to several findings; which
// of them it raises is floorFinding's one rule.

// kernelFloor raises a finding to at least sev when the kind was logged
// within the last hour.
type kernelFloor struct {
	kind string
	sev  Severity
}

// kernelFloors: a full conntrack table drops packets (critical even once
// drained); every other of these refused work the kernel was asked for
// (sockets reset, files not opened, forks refused, a process killed).
var kernelFloors = []kernelFloor{
	{kmsg.KindTCPOrphans, Warning},
	{kmsg.KindTCPMemory, Warning},
	{kmsg.KindSocketMemory, Warning},
	{kmsg.KindConntrackFull, Critical},
	{kmsg.KindFileMax, Warning},
	{kmsg.KindOOMKill, Warning},
	{kmsg.KindForkRejected, Warning},
}

// KernelMessageRow is one kind of kernel message in a finding's evidence.
type KernelMessageRow struct {
	Kind     string    `json:"kind"`
	LastHour int       `json:"last_hour"`
	Count    uint64    `json:"count"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	// Message is the last one as the kernel wrote it; Fields are parsed
	// from it (names as the process chose them: renderers escape).
	Message string                `json:"message"`
	Fields  snapshot.KernelFields `json:"fields"`
	Source  string                `json:"source"`
}

// KernelMessageRows is a table of kernel messages.
type KernelMessageRows []KernelMessageRow

func (KernelMessageRows) Columns() []string {
	return []string{"KIND", "LAST HOUR", "SINCE BOOT", "LAST", "MESSAGE"}
}

func (r KernelMessageRows) Cells() [][]string {
	out := make([][]string, len(r))
	for i, k := range r {
		// Decoded: the renderer escapes every cell once.
		out[i] = []string{k.Kind, itoa(k.LastHour), itoa(k.Count), clock(k.Last), kmsg.Unescape([]byte(k.Message))}
	}
	return out
}

// quoted is a kernel message for a title or an explanation: in quotes,
// escaped once (the kernel's own \xNN escapes decoded first).
func quoted(msg string) string { return `"` + term.Escape(kmsg.Unescape([]byte(msg))) + `"` }

// clock prints a message's time for people: UTC, to the second.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago says how long before the snapshot t was.
func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Minute)
	switch {
	case d < time.Minute:
		return "less than a minute before this look"
	case d < time.Hour:
		return fmt.Sprintf("%d min before this look", int(d.Minutes()))
	}
	return fmt.Sprintf("%s before this look", d)
}

// tiedKinds returns the kernel log's kinds that are evidence for id.
func tiedKinds(l *snapshot.KernelLog, id string) []snapshot.KernelKind {
	var out []snapshot.KernelKind
	for _, k := range l.Kinds {
		if slices.Contains(k.Findings, id) {
			out = append(out, k)
		}
	}
	return out
}

func kernelRow(k snapshot.KernelKind) KernelMessageRow {
	return KernelMessageRow{Kind: k.Kind, LastHour: k.LastHour, Count: k.Count, First: k.First, Last: k.Last,
		Message: k.Message, Fields: k.Fields, Source: k.Source}
}

// withKernelLog adds to f what the kernel said that belongs to it, and
// raises it when the kernel said so within the hour.
func withKernelLog(f Finding, in Input) Finding {
	s := in.Cur
	l := s.KernelLog
	if l != nil && l.Available {
		kinds := tiedKinds(l, f.ID)
		if len(kinds) > 0 {
			rows := KernelMessageRows{}
			for _, k := range kinds {
				if k.Count > 0 {
					rows = append(rows, kernelRow(k))
				}
			}
			f.Evidence.Add("kernel_messages", rows)
		}
		// One metric per kind tied to the finding, graded where a recent
		// message raises it: the performance data grades as the verdict.
		for _, k := range kinds {
			m := Metric{Label: k.Kind + "_last_hour", Value: float64(k.LastHour), Min: bound(0)}
			if sev, ok := floorOf(k.Kind); ok && floorFinding(s, k, f.ID) {
				if sev == Critical {
					m.Crit = above(0)
				} else {
					m.Warn = above(0)
				}
			}
			f.Metrics = append(f.Metrics, m)
		}
		for _, k := range kinds {
			if k.LastHour == 0 {
				continue
			}
			for _, fl := range kernelFloors {
				if fl.kind == k.Kind && floorFinding(s, k, f.ID) {
					k := forFinding(s, k, f.ID)
					raise(&f, fl.sev, kernelTitle(s, k, f.ID), kernelWhy(s, k, f.ID), kernelFix(s, k.Kind))
					if also := kernelNames(k); also != "" && !strings.Contains(f.Title, also) {
						f.Title += "; the kernel: " + also
					}
				}
			}
		}
	}
	withCounters(&f, in)
	return f
}

// floorOf is the severity a recent message of kind raises its finding to.
func floorOf(kind string) (Severity, bool) {
	for _, fl := range kernelFloors {
		if fl.kind == kind {
			return fl.sev, true
		}
	}
	return OK, false
}

// floorFinding says whether a recent message of kind k raises finding id,
// of those it is evidence for:
//   - "Out of socket memory" (kernels before 3.7) and TCPAbortOnMemory do
//     not say whether orphans or TCP memory caused the resets: sockstat
//     tells them apart, so only the finding whose numbers stand higher is
//     raised;
//   - an OOM kill raises memory-thrashing when the host's memory ran out,
//     cgroup-limits when a memory cgroup's limit did (the constraint the
//     OOM killer logged), each for the kills of the last hour;
//   - the pids controller's refusal raises cgroup-limits: it is a cgroup's
//     pids.max that refused; process-storm shows it as evidence.
func floorFinding(s *snapshot.Snapshot, k snapshot.KernelKind, id string) bool {
	switch k.Kind {
	case kmsg.KindSocketMemory:
		return socketMemoryCause(s) == id
	case kmsg.KindOOMKill:
		_, ok := recentFor(s, k, id)
		return ok
	case kmsg.KindForkRejected:
		return id == "cgroup-limits"
	}
	return true
}

// recentFor is the newest message of the last hour of kind k that is
// finding id's: for OOM kills, the host-wide ones are memory-thrashing's
// and the memory cgroups' cgroup-limits'.
func recentFor(s *snapshot.Snapshot, k snapshot.KernelKind, id string) (snapshot.KernelMessage, bool) {
	for i := len(k.Recent) - 1; i >= 0; i-- {
		m := k.Recent[i]
		if s.Time.Sub(m.Time) > time.Hour+time.Minute {
			break
		}
		if k.Kind != kmsg.KindOOMKill || m.Fields.Memcg == (id == "cgroup-limits") {
			return m, true
		}
	}
	return snapshot.KernelMessage{}, false
}

// forFinding is k as finding id tells it: its newest message of those
// that are the finding's.
func forFinding(s *snapshot.Snapshot, k snapshot.KernelKind, id string) snapshot.KernelKind {
	if m, ok := recentFor(s, k, id); ok {
		k.Message, k.Fields, k.Last = m.Text, m.Fields, m.Time
	}
	return k
}

// socketMemoryCause is "tcp-orphans" or "tcp-memory": whichever stands
// nearer its limit, orphans ×4 against tcp_max_orphans (the most penalized
// sockets' test) or TCP's pages against tcp_mem[2].
func socketMemoryCause(s *snapshot.Snapshot) string {
	k := s.Kernel
	if k.Sockstat == nil {
		return "tcp-orphans"
	}
	var o, m float64
	if k.TCPMaxOrphans > 0 {
		o = float64(k.Sockstat.TCP.Orphan) * 4 / float64(k.TCPMaxOrphans)
	}
	if len(k.TCPMemPages) == 3 && k.TCPMemPages[2] > 0 {
		m = float64(k.Sockstat.TCP.MemPages) / float64(k.TCPMemPages[2])
	}
	if m > o {
		return "tcp-memory"
	}
	return "tcp-orphans"
}

// raise makes f at least sev. A finding the numbers alone would have left
// lower takes the kernel's title, its own moving into the explanation; one
// already as bad keeps its title and gains the kernel's paragraph.
func raise(f *Finding, sev Severity, title, why string, fix []string) {
	if f.Severity >= sev {
		f.Explanation = paragraphs(f.Explanation, why)
		return
	}
	now := "The numbers now: " + f.Title + "."
	f.Severity, f.Title = sev, title
	f.Explanation = paragraphs(why, now, f.Explanation)
	if len(f.Fix) == 0 {
		f.Fix = fix
	}
}

// times is "once" or "N times".
func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// kernelTitle is the verdict a recent message gives by itself. Names are
// escaped: a title is text for people.
func kernelTitle(s *snapshot.Snapshot, k snapshot.KernelKind, id string) string {
	f := k.Fields
	when := fmt.Sprintf("%s in the last hour, last %s", times(k.LastHour), ago(s.Time, k.Last))
	switch k.Kind {
	case kmsg.KindOOMKill:
		what := "the host's memory ran out"
		if f.Memcg {
			what = "a memory cgroup's limit ran out"
		}
		where := ""
		if f.Cgroup != "" {
			where = " in cgroup " + term.Escape(f.Cgroup)
		}
		return fmt.Sprintf("the OOM killer killed pid %d (%s)%s: %s (%s)", f.PID, term.Escape(f.Comm), where, what, when)
	case kmsg.KindConntrackFull:
		now := ""
		if c := s.Kernel.Conntrack; c != nil && c.Max > 0 {
			now = fmt.Sprintf("; the table holds %d of %d now", c.Count, c.Max)
		}
		return fmt.Sprintf("the kernel dropped packets for a full conntrack table (%s)%s", when, now)
	case kmsg.KindTCPOrphans:
		return fmt.Sprintf("the kernel reset sockets for too many orphans: \"TCP: too many orphaned sockets\" %s", when)
	case kmsg.KindTCPMemory:
		return fmt.Sprintf("the kernel reset sockets for TCP memory above tcp_mem[2]: \"out of memory -- consider tuning tcp_mem\" %s", when)
	case kmsg.KindSocketMemory:
		cause := "too many orphans"
		if id == "tcp-memory" {
			cause = "TCP memory above tcp_mem[2]"
		}
		return fmt.Sprintf("the kernel said \"Out of socket memory\" %s: sockets were reset, for %s by sockstat's numbers", when, cause)
	case kmsg.KindFileMax:
		return fmt.Sprintf("the host ran out of file handles: \"VFS: file-max limit %d reached\" %s", f.Limit, when)
	case kmsg.KindForkRejected:
		return fmt.Sprintf("the pids controller refused forks in cgroup %s (%s)", term.Escape(recentCgroups(k)), when)
	}
	return fmt.Sprintf("the kernel said %s %s", quoted(k.Message), when)
}

// kernelNames is what a finding the numbers made bad already gains in its
// title from the kernel's line: the OOM victim, the refusing cgroup. Names
// are escaped.
func kernelNames(k snapshot.KernelKind) string {
	f := k.Fields
	switch k.Kind {
	case kmsg.KindOOMKill:
		s := fmt.Sprintf("killed pid %d (%s)", f.PID, term.Escape(f.Comm))
		if f.Cgroup != "" {
			s += " in cgroup " + term.Escape(f.Cgroup)
		}
		return s
	case kmsg.KindForkRejected:
		return "refused forks in cgroup " + term.Escape(recentCgroups(k))
	}
	return ""
}

// recentCgroups lists the distinct cgroups of a kind's recent messages,
// newest first, three at most (the pids controller logs each cgroup only
// once).
func recentCgroups(k snapshot.KernelKind) string {
	var cgs []string
	n := 0
	for i := len(k.Recent) - 1; i >= 0; i-- {
		if cg := k.Recent[i].Fields.Cgroup; cg != "" && !slices.Contains(cgs, cg) {
			cgs = append(cgs, cg)
		}
	}
	if n = len(cgs); n > 3 {
		cgs = append(cgs[:3], fmt.Sprintf("and %d more", n-3))
	}
	return strings.Join(cgs, ", ")
}

// kernelWhy is the paragraph a recent message adds to the explanation.
func kernelWhy(s *snapshot.Snapshot, k snapshot.KernelKind, id string) string {
	said := fmt.Sprintf("The kernel logged %s %s in the last hour (%d since boot), last at %s (%s, %s).",
		quoted(k.Message), times(k.LastHour), k.Count, clock(k.Last), ago(s.Time, k.Last), k.Source)
	var means string
	switch k.Kind {
	case kmsg.KindOOMKill:
		means = "That line is the OOM killer's own account of a kill: the victim is dead, so memory may look fine now; what " +
			"grew until it ran out will grow again."
	case kmsg.KindConntrackFull:
		means = "Each such line is a new connection's packet dropped because nf_conntrack_max was reached and nothing could " +
			"be evicted; the kernel logs it rate-limited, so it stands for many more drops (the drop counter of " +
			"/proc/net/stat/nf_conntrack counts them all). The table may have drained since; the next peak fills it again."
	case kmsg.KindTCPOrphans, kmsg.KindTCPMemory, kmsg.KindSocketMemory:
		means = "tcp_check_oom() logs it, rate-limited, each time it resets a socket; TCPAbortOnMemory in /proc/net/netstat " +
			"counts every reset. The counts may look harmless by now: the peak was higher."
		if k.Kind == kmsg.KindSocketMemory {
			means += " Old kernels print the same words for both causes; here " + map[string]string{
				"tcp-orphans": "the orphan count stands nearer its limit than TCP memory does.",
				"tcp-memory":  "TCP memory stands nearer tcp_mem[2] than the orphans do to tcp_max_orphans.",
			}[socketMemoryCause(s)]
		}
	case kmsg.KindFileMax:
		means = "alloc_empty_file() logs it when an open(), socket() or pipe() fails with ENFILE, and only when the count " +
			"passes its last peak: every later failure is silent."
	case kmsg.KindForkRejected:
		means = "pids_event() logs it the first time a fork fails in a cgroup at its pids.max, and never again for that " +
			"cgroup: the cgroup's pids.events max counts the rest."
	}
	return paragraphs(said, means)
}

// kernelFix is the fix a finding raised by a message alone gets: numbers
// only, never a name from the message.
func kernelFix(s *snapshot.Snapshot, kind string) []string {
	k := s.Kernel
	switch kind {
	case kmsg.KindConntrackFull:
		if c := k.Conntrack; c != nil && c.Max > 0 {
			n := readableCeil(c.Max * 2)
			return []string{
				fmt.Sprintf("sysctl -w net.netfilter.nf_conntrack_max=%d", n),
				fmt.Sprintf("echo 'net.netfilter.nf_conntrack_max = %d' > /etc/sysctl.d/60-conntrack.conf", n),
				"# the drops so far: the drop column of /proc/net/stat/nf_conntrack (hex, per CPU)",
			}
		}
		return []string{"# raise net.netfilter.nf_conntrack_max to about twice the peak of nf_conntrack_count once the module is loaded again"}
	case kmsg.KindTCPOrphans, kmsg.KindSocketMemory:
		if k.TCPMaxOrphans > 0 {
			n := readableCeil(k.TCPMaxOrphans * 2)
			return []string{
				fmt.Sprintf("sysctl -w net.ipv4.tcp_max_orphans=%d", n),
				"# the peak was above what this look sees: picket run keeps it in its history (picket history kernel.sockstat.tcp.orphans)",
			}
		}
	case kmsg.KindTCPMemory:
		return []string{"# the sockets with the fullest queues (Recv-Q, then Send-Q):", "ss -Htn | sort -k2,2nr | head -20"}
	case kmsg.KindFileMax:
		if f := k.FileNr; f != nil && f.Max > 0 {
			n := readableCeil(f.Max * 2)
			return []string{fmt.Sprintf("sysctl -w fs.file-max=%d", n),
				fmt.Sprintf("echo 'fs.file-max = %d' > /etc/sysctl.d/60-file-max.conf", n)}
		}
	case kmsg.KindOOMKill:
		return []string{"# the kernel's whole report of the kill: dmesg -T | grep -B30 'Killed process'",
			"# then raise the memory limit of the victim's cgroup, or find what grew (picket history, picket top)"}
	case kmsg.KindForkRejected:
		return []string{"# the cgroup's refusals since: pids.events (max) in its directory under /sys/fs/cgroup",
			"# raise its pids.max only once the fork loop is understood: picket top shows who forks"}
	}
	return nil
}

// withCounters adds the counters that back the kernel's messages, since
// boot and over the interval, and raises the finding when they moved:
// they count what the rate-limited log may have left out.
func withCounters(f *Finding, in Input) {
	s := in.Cur
	switch f.ID {
	case "tcp-orphans", "tcp-memory":
		n := s.Kernel.Netstat
		if n == nil {
			return
		}
		f.Evidence.Add("tcp_abort_on_memory", n.AbortOnMemory)
		f.Metrics = append(f.Metrics, Metric{Label: "tcp_abort_on_memory", Value: float64(n.AbortOnMemory), UOM: "c", Min: bound(0)})
		d, ok := counterDelta(in, func(s *snapshot.Snapshot) (uint64, bool) {
			if s.Kernel.Netstat == nil {
				return 0, false
			}
			return s.Kernel.Netstat.AbortOnMemory, true
		})
		if !ok {
			return
		}
		f.Evidence.Add("tcp_abort_on_memory_increase", d)
		m := Metric{Label: "tcp_abort_on_memory_increase", Value: float64(d), Min: bound(0)}
		if socketMemoryCause(s) == f.ID {
			m.Warn = above(0)
		}
		f.Metrics = append(f.Metrics, m)
		if d > 0 && socketMemoryCause(s) == f.ID {
			cause := map[string]string{"tcp-orphans": "too many orphans", "tcp-memory": "TCP memory above tcp_mem[2]"}[f.ID]
			raise(f, Warning,
				fmt.Sprintf("the kernel reset %d sockets in the last %s for %s (TCPAbortOnMemory, by sockstat's numbers)", d, in.elapsed().Round(time.Second), cause),
				fmt.Sprintf("TCPAbortOnMemory in /proc/net/netstat rose by %d between the two looks: tcp_out_of_resources() "+
					"reset that many sockets because tcp_check_oom() found too many orphans or TCP memory above tcp_mem[2]. "+
					"The counter does not say which; sockstat's numbers point to %s.", d, cause),
				kernelFix(s, map[string]string{"tcp-orphans": kmsg.KindTCPOrphans, "tcp-memory": kmsg.KindTCPMemory}[f.ID]))
		}
	case "conntrack":
		c := s.Kernel.ConntrackStat
		if c == nil {
			return
		}
		f.Evidence.Add("conntrack_drop", c.Drop)
		f.Evidence.Add("conntrack_early_drop", c.EarlyDrop)
		f.Metrics = append(f.Metrics, Metric{Label: "conntrack_drop", Value: float64(c.Drop), UOM: "c", Min: bound(0)},
			Metric{Label: "conntrack_early_drop", Value: float64(c.EarlyDrop), UOM: "c", Min: bound(0)})
		d, ok := counterDelta(in, func(s *snapshot.Snapshot) (uint64, bool) {
			if s.Kernel.ConntrackStat == nil {
				return 0, false
			}
			return s.Kernel.ConntrackStat.Drop, true
		})
		if !ok {
			return
		}
		f.Evidence.Add("conntrack_drop_increase", d)
		f.Metrics = append(f.Metrics, Metric{Label: "conntrack_drop_increase", Value: float64(d), Min: bound(0), Crit: above(0)})
		if d > 0 {
			raise(f, Critical,
				fmt.Sprintf("netfilter dropped %d packets for a full conntrack table in the last %s", d, in.elapsed().Round(time.Second)),
				fmt.Sprintf("The drop counter of /proc/net/stat/nf_conntrack rose by %d between the two looks: each is a packet "+
					"__nf_conntrack_alloc() dropped because the table was at nf_conntrack_max and no entry could be evicted.", d),
				kernelFix(s, kmsg.KindConntrackFull))
		}
	}
}

// counterDelta is a counter's increase from Prev to Cur; false with one
// snapshot, a counter missing in either, or one that went back (a reboot).
func counterDelta(in Input, get func(*snapshot.Snapshot) (uint64, bool)) (uint64, bool) {
	if in.Prev == nil {
		return 0, false
	}
	a, okA := get(in.Prev)
	b, okB := get(in.Cur)
	if !okA || !okB || b < a {
		return 0, false
	}
	return b - a, true
}

// KernelLog reports what the kernel said that no other finding covers:
// SYN floods, neighbour and TIME_WAIT table overflows (a warning when
// logged within the hour), and whether the log could be read at all. The
// kernel's messages that do belong to another finding are shown there.
type KernelLog struct{}

func (KernelLog) ID() string { return "kernel-log" }

func (KernelLog) Run(in Input) Finding {
	s := in.Cur
	l := s.KernelLog
	unread := []Metric{{Label: "readable", Value: 0, Min: bound(0), Max: bound(1)}}
	if l == nil {
		return Finding{Severity: OK, Title: "no kernel log to read here", Evidence: Evidence{{"readable", false}}, Metrics: unread,
			Explanation: "There is no /dev/kmsg under this root, so what the kernel said is not known."}
	}
	ev := Evidence{}
	ev.Add("readable", l.Available)
	if !l.Available {
		// Not unknown: a picket doctor run without root must not say
		// "cannot tell" about a host that is fine.
		return Finding{Severity: OK, Evidence: ev, Metrics: unread, Title: "the kernel's log is not readable: " + term.Escape(l.Error),
			Explanation: "picket reads /dev/kmsg for the messages the kernel prints when a limit bites (OOM kills, pids " +
				"refusals, a full conntrack table, orphan resets). Run picket as root, or with CAP_SYSLOG, to see them."}
	}
	ev.Add("records", l.Records)
	ev.Add("lost", l.Lost)
	ev.Add("unknown_errors", l.UnknownErrors)
	ev.Add("userspace_records", l.User.Count)
	all := KernelMessageRows{}
	var recent []snapshot.KernelKind
	for _, k := range l.Kinds {
		if k.Count == 0 {
			continue
		}
		all = append(all, kernelRow(k))
		if len(k.Findings) == 0 && k.LastHour > 0 {
			recent = append(recent, k)
		}
	}
	ev.Add("kernel_messages", all)
	var counters []string
	if n := s.Kernel.Netstat; n != nil {
		ev.Add("listen_overflows", n.ListenOverflows)
		ev.Add("listen_drops", n.ListenDrops)
		ev.Add("syn_queue_full_cookies", n.ReqQFullDoCookies)
		ev.Add("syn_queue_full_drops", n.ReqQFullDrop)
		ev.Add("tcp_time_wait_overflow", n.TimeWaitOverflow)
		for _, c := range []struct {
			key string
			get func(*snapshot.Netstat) uint64
		}{
			{"listen_overflows", func(n *snapshot.Netstat) uint64 { return n.ListenOverflows }},
			{"syn_queue_full_drops", func(n *snapshot.Netstat) uint64 { return n.ReqQFullDrop }},
			{"tcp_time_wait_overflow", func(n *snapshot.Netstat) uint64 { return n.TimeWaitOverflow }},
		} {
			d, ok := counterDelta(in, func(s *snapshot.Snapshot) (uint64, bool) {
				if s.Kernel.Netstat == nil {
					return 0, false
				}
				return c.get(s.Kernel.Netstat), true
			})
			if ok {
				ev.Add(c.key+"_increase", d)
				if d > 0 {
					counters = append(counters, fmt.Sprintf("%s +%d", c.key, d))
				}
			}
		}
	}
	f := Finding{Severity: OK, Evidence: ev, Metrics: []Metric{{Label: "readable", Value: 1, Min: bound(0), Max: bound(1)},
		{Label: "records", Value: float64(l.Records), UOM: "c", Min: bound(0)}}}
	for _, k := range l.Kinds {
		if len(k.Findings) == 0 {
			f.Metrics = append(f.Metrics, Metric{Label: k.Kind + "_last_hour", Value: float64(k.LastHour), Min: bound(0), Warn: above(0)})
		}
	}
	about := "picket reads the kernel's log (/dev/kmsg) and sorts the messages it knows by the exhaustion they prove; " +
		"those that belong to another finding are shown there. This finding has the rest: SYN floods, neighbour and " +
		"TIME_WAIT table overflows."
	if len(recent) == 0 {
		f.Title = fmt.Sprintf("%d kernel records since boot; nothing in the last hour that no other finding covers", l.Records)
		if l.User.Count > 0 {
			f.Title += fmt.Sprintf(" (%d written from userspace, not counted)", l.User.Count)
		}
		extra := ""
		if len(counters) > 0 {
			extra = "Counters moved since the last look without a message: " + strings.Join(counters, ", ") + "."
		}
		f.Explanation = paragraphs(about, extra)
		return f
	}
	f.Severity = Warning
	var parts, whys []string
	for _, k := range recent {
		parts = append(parts, quoted(k.Message)+" "+times(k.LastHour))
		whys = append(whys, fmt.Sprintf("%s: %s (%s), last at %s.", k.Kind, kindWhat(k.Kind), k.Source, clock(k.Last)))
	}
	f.Title = "the kernel said " + strings.Join(parts, "; ") + " in the last hour"
	f.Explanation = paragraphs(append([]string{about}, whys...)...)
	for _, k := range recent {
		f.Fix = append(f.Fix, ownFix(k)...)
	}
	return f
}

// kindWhat is the catalogue's words for a kind.
func kindWhat(kind string) string {
	for _, e := range kmsg.Catalogue() {
		if e.Kind == kind && e.What != "" {
			return e.What
		}
	}
	return ""
}

// ownFix is the advice for the kinds this finding covers: comments, as
// the right numbers depend on what the host carries.
func ownFix(k snapshot.KernelKind) []string {
	switch k.Kind {
	case kmsg.KindSYNFlood:
		return []string{
			"# the listeners whose queues overflow (Recv-Q at Send-Q): ss -ltn",
			"# a larger backlog: the service's listen() backlog, net.core.somaxconn and net.ipv4.tcp_max_syn_backlog",
		}
	case kmsg.KindNeighOverflow:
		return []string{"# the neighbour tables: ip -s neigh | wc -l; raise net.ipv4.neigh.default.gc_thresh3 (and gc_thresh2) above it"}
	case kmsg.KindTimeWaitBucket:
		return []string{"# raise net.ipv4.tcp_max_tw_buckets, or let clients close first (keep-alive, connection reuse)"}
	}
	return nil
}
