package doctor

import (
	"fmt"
	"sort"
	"strings"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// CgroupLimits is the beancounters check of today's servers: a systemd
// unit at its TasksMax= (pids.max), a container at its memory.max, a slice
// whose OOM kills climb. The pids controller refuses a fork that would take
// a cgroup or any cgroup above it past pids.max (pids_try_charge() in
// kernel/cgroup/pids.c): fork() and clone() fail with EAGAIN, the kernel
// logs "fork rejected by pids controller in PATH" only the first time per
// cgroup, and pids.events' max counts every refusal. The memory controller
// throttles and reclaims a cgroup above memory.high
// (mem_cgroup_handle_over_high()), reclaims at memory.max and, when that
// fails, OOM-kills inside the cgroup (mem_cgroup_out_of_memory() in
// mm/memcontrol.c); memory.events counts each, and v1 counts charges that
// hit the limit in memory.failcnt. A cgroup near a limit is graded by the
// limit percentages; a refusal since the previous look is critical (forks,
// OOM kills) or a warning (reclaim at max, v1 failcnt); refusals counted
// before, with no previous look to compare, are a warning.
type CgroupLimits struct{}

func (CgroupLimits) ID() string { return "cgroup-limits" }

// CgroupRow is one cgroup that needs attention.
type CgroupRow struct {
	Path           string  `json:"path"`
	Unit           string  `json:"unit,omitempty"`
	UserUnitOf     string  `json:"user_unit_of,omitempty"`
	Container      string  `json:"container,omitempty"` // runtime:id
	Severity       string  `json:"severity"`
	PidsCurrent    *uint64 `json:"pids_current,omitempty"`
	PidsMax        *uint64 `json:"pids_max,omitempty"`
	PidsPercent    float64 `json:"pids_percent"`
	MemoryWorking  uint64  `json:"memory_working_set"`
	MemoryLimit    *uint64 `json:"memory_limit,omitempty"` // memory.max, else memory.high
	MemoryLimitIs  string  `json:"memory_limit_is,omitempty"`
	MemoryPercent  float64 `json:"memory_percent"`
	PidsEventsMax  uint64  `json:"pids_events_max"`
	OOMKill        uint64  `json:"oom_kill"`
	MemoryEventMax uint64  `json:"memory_events_max"`
	Failcnt        uint64  `json:"memory_failcnt"`
	// The increases since the previous look; absent with one snapshot.
	ForksRefused     *uint64 `json:"forks_refused_delta,omitempty"`
	OOMKillDelta     *uint64 `json:"oom_kill_delta,omitempty"`
	MemoryMaxDelta   *uint64 `json:"memory_events_max_delta,omitempty"`
	FailcntDelta     *uint64 `json:"memory_failcnt_delta,omitempty"`
	Processes        int     `json:"processes"`
	TopCommands      string  `json:"top_commands"` // "apache2×20, sh×1"
	topComms         []string
	sev              Severity
	nearPids, nearMe bool
}

// CgroupRows is a table of cgroups.
type CgroupRows []CgroupRow

func (CgroupRows) Columns() []string {
	return []string{"SEVERITY", "TASKS/MAX", "MEMORY/LIMIT", "+FORKS REFUSED", "+OOM KILLS", "+AT MAX", "UNIT", "CGROUP", "COMMANDS"}
}

func (r CgroupRows) Cells() [][]string {
	out := make([][]string, len(r))
	delta := func(d *uint64, total uint64) string {
		if d == nil {
			return itoa(total) + " (total)"
		}
		return "+" + itoa(*d)
	}
	for i, c := range r {
		tasks, mem := "-", "-"
		if c.PidsMax != nil && c.PidsCurrent != nil {
			tasks = fmt.Sprintf("%d/%d %s%%", *c.PidsCurrent, *c.PidsMax, ftoa(c.PidsPercent))
		}
		if c.MemoryLimit != nil {
			mem = fmt.Sprintf("%s/%s %s%%", snapshot.HumanBytes(c.MemoryWorking), snapshot.HumanBytes(*c.MemoryLimit), ftoa(c.MemoryPercent))
		}
		atMax := delta(c.MemoryMaxDelta, c.MemoryEventMax)
		if c.Failcnt > 0 || c.FailcntDelta != nil && *c.FailcntDelta > 0 {
			atMax = delta(c.FailcntDelta, c.Failcnt) + " failcnt"
		}
		unit := c.Unit
		if unit == "" {
			unit = "-"
		}
		out[i] = []string{c.Severity, tasks, mem, delta(c.ForksRefused, c.PidsEventsMax), delta(c.OOMKillDelta, c.OOMKill),
			atMax, unit, c.Path, c.TopCommands}
	}
	return out
}

func (CgroupLimits) Run(in Input) Finding {
	s := in.Cur
	t := in.Thresholds
	if e, ok := s.SourceError(snapshot.SourceCgroups); ok && len(s.Cgroups) == 0 {
		return unknownFinding("the cgroup hierarchies could not be read", "The cgroups under /sys/fs/cgroup could not be read: "+term.Escape(e), Evidence{})
	}
	if s.CgroupLayout == nil {
		return Finding{Severity: OK, Title: "no cgroup hierarchy mounted", Evidence: Evidence{{"mode", "none"}},
			Explanation: "No cgroup filesystem is mounted (or this snapshot predates picket's cgroup support), so no cgroup limit can refuse anything."}
	}
	prev := map[string]*snapshot.Cgroup{}
	if in.Prev != nil {
		for i := range in.Prev.Cgroups {
			prev[in.Prev.Cgroups[i].Path] = &in.Prev.Cgroups[i]
		}
	}
	rows := CgroupRows{}
	limited := 0
	for i := range s.Cgroups {
		c := &s.Cgroups[i]
		if c.Limited() {
			limited++
		}
		if r, ok := cgroupRow(c, prev, in.Prev != nil, t); ok {
			rows = append(rows, r)
		}
	}
	sev := OK
	for _, r := range rows {
		sev = worse(sev, r.sev)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].sev != rows[j].sev {
			return rows[i].sev > rows[j].sev
		}
		return max(rows[i].PidsPercent, rows[i].MemoryPercent) > max(rows[j].PidsPercent, rows[j].MemoryPercent)
	})
	if len(rows) > t.Top {
		rows = rows[:t.Top]
	}
	commands(s, rows)

	ev := Evidence{}
	ev.Add("mode", s.CgroupLayout.Mode)
	ev.Add("cgroups", len(s.Cgroups))
	ev.Add("limited", limited)
	ev.Add("partial", s.CgroupLayout.Partial)
	ev.Add("warn_percent", t.LimitWarnPercent)
	ev.Add("critical_percent", t.LimitCritPercent)
	ev.Add("rows", rows)

	f := Finding{Severity: sev, Evidence: ev, Metrics: cgroupMetrics(s, prev, in.Prev != nil, limited, t)}
	if len(rows) == 0 {
		f.Title = fmt.Sprintf("%d cgroups with a limit, none near it, nothing refused", limited)
		if limited == 0 {
			f.Title = fmt.Sprintf("%d cgroups, none with a pids or memory limit", len(s.Cgroups))
		}
	} else {
		f.Title = rowTitle(rows[0])
		if len(rows) > 1 {
			f.Title += fmt.Sprintf(", and %d more %s", len(rows)-1, plural(len(rows)-1, "cgroup", "cgroups"))
		}
	}
	what := "A cgroup is what a systemd unit, a container or a Kubernetes pod runs in, and its limits are today's " +
		"beancounters. At pids.max (systemd's TasksMax=, by default 15% of the host's pid limit for a service, " +
		"33% for a user's slice) the pids controller refuses fork() and clone() with EAGAIN, in that cgroup and " +
		"every one below it (pids_try_charge() in kernel/cgroup/pids.c); the kernel logs \"cgroup: fork rejected by " +
		"pids controller in PATH\" only the first time, pids.events' max counts them all. Above memory.high " +
		"(MemoryHigh=) the kernel throttles the cgroup's allocations and reclaims; at memory.max (MemoryMax=) it " +
		"reclaims, and when that fails the OOM killer kills a process inside the cgroup, counted in memory.events' " +
		"oom_kill (v1: memory.oom_control, and memory.failcnt for charges that hit the limit). The working set " +
		"graded here is memory.current less inactive file cache, which the kernel can drop."
	var here []string
	for i, r := range rows {
		if i >= 3 {
			break
		}
		here = append(here, rowSentence(r))
	}
	now := ""
	if len(here) > 0 {
		now = "Here: " + strings.Join(here, "; ") + "."
		if in.Prev == nil {
			now += " With one snapshot the counters are totals since each cgroup was created: run with --interval to see whether refusals are happening now."
		}
	}
	if s.CgroupLayout.Partial {
		now += " This was a light look: only cgroups found with a limit at the last full look were read."
	}
	f.Explanation = paragraphs(what, now)
	if sev == OK {
		return f
	}
	var fix []string
	var comms []string
	for i, r := range rows {
		if i >= 3 || r.sev == OK {
			break
		}
		fix = appendNew(fix, cgroupFix(r)...)
		comms = append(comms, r.topComms...)
	}
	if sf := serviceFix(comms...); len(sf) > 0 {
		fix = append(fix, "# or lower the service's own process limit, so it stays under the cgroup's:")
		fix = append(fix, sf...)
	}
	f.Fix = fix
	return f
}

// cgroupMetrics are the numbers the verdict is graded on, each the worst
// over every cgroup (so they grade as the rows do): the highest share of
// pids.max, of memory.max and of memory.high alone (a warning at most), and
// the refusals — since the previous look (forks and OOM kills critical,
// reclaim at max and v1 failcnt a warning) or, with one look, in total (a
// warning).
func cgroupMetrics(s *snapshot.Snapshot, prev map[string]*snapshot.Cgroup, havePrev bool, limited int, t Thresholds) []Metric {
	var pidsPct, memPct, highPct float64
	var forks, ooms, atMax, failcnt uint64
	for i := range s.Cgroups {
		c := &s.Cgroups[i]
		if p, ok := c.PidsPercent(); ok {
			pidsPct = max(pidsPct, p)
		}
		if p, ok := c.MemoryPercent(); ok {
			if c.MemoryMax != nil {
				memPct = max(memPct, p)
			} else {
				highPct = max(highPct, p)
			}
		}
		f, o, fc := c.Refusals()
		m := c.MemoryEvents["max"]
		if havePrev {
			p := prev[c.Path]
			if p == nil {
				continue
			}
			pf, po, pfc := p.Refusals()
			pm := p.MemoryEvents["max"]
			forks, ooms, atMax, failcnt = forks+sub(f, pf), ooms+sub(o, po), atMax+sub(m, pm), failcnt+sub(fc, pfc)
			continue
		}
		forks, ooms, failcnt = forks+f, ooms+o, failcnt+fc
	}
	warn, crit := atLeast(t.LimitWarnPercent), atLeast(t.LimitCritPercent)
	pm, mm, hm := percentMetric("pids_percent", pidsPct), percentMetric("memory_percent", memPct), percentMetric("memory_high_percent", highPct)
	pm.Warn, pm.Crit, mm.Warn, mm.Crit, hm.Warn = warn, crit, warn, crit, warn
	ms := []Metric{pm, mm, hm}
	counter := func(label string, v uint64, warn, crit *Range) Metric {
		return Metric{Label: label, Value: float64(v), UOM: "c", Min: bound(0), Warn: warn, Crit: crit}
	}
	if havePrev {
		ms = append(ms, counter("forks_refused", forks, nil, above(0)), counter("oom_kills", ooms, nil, above(0)),
			counter("memory_max_events", atMax, above(0), nil), counter("memory_failcnt", failcnt, above(0), nil))
	} else {
		ms = append(ms, counter("forks_refused_total", forks, above(0), nil), counter("oom_kills_total", ooms, above(0), nil),
			counter("memory_failcnt_total", failcnt, above(0), nil))
	}
	return append(ms, gauge("cgroups", float64(len(s.Cgroups)), 0), gauge("limited", float64(limited), 0))
}

func sub(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

// cgroupRow grades one cgroup; ok is false when it needs no attention.
func cgroupRow(c *snapshot.Cgroup, prev map[string]*snapshot.Cgroup, havePrev bool, t Thresholds) (CgroupRow, bool) {
	r := CgroupRow{Path: c.Path, Unit: c.Unit, UserUnitOf: c.UserUnitOf, PidsCurrent: c.PidsCurrent, PidsMax: c.PidsMax,
		MemoryWorking: c.WorkingSet(), Processes: c.Processes}
	if c.Container != nil && c.Container.ID != "" {
		r.Container = c.Container.Runtime + ":" + c.Container.ID
	}
	r.PidsEventsMax, r.OOMKill, r.Failcnt = c.Refusals()
	r.MemoryEventMax = c.MemoryEvents["max"]
	if p, ok := c.PidsPercent(); ok {
		r.PidsPercent = round1(p)
		if l := gradePercent(p, t); l != OK {
			r.sev, r.nearPids = worse(r.sev, l), true
		}
	}
	if p, ok := c.MemoryPercent(); ok {
		r.MemoryPercent = round1(p)
		r.MemoryLimit, r.MemoryLimitIs = c.MemoryMax, "memory.max"
		if c.MemoryMax == nil {
			r.MemoryLimit, r.MemoryLimitIs = c.MemoryHigh, "memory.high"
		}
		if l := gradePercent(p, t); l != OK {
			if c.MemoryMax == nil {
				l = Warning // at memory.high the kernel throttles; nothing is killed
			}
			r.sev, r.nearMe = worse(r.sev, l), true
		}
	}
	if havePrev {
		p := prev[c.Path]
		var pf, po, pfc uint64
		var pm uint64
		if p != nil {
			pf, po, pfc = p.Refusals()
			pm = p.MemoryEvents["max"]
		}
		d := func(now, before uint64) *uint64 {
			v := uint64(0)
			if now > before && p != nil { // a cgroup new since the last look: its counts are its own, not "now"
				v = now - before
			}
			return &v
		}
		r.ForksRefused, r.OOMKillDelta, r.MemoryMaxDelta, r.FailcntDelta = d(r.PidsEventsMax, pf), d(r.OOMKill, po), d(r.MemoryEventMax, pm), d(r.Failcnt, pfc)
		if *r.ForksRefused > 0 || *r.OOMKillDelta > 0 {
			r.sev = Critical
		}
		if *r.MemoryMaxDelta > 0 || *r.FailcntDelta > 0 {
			r.sev = worse(r.sev, Warning)
		}
	} else if r.PidsEventsMax+r.OOMKill+r.Failcnt > 0 {
		r.sev = worse(r.sev, Warning)
	}
	r.Severity = r.sev.String()
	return r, r.sev != OK
}

func gradePercent(p float64, t Thresholds) Severity {
	switch {
	case p >= t.LimitCritPercent:
		return Critical
	case p >= t.LimitWarnPercent:
		return Warning
	}
	return OK
}

// commands fills each row's heaviest commands from the process list: the
// processes in the cgroup and below it.
func commands(s *snapshot.Snapshot, rows CgroupRows) {
	if len(rows) == 0 {
		return
	}
	counts := make([]map[string]int, len(rows))
	for i := range counts {
		counts[i] = map[string]int{}
	}
	for _, p := range s.Processes.List {
		if p.Cgroup == "" {
			continue
		}
		for i, r := range rows {
			if p.Cgroup == r.Path || r.Path == "/" || strings.HasPrefix(p.Cgroup, r.Path+"/") {
				counts[i][p.Comm]++
			}
		}
	}
	for i := range rows {
		type cc struct {
			comm string
			n    int
		}
		var l []cc
		for c, n := range counts[i] {
			l = append(l, cc{c, n})
		}
		sort.Slice(l, func(a, b int) bool {
			if l[a].n != l[b].n {
				return l[a].n > l[b].n
			}
			return l[a].comm < l[b].comm
		})
		var parts []string
		for j, x := range l {
			if j >= 3 {
				break
			}
			parts = append(parts, fmt.Sprintf("%s×%d", x.comm, x.n))
			rows[i].topComms = append(rows[i].topComms, x.comm)
		}
		rows[i].TopCommands = strings.Join(parts, ", ")
	}
}

func rowName(r CgroupRow) string {
	if r.Unit != "" && strings.HasSuffix(r.Path, "/"+r.Unit) {
		return "unit " + term.Escape(r.Unit)
	}
	return "cgroup " + term.Escape(r.Path)
}

func rowTitle(r CgroupRow) string {
	var parts []string
	if r.ForksRefused != nil && *r.ForksRefused > 0 {
		parts = append(parts, fmt.Sprintf("refused %d forks at pids.max %d since the last look", *r.ForksRefused, *r.PidsMax0()))
	}
	if r.OOMKillDelta != nil && *r.OOMKillDelta > 0 {
		parts = append(parts, fmt.Sprintf("%d OOM kills since the last look", *r.OOMKillDelta))
	}
	if r.nearPids {
		parts = append(parts, fmt.Sprintf("%d of %d tasks (%s%% of pids.max)", *r.PidsCurrent, *r.PidsMax, ftoa(r.PidsPercent)))
	}
	if r.nearMe {
		parts = append(parts, fmt.Sprintf("%s of %s %s (%s%%)", snapshot.HumanBytes(r.MemoryWorking), r.MemoryLimitIs,
			snapshot.HumanBytes(*r.MemoryLimit), ftoa(r.MemoryPercent)))
	}
	if len(parts) == 0 {
		if r.PidsEventsMax > 0 {
			parts = append(parts, fmt.Sprintf("refused %d forks at pids.max since it was created", r.PidsEventsMax))
		}
		if r.OOMKill > 0 {
			parts = append(parts, fmt.Sprintf("%d OOM kills since it was created", r.OOMKill))
		}
		if r.Failcnt > 0 || (r.FailcntDelta != nil && *r.FailcntDelta > 0) {
			parts = append(parts, fmt.Sprintf("memory.failcnt %d", r.Failcnt))
		}
		if r.MemoryMaxDelta != nil && *r.MemoryMaxDelta > 0 {
			parts = append(parts, fmt.Sprintf("reclaimed at memory.max %d times since the last look", *r.MemoryMaxDelta))
		}
	}
	t := rowName(r) + " " + strings.Join(parts, ", ")
	if len(r.topComms) > 0 {
		t += " (" + term.Escape(r.topComms[0]) + ")"
	}
	return t
}

// PidsMax0 is pids.max, 0 when unlimited (an ancestor's limit refused).
func (r CgroupRow) PidsMax0() *uint64 {
	if r.PidsMax == nil {
		var z uint64
		return &z
	}
	return r.PidsMax
}

func rowSentence(r CgroupRow) string {
	s := rowName(r) + " runs " + itoa(r.Processes) + " " + plural(r.Processes, "process", "processes")
	if r.TopCommands != "" {
		s += " (" + term.Escape(r.TopCommands) + ")"
	}
	if r.PidsMax != nil && r.PidsCurrent != nil {
		s += fmt.Sprintf(", %d tasks against pids.max %d", *r.PidsCurrent, *r.PidsMax)
	}
	if r.MemoryLimit != nil {
		s += fmt.Sprintf(", a working set of %s against %s %s", snapshot.HumanBytes(r.MemoryWorking), r.MemoryLimitIs, snapshot.HumanBytes(*r.MemoryLimit))
	}
	if r.PidsEventsMax > 0 {
		s += fmt.Sprintf(", %d forks refused", r.PidsEventsMax)
		if r.ForksRefused != nil {
			s += fmt.Sprintf(" (%+d since the last look)", *r.ForksRefused)
		}
	}
	if r.OOMKill > 0 {
		s += fmt.Sprintf(", %d OOM kills", r.OOMKill)
		if r.OOMKillDelta != nil {
			s += fmt.Sprintf(" (%+d)", *r.OOMKillDelta)
		}
	}
	if r.Failcnt > 0 {
		s += fmt.Sprintf(", memory.failcnt %d", r.Failcnt)
	}
	return s
}

// safeCgroupPath: a path that can be pasted into a shell as it is
// (/[A-Za-z0-9._@:/-]*). Others (cgroups are named by whoever makes them)
// are not echoed into a fix. A loop, not a regexp compiled at start-up:
// every picket command links this package.
func safeCgroupPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("._@:/-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cgroupFix is the change that ends the row's trouble, in systemd's terms
// where the cgroup is a unit's. Only names that pass IsUnitName-like
// checks (no shell syntax) go into a command line.
func cgroupFix(r CgroupRow) []string {
	var fix []string
	unit := ""
	if r.Unit != "" && strings.HasSuffix(r.Path, "/"+r.Unit) && safeCgroupPath("/"+r.Unit) && !strings.HasPrefix(r.Unit, "-") {
		unit = r.Unit
	}
	var props []string
	if r.nearPids || (r.ForksRefused != nil && *r.ForksRefused > 0) || (r.ForksRefused == nil && r.PidsEventsMax > 0) {
		if r.PidsMax != nil {
			props = append(props, fmt.Sprintf("TasksMax=%d", readableCeil(int64(*r.PidsMax)*3/2)))
		}
	}
	if r.nearMe || (r.OOMKillDelta != nil && *r.OOMKillDelta > 0) || (r.OOMKillDelta == nil && r.OOMKill > 0) {
		if r.MemoryLimit != nil {
			key := "MemoryMax"
			if r.MemoryLimitIs == "memory.high" {
				key = "MemoryHigh"
			}
			props = append(props, fmt.Sprintf("%s=%dM", key, readableCeil(int64(*r.MemoryLimit>>20)*3/2)))
		}
	}
	switch {
	case r.Container != "" && strings.HasPrefix(r.Container, "docker:"):
		id := strings.TrimPrefix(r.Container, "docker:")
		fix = append(fix, fmt.Sprintf("docker stats --no-stream %s   # the container's use against its limits", id[:12]))
		if len(props) > 0 {
			fix = append(fix, fmt.Sprintf("# raise its limits: docker update --pids-limit N --memory SIZE %s (or in its compose file)", id[:12]))
		}
	case unit != "" && r.UserUnitOf != "":
		fix = append(fix, fmt.Sprintf("# %s is a unit of uid %s's user manager: as that user, systemctl --user status %s", unit, r.UserUnitOf, unit))
		if len(props) > 0 {
			fix = append(fix, fmt.Sprintf("# and: systemctl --user set-property %s %s", unit, strings.Join(props, " ")))
		}
	case unit != "":
		fix = append(fix, fmt.Sprintf("systemctl status %s   # Tasks: N (limit: M), Memory: ... (max: ...)", unit))
		if len(props) > 0 {
			fix = append(fix, fmt.Sprintf("systemctl set-property %s %s   # persistent (a drop-in); --runtime until reboot", unit, strings.Join(props, " ")),
				fmt.Sprintf("# or stop the growth for a while first: picket's limit action, {limit: {unit: %s, pids_max: current, for: 10m}}", unit))
		}
	case safeCgroupPath(r.Path) && r.Path != "/":
		fix = append(fix, fmt.Sprintf("picket snapshot --json | jq '.processes.list[] | select(.cgroup == \"%s\") | {pid, comm, user}'   # who runs there", r.Path))
		if len(props) > 0 {
			fix = append(fix, "# raise the limit where the cgroup is made (its service or runtime), or write pids.max / memory.max of "+r.Path)
		}
	default:
		fix = append(fix, "# the cgroup's name holds characters that are not pasted into a command: see the evidence's path")
	}
	return fix
}
