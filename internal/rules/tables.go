package rules

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/picket-guard/picket/internal/snapshot"
)

// Row is one row of a table: field name to value (string, int, float64 or
// bool). Strings came from processes and are untrusted.
type Row map[string]any

// table is something a rule can run over: its fields with a sample value of
// each field's type (what expressions are type-checked against), the fields
// that identify a row across evaluations, how to build rows, and what its
// rows are built from beyond processes and kernel counters.
type table struct {
	name   string
	doc    string
	fields Row
	key    []string
	rows   func(in *Input) []Row
	// sockets: the rows come from the socket tables and every process's
	// fds, which only a full collection reads.
	sockets bool
	// findings: the rows are doctor's findings, which the caller computes
	// on full collections only.
	findings bool
	// kernelLog: the rows are what the kernel said in /dev/kmsg, which
	// can change between two looks (picket run evaluates these rules as
	// soon as the kernel says something the catalogue knows).
	kernelLog bool
}

// Input is what one evaluation sees.
type Input struct {
	Snapshot *snapshot.Snapshot
	// Findings are doctor's findings for the "findings" table (nil: empty).
	Findings []Finding
}

// Finding is the part of a doctor finding a rule can test. The caller
// converts doctor's type, so rules does not depend on doctor's package.
type Finding struct {
	ID       string
	Severity string // ok, warning, critical, unknown
	Title    string
	Summary  string
}

// tables are the tables rules can read, by name. They are built on first
// use, not at start-up: every picket command links this package, and most
// (version, snapshot, doctor) never evaluate a rule.
var tables = sync.OnceValue(func() map[string]*table {
	m := map[string]*table{}
	for _, t := range builtinTables() {
		m[t.name] = t
	}
	return m
})

// NeedsSockets reports whether the rule's table is built from the socket
// tables and every process's fds: a light collection does not have them.
func (r *Rule) NeedsSockets() bool { return r.tbl != nil && r.tbl.sockets }

// NeedsFindings reports whether the rule's table is doctor's findings,
// which the caller passes in Input.Findings.
func (r *Rule) NeedsFindings() bool { return r.tbl != nil && r.tbl.findings }

// NeedsKernelLog reports whether the rule's table is built from the
// kernel's log: picket run evaluates it when a message comes.
func (r *Rule) NeedsKernelLog() bool { return r.tbl != nil && r.tbl.kernelLog }

// TableNames lists the tables, sorted.
func TableNames() []string { return sortedKeys(tables()) }

func builtinTables() []*table {
	return []*table{{
		name: "process_groups",
		doc:  "processes grouped by user × command (PIKT's ps -eo user,comm | sort | uniq -c)",
		fields: Row{"user": "", "uid": 0, "comm": "", "count": 0, "threads": 0, "rss": 0,
			"share": 0.0, "processes": 0},
		key: []string{"user", "comm"},
		rows: func(in *Input) []Row {
			s := in.Snapshot
			out := make([]Row, 0, len(s.Processes.Groups))
			for _, g := range s.Processes.Groups {
				out = append(out, Row{"user": g.User, "uid": int(g.UID), "comm": g.Comm, "count": g.Count,
					"threads": g.Threads, "rss": int(g.RSSBytes), "share": ratio(g.Count, s.Processes.Total),
					"processes": s.Processes.Total})
			}
			return out
		},
	}, {
		name: "processes",
		doc:  "every process",
		fields: Row{"pid": 0, "ppid": 0, "user": "", "uid": 0, "comm": "", "state": "", "threads": 0,
			"rss": 0, "fds": 0, "fd_limit": 0, "age": 0.0, "kernel_thread": false, "start": 0, "cgroup": "", "unit": "", "eta_seconds": 0},
		key: []string{"pid", "start"},
		rows: func(in *Input) []Row {
			s := in.Snapshot
			eta := newETAs(s)
			out := make([]Row, 0, len(s.Processes.List))
			for _, p := range s.Processes.List {
				age := 0.0
				if !p.StartTime.IsZero() {
					age = s.Time.Sub(p.StartTime).Seconds()
				}
				out = append(out, Row{"pid": p.PID, "ppid": p.PPID, "user": p.User, "uid": int(p.UID), "comm": p.Comm,
					"state": p.State, "threads": p.Threads, "rss": int(p.RSSBytes), "fds": knownFDs(p.FDs), "fd_limit": int(p.FDLimit),
					"age": age, "kernel_thread": p.KernelThread, "start": p.StartTime.UnixMilli(), "cgroup": p.Cgroup, "unit": p.Unit,
					"eta_seconds": lookupETA(eta.nofile, p.PID)})
			}
			return out
		},
	}, {
		name:    "socket_holders",
		doc:     "processes holding sockets, with counts by type",
		sockets: true,
		fields: Row{"pid": 0, "user": "", "uid": 0, "comm": "", "tcp": 0, "udp": 0, "unix": 0, "raw": 0,
			"netlink": 0, "packet": 0, "other": 0, "total": 0, "non_tcp": 0, "fds": 0, "fd_limit": 0, "eta_seconds": 0},
		key: []string{"pid", "comm"},
		rows: func(in *Input) []Row {
			s := in.Snapshot
			eta := newETAs(s)
			out := make([]Row, 0, len(s.Sockets.Processes))
			for _, h := range s.Sockets.Processes {
				out = append(out, Row{"pid": h.PID, "user": h.User, "uid": int(h.UID), "comm": h.Comm,
					"tcp": h.TCP, "udp": h.UDP, "unix": h.Unix, "raw": h.Raw, "netlink": h.Netlink, "packet": h.Packet,
					"other": h.Other, "total": h.Total, "non_tcp": h.SocketCounts.NonTCP(), "fds": h.FDs, "fd_limit": int(h.FDLimit),
					"eta_seconds": lookupETA(eta.nofile, h.PID)})
			}
			return out
		},
	}, {
		name:   "kernel",
		doc:    "one row of kernel counters and limits (sockstat, tcp_mem, file-nr, pid_max, conntrack, memory, PSI)",
		fields: kernelFields(),
		key:    nil,
		rows:   func(in *Input) []Row { return []Row{kernelRow(in.Snapshot)} },
	}, {
		name:      "kernel_log",
		doc:       "what the kernel said in /dev/kmsg: one row per kind of message picket knows (oom-kill, fork-rejected, conntrack-full, tcp-orphans...), seen or not",
		kernelLog: true,
		fields: Row{"kind": "", "finding": "", "count": 0, "last_hour": 0, "age": 0.0, "level": 0, "message": "",
			"pid": 0, "comm": "", "uid": 0, "cgroup": "", "oom_cgroup": "", "port": 0, "readable": true},
		key:  []string{"kind"},
		rows: kernelLogRows,
	}, {
		name:      "kernel_messages",
		doc:       "the kernel's recent messages of a known kind (the last few of each), one row per message",
		kernelLog: true,
		fields:    kernelMessageRow(&snapshot.Snapshot{}, "", snapshot.KernelMessage{}),
		key:       []string{"seq"},
		rows: func(in *Input) []Row {
			s := in.Snapshot
			if s.KernelLog == nil {
				return nil
			}
			var out []Row
			for _, k := range s.KernelLog.Kinds {
				for _, m := range k.Recent {
					r := kernelMessageRow(s, firstOr(k.Findings), m)
					r["earlier_run"] = m.Seq < s.KernelLog.ResumedSeq
					out = append(out, r)
				}
			}
			return out
		},
	}, {
		name:   "beancounters",
		doc:    "OpenVZ /proc/user_beancounters rows",
		fields: Row{"uid": "", "resource": "", "held": 0, "maxheld": 0, "barrier": 0, "limit": 0, "failcnt": 0, "usage": 0.0, "eta_seconds": 0},
		key:    []string{"uid", "resource"},
		rows: func(in *Input) []Row {
			var out []Row
			eta := newETAs(in.Snapshot)
			for _, b := range in.Snapshot.Beancounters {
				usage := 0.0
				if b.Barrier > 0 && b.Barrier < 1<<62 {
					usage = float64(b.Held) / float64(b.Barrier)
				}
				out = append(out, Row{"uid": b.UID, "resource": b.Resource, "held": clampInt(b.Held), "maxheld": clampInt(b.MaxHeld),
					"barrier": clampInt(b.Barrier), "limit": clampInt(b.Limit), "failcnt": clampInt(b.Failcnt), "usage": usage,
					"eta_seconds": lookupETA(eta.bc, [2]string{b.UID, b.Resource})})
			}
			return out
		},
	}, {
		name: "units",
		doc:  "processes grouped by systemd unit, beside user × command",
		fields: Row{"unit": "", "processes": 0, "threads": 0, "fds": 0, "sockets": 0, "rss": 0,
			"tasks": 0, "tasks_max": -1, "tasks_percent": 0.0, "cgroup": ""},
		key: []string{"unit"},
		rows: func(in *Input) []Row {
			s := in.Snapshot
			byUnit := map[string]*snapshot.Cgroup{}
			for i := range s.Cgroups {
				c := &s.Cgroups[i]
				if c.Unit != "" && strings.HasSuffix(c.Path, "/"+c.Unit) && byUnit[c.Unit] == nil {
					byUnit[c.Unit] = c
				}
			}
			out := make([]Row, 0, len(s.Processes.Units))
			for _, u := range s.Processes.Units {
				r := Row{"unit": u.Unit, "processes": u.Processes, "threads": u.Threads, "fds": u.FDs, "sockets": u.Sockets,
					"rss": clampInt(u.RSSBytes), "tasks": u.Threads, "tasks_max": -1, "tasks_percent": 0.0, "cgroup": ""}
				if c := byUnit[u.Unit]; c != nil {
					r["cgroup"] = c.Path
					if c.PidsCurrent != nil {
						r["tasks"] = clampInt(*c.PidsCurrent)
					}
					if p, ok := c.PidsPercent(); ok {
						r["tasks_max"], r["tasks_percent"] = clampInt(*c.PidsMax), p
					}
				}
				out = append(out, r)
			}
			return out
		},
	}, {
		name: "cgroups",
		doc:  "one row per cgroup but the root (pick those with a limit with `where: limited`); unlimited values are -1",
		fields: Row{"path": "", "unit": "", "container": "", "limited": false, "processes": 0, "threads": 0,
			"pids_current": 0, "pids_max": -1, "pids_percent": 0.0, "pids_events_max": 0,
			"memory_current": 0, "memory_max": -1, "memory_high": -1, "memory_percent": 0.0, "working_set": 0,
			"oom_kill": 0, "memory_events_max": 0, "memory_events_high": 0, "memory_failcnt": 0,
			"psi_memory_some10": 0.0, "psi_memory_full10": 0.0, "cpu_throttled_usec": 0, "frozen": false, "eta_seconds": 0},
		key: []string{"path"},
		rows: func(in *Input) []Row {
			var out []Row
			eta := newETAs(in.Snapshot)
			for i := range in.Snapshot.Cgroups {
				if c := &in.Snapshot.Cgroups[i]; c.Path != "/" {
					r := cgroupRow(c)
					r["eta_seconds"] = lookupETA(eta.cgroup, c.Path)
					out = append(out, r)
				}
			}
			return out
		},
	}, {
		name:     "findings",
		doc:      "picket doctor's findings (id, severity, title)",
		findings: true,
		fields:   Row{"id": "", "severity": "", "title": "", "summary": "", "rank": 0},
		key:      []string{"id"},
		rows: func(in *Input) []Row {
			var out []Row
			for _, f := range in.Findings {
				out = append(out, Row{"id": f.ID, "severity": f.Severity, "title": f.Title, "summary": f.Summary, "rank": severityRank(f.Severity)})
			}
			return out
		},
	}}
}

// cgroupRow is one row of the cgroups table.
func cgroupRow(c *snapshot.Cgroup) Row {
	opt := func(p *uint64) int {
		if p == nil {
			return -1
		}
		return clampInt(*p)
	}
	zero := func(p *uint64) int {
		if p == nil {
			return 0
		}
		return clampInt(*p)
	}
	container := ""
	if c.Container != nil {
		container = c.Container.Runtime + ":" + c.Container.ID
	}
	pp, _ := c.PidsPercent()
	mp, _ := c.MemoryPercent()
	return Row{"path": c.Path, "unit": c.Unit, "container": container, "limited": c.Limited(),
		"processes": c.Processes, "threads": c.Threads,
		"pids_current": zero(c.PidsCurrent), "pids_max": opt(c.PidsMax), "pids_percent": pp, "pids_events_max": zero(c.PidsEventsMax),
		"memory_current": zero(c.MemoryCurrent), "memory_max": opt(c.MemoryMax), "memory_high": opt(c.MemoryHigh),
		"memory_percent": mp, "working_set": clampInt(c.WorkingSet()), "oom_kill": zero(c.OOMKill),
		"memory_events_max": clampInt(c.MemoryEvents["max"]), "memory_events_high": clampInt(c.MemoryEvents["high"]),
		"memory_failcnt":    zero(c.MemoryFailcnt),
		"psi_memory_some10": c.Pressure["memory"].SomeAvg10, "psi_memory_full10": c.Pressure["memory"].FullAvg10,
		"cpu_throttled_usec": clampInt(c.CPUStat["throttled_usec"]), "frozen": c.Frozen}
}

// kernelLogRows is the kernel_log table. age is the seconds since the
// kind's last message at the snapshot's time, -1 when there was none;
// uid is -1 when the message names none.
func kernelLogRows(in *Input) []Row {
	s := in.Snapshot
	l := s.KernelLog
	if l == nil {
		return nil
	}
	out := make([]Row, 0, len(l.Kinds))
	for _, k := range l.Kinds {
		age, level := -1.0, 0
		if !k.Last.IsZero() {
			age = s.Time.Sub(k.Last).Seconds()
		}
		if n := len(k.Recent); n > 0 {
			level = k.Recent[n-1].Level
		}
		f := k.Fields
		out = append(out, Row{"kind": k.Kind, "finding": firstOr(k.Findings), "count": clampInt(k.Count), "last_hour": k.LastHour,
			"age": age, "level": level, "message": k.Message, "pid": f.PID, "comm": f.Comm, "uid": uidOr(f.UID),
			"cgroup": f.Cgroup, "oom_cgroup": f.OOMCgroup, "port": f.Port, "readable": l.Available})
	}
	return out
}

// kernelMessageRow is one row of kernel_messages. earlier_run is true for
// a message an earlier run of picket run read (and reported) before a
// restart: `if: age < 600 && !earlier_run` reports each message once.
func kernelMessageRow(s *snapshot.Snapshot, finding string, m snapshot.KernelMessage) Row {
	age, at := 0.0, 0
	if !m.Time.IsZero() {
		age, at = s.Time.Sub(m.Time).Seconds(), int(m.Time.Unix())
	}
	f := m.Fields
	order := -1
	if f.Order != nil {
		order = *f.Order
	}
	return Row{"seq": clampInt(m.Seq), "kind": m.Kind, "finding": finding, "age": age, "time": at, "level": m.Level,
		"message": m.Text, "pid": f.PID, "comm": f.Comm, "uid": uidOr(f.UID), "cgroup": f.Cgroup, "oom_cgroup": f.OOMCgroup,
		"memcg": f.Memcg, "port": f.Port, "addr": f.Addr, "action": f.Action, "order": order, "seconds": f.Seconds,
		"limit": int(f.Limit), "table": f.Table, "earlier_run": false}
}

func firstOr(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func uidOr(u *uint32) int {
	if u == nil {
		return -1
	}
	return int(*u)
}

// severityRank orders severities for conditions: ok 0, unknown 1, warning
// 2, critical 3 (so `rank >= 2` means warning or worse).
func severityRank(s string) int {
	switch s {
	case "unknown":
		return 1
	case "warning":
		return 2
	case "critical":
		return 3
	}
	return 0
}

func kernelRow(s *snapshot.Snapshot) Row {
	k := s.Kernel
	r := Row{
		"orphans": 0, "tcp_inuse": 0, "tcp_tw": 0, "tcp_alloc": 0, "tcp_mem_pages": 0, "udp_inuse": 0, "sockets_used": 0,
		"tcp_max_orphans": int(k.TCPMaxOrphans), "tcp_mem_low": 0, "tcp_mem_pressure": 0, "tcp_mem_high": 0,
		"file_allocated": 0, "file_max": 0, "nr_open": int(k.NrOpen),
		"processes": s.Processes.Total, "threads": s.Processes.Threads, "pid_max": int(k.PidMax), "threads_max": int(k.ThreadsMax),
		"conntrack_count": 0, "conntrack_max": 0, "page_size": k.PageSize,
		"mem_total": int(s.Memory.MemTotalBytes), "mem_available": memAvailable(s.Memory),
		"swap_total": int(s.Memory.SwapTotalBytes), "swap_free": int(s.Memory.SwapFreeBytes),
		"sockets_tcp": s.Sockets.Totals.TCP, "sockets_non_tcp": s.Sockets.Totals.NonTCP(),
		"sockets_udp": s.Sockets.Totals.UDP, "sockets_unix": s.Sockets.Totals.Unix,
	}
	r["orphans_x2"], r["orphans_x4"] = 0, 0
	if st := k.Sockstat; st != nil {
		r["orphans"], r["tcp_inuse"], r["tcp_tw"], r["tcp_alloc"], r["tcp_mem_pages"] = st.TCP.Orphan, st.TCP.Inuse, st.TCP.TW, st.TCP.Alloc, st.TCP.MemPages
		// tcp_too_many_orphans() shifts the count by 1 or 2 for penalized
		// sockets ("Out of socket memory"): these are the numbers it compares.
		r["orphans_x2"], r["orphans_x4"] = st.TCP.Orphan<<1, st.TCP.Orphan<<2
		r["udp_inuse"], r["sockets_used"] = st.UDP.Inuse, st.SocketsUsed
		if st.TCP.NoMem {
			r["tcp_mem_pages"] = nil // not printed: unknown, not 0
		}
	}
	if len(k.TCPMemPages) == 3 {
		r["tcp_mem_low"], r["tcp_mem_pressure"], r["tcp_mem_high"] = int(k.TCPMemPages[0]), int(k.TCPMemPages[1]), int(k.TCPMemPages[2])
	}
	if k.FileNr != nil {
		r["file_allocated"], r["file_max"] = int(k.FileNr.Allocated), int(k.FileNr.Max)
	}
	if k.Conntrack != nil {
		r["conntrack_count"], r["conntrack_max"] = int(k.Conntrack.Count), int(k.Conntrack.Max)
	}
	for _, res := range []string{"memory", "cpu", "io"} {
		p, ok := s.Memory.PSI[res]
		if !ok {
			// No PSI on this kernel (before 4.20, or psi=0): unknown, so a
			// rule on it skips the look instead of reading 0 as calm.
			r["psi_"+res+"_some10"], r["psi_"+res+"_full10"], r["psi_"+res+"_some60"], r["psi_"+res+"_full60"] = nil, nil, nil, nil
			continue
		}
		r["psi_"+res+"_some10"], r["psi_"+res+"_full10"] = p.SomeAvg10, p.FullAvg10
		r["psi_"+res+"_some60"], r["psi_"+res+"_full60"] = p.SomeAvg60, p.FullAvg60
	}
	for _, v := range []string{"pswpin", "pswpout", "pgmajfault", "oom_kill"} {
		r[v] = clampInt(s.Memory.VMStat[v])
	}
	// The counters behind the kernel's messages, since boot (0 when not
	// read): TcpExt and netfilter's per-CPU statistics.
	n := k.Netstat
	if n == nil {
		n = &snapshot.Netstat{}
	}
	r["tcp_abort_on_memory"], r["tcp_abort_on_timeout"] = clampInt(n.AbortOnMemory), clampInt(n.AbortOnTimeout)
	r["listen_overflows"], r["listen_drops"] = clampInt(n.ListenOverflows), clampInt(n.ListenDrops)
	r["tcp_time_wait_overflow"] = clampInt(n.TimeWaitOverflow)
	ct := k.ConntrackStat
	if ct == nil {
		ct = &snapshot.ConntrackStat{}
	}
	r["conntrack_drop"], r["conntrack_early_drop"] = clampInt(ct.Drop), clampInt(ct.EarlyDrop)
	// The soonest host limit's time to exhaustion (pid_max, threads-max,
	// file-max, tcp_max_orphans, tcp_mem, nf_conntrack_max), and which.
	eta := newETAs(s)
	r["eta_seconds"], r["eta_limit"] = eta.host, eta.limit
	return r
}

// kernelFields are the kernel table's fields with a sample value of each
// type (a host with PSI), for type-checking expressions.
func kernelFields() Row {
	all := map[string]snapshot.PSI{"memory": {}, "cpu": {}, "io": {}}
	return kernelRow(&snapshot.Snapshot{Memory: snapshot.Memory{PSI: all}})
}

// knownFDs is a process's fd count, or nil (unknown) when its /proc/PID/fd
// could not be read: -1 is not a number of fds.
func knownFDs(n int) any {
	if n < 0 {
		return nil
	}
	return n
}

// memAvailable is MemAvailable, the kernel's or picket's estimate of it
// (kernels before 3.14), or nil when neither could be had.
func memAvailable(m snapshot.Memory) any {
	if m.MemAvailableSource == snapshot.MemAvailableUnknown {
		return nil
	}
	return int(m.MemAvailableBytes)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func clampInt(v uint64) int {
	if v > 1<<62 {
		return 1 << 62
	}
	return int(v)
}

// rowKey identifies a row across evaluations.
func (t *table) rowKey(r Row) string {
	if len(t.key) == 0 {
		return t.name
	}
	parts := make([]string, len(t.key))
	for i, k := range t.key {
		parts[i] = fmt.Sprintf("%s=%v", k, r[k])
	}
	return strings.Join(parts, " ")
}

// fieldList documents a table's fields for error messages.
func (t *table) fieldList() string {
	names := make([]string, 0, len(t.fields))
	for k := range t.fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
