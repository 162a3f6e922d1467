package doctor

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// MemoryThrashing tells a host that is swapping itself unresponsive (the
// thrashing web server of docs/stories.md: Apache children outgrowing RAM
// until not even `apache2 stop` could run) from one that merely uses its memory. The kernel's own measure is
// PSI (kernel/sched/psi.c): the share of the last 10 s in which some task,
// or every non-idle task at once ("full"), waited for memory. The vmstat
// counters pswpin/pswpout and pgmajfault, taken over the interval, show the
// mechanism: pages written out and read back again. Swap moving in both
// directions at once is thrashing; one direction alone is reclaim or
// recovery. Major faults grade the verdict only where PSI is missing (a
// cold page cache faults too, harmlessly).
type MemoryThrashing struct{}

func (MemoryThrashing) ID() string { return "memory-thrashing" }

// rate is a per-second counter rate over the interval; ok is false when it
// could not be measured (one snapshot, a counter missing or reset).
type rate struct {
	v  float64
	ok bool
}

func (r rate) value() any {
	if !r.ok {
		return nil
	}
	return math.Round(r.v*10) / 10
}

func vmstatRate(prev, cur *snapshot.Snapshot, key string, secs float64) rate {
	if prev == nil || secs <= 0 {
		return rate{}
	}
	a, okA := prev.Memory.VMStat[key]
	b, okB := cur.Memory.VMStat[key]
	if !okA || !okB || b < a {
		return rate{}
	}
	return rate{float64(b-a) / secs, true}
}

func (MemoryThrashing) Run(in Input) Finding {
	s := in.Cur
	t := in.Thresholds
	psi, hasPSI := s.Memory.PSI["memory"]
	el := in.elapsed()
	secs := el.Seconds()
	swapIn := vmstatRate(in.Prev, s, "pswpin", secs)
	swapOut := vmstatRate(in.Prev, s, "pswpout", secs)
	majflt := vmstatRate(in.Prev, s, "pgmajfault", secs)
	// Direct-reclaim stalls: one counter before 4.8 (allocstall), per zone
	// since (allocstall_normal is the zone that stalls on every host).
	stallKey := "allocstall_normal"
	if _, ok := s.Memory.VMStat["allocstall"]; ok {
		stallKey = "allocstall"
	}
	stalls := vmstatRate(in.Prev, s, stallKey, secs)
	var oomKills *uint64
	if in.Prev != nil {
		a, okA := in.Prev.Memory.VMStat["oom_kill"]
		b, okB := s.Memory.VMStat["oom_kill"]
		if okA && okB && b >= a {
			d := b - a
			oomKills = &d
		}
	}
	measured := swapIn.ok || swapOut.ok || majflt.ok

	ev := Evidence{}
	ev.Add("psi_available", hasPSI)
	if hasPSI {
		ev.Add("psi_some_avg10", psi.SomeAvg10)
		ev.Add("psi_full_avg10", psi.FullAvg10)
		ev.Add("psi_some_avg60", psi.SomeAvg60)
		ev.Add("psi_full_avg60", psi.FullAvg60)
	} else {
		ev.Add("psi_some_avg10", nil)
		ev.Add("psi_full_avg10", nil)
		ev.Add("psi_some_avg60", nil)
		ev.Add("psi_full_avg60", nil)
	}
	ev.Add("interval_seconds", math.Round(secs*1000)/1000)
	ev.Add("rates_measured", measured)
	ev.Add("swap_in_pages_per_second", swapIn.value())
	ev.Add("swap_out_pages_per_second", swapOut.value())
	ev.Add("major_faults_per_second", majflt.value())
	ev.Add("allocation_stalls_per_second", stalls.value())
	if hasPSI {
		ev.Add("graded_by", "psi")
	} else {
		ev.Add("graded_by", "vmstat rates (no PSI)")
	}
	if oomKills != nil {
		ev.Add("oom_kills", *oomKills)
	} else {
		ev.Add("oom_kills", nil)
	}
	m := s.Memory
	ev.Add("mem_total_bytes", m.MemTotalBytes)
	if m.MemAvailableSource == snapshot.MemAvailableUnknown {
		ev.Add("mem_available_bytes", nil)
	} else {
		ev.Add("mem_available_bytes", m.MemAvailableBytes)
	}
	if m.MemAvailableSource != "" {
		ev.Add("mem_available_source", m.MemAvailableSource)
	}
	ev.Add("swap_total_bytes", m.SwapTotalBytes)
	ev.Add("swap_used_bytes", m.SwapTotalBytes-min(m.SwapFreeBytes, m.SwapTotalBytes))

	var noRates string
	switch {
	case in.Prev == nil:
		noRates = "Only one snapshot was taken (--interval 0), so swap and fault rates were not measured."
	case !measured:
		noRates = "/proc/vmstat could not be compared between the two snapshots (missing, or its counters went back)."
	}
	if !hasPSI && !measured {
		why := "There is no /proc/pressure/memory (a kernel without CONFIG_PSI, or booted with psi=0). " + noRates +
			" Run picket doctor with --interval 1s or more to measure the rates."
		if e, ok := s.SourceError(snapshot.SourcePSI); ok {
			why += " " + term.Escape(e)
		}
		return unknownFinding("no PSI and no rates: thrashing cannot be measured", why, ev)
	}

	sev := OK
	var reasons []string
	if hasPSI {
		switch {
		case psi.FullAvg10 >= t.PSIFullCrit || psi.SomeAvg10 >= t.PSISomeCrit:
			sev = Critical
		case psi.FullAvg10 >= t.PSIFullWarn || psi.SomeAvg10 >= t.PSISomeWarn:
			sev = Warning
		}
		if sev != OK {
			reasons = append(reasons, fmt.Sprintf("tasks waited for memory %.1f%% of the last 10 s, all of them at once %.1f%%", psi.SomeAvg10, psi.FullAvg10))
		}
	}
	if swapIn.ok && swapOut.ok {
		both := min(swapIn.v, swapOut.v)
		l := OK
		switch {
		case both >= t.SwapCritPages:
			l = Critical
		case both >= t.SwapWarnPages:
			l = Warning
		}
		if l != OK {
			sev = worse(sev, l)
			reasons = append(reasons, fmt.Sprintf("%.0f pages/s swapped in and %.0f out at the same time", swapIn.v, swapOut.v))
		}
	}
	if !hasPSI && majflt.ok {
		l := OK
		switch {
		case majflt.v >= t.MajfaultCrit:
			l = Critical
		case majflt.v >= t.MajfaultWarn:
			l = Warning
		}
		if l != OK {
			sev = worse(sev, l)
			reasons = append(reasons, fmt.Sprintf("%.0f major faults/s", majflt.v))
		}
	}
	if oomKills != nil && *oomKills > 0 {
		sev = worse(sev, Warning)
		reasons = append(reasons, fmt.Sprintf("the OOM killer killed %d %s during the interval", *oomKills, plural(int(*oomKills), "process", "processes")))
	}

	f := Finding{Severity: sev, Evidence: ev, Metrics: thrashingMetrics(t, hasPSI, psi, swapIn, swapOut, majflt, oomKills, m)}
	var growth GrowthRows
	if sev != OK {
		growth = growingGroups(in.Prev, s, min(t.Top, 5))
		if in.Prev != nil {
			ev.Add("growing_groups", growth)
		} else {
			ev.Add("largest_groups", growth)
		}
		f.Evidence = ev
	}
	switch {
	case sev == OK && hasPSI:
		f.Title = fmt.Sprintf("no memory stall: PSI some %.1f%%, full %.1f%% (avg10)", psi.SomeAvg10, psi.FullAvg10)
		if swapIn.ok && swapOut.ok {
			f.Title += fmt.Sprintf("; swap %.0f in, %.0f out pages/s", swapIn.v, swapOut.v)
		}
	case sev == OK:
		f.Title = fmt.Sprintf("no thrashing: swap %.0f in, %.0f out pages/s, %.0f major faults/s (vmstat rates: no PSI)", swapIn.v, swapOut.v, majflt.v)
	default:
		f.Title = "thrashing: " + reasons[0]
		if len(growth) > 0 && growth[0].RSSDeltaBytes != nil && *growth[0].RSSDeltaBytes > 0 {
			g := growth[0]
			f.Title += fmt.Sprintf("; %s × %s grew %+d processes, %s", term.Escape(g.User), term.Escape(g.Comm), *g.CountDelta, signedBytes(*g.RSSDeltaBytes))
		}
		if !hasPSI {
			f.Title += " (vmstat rates: no PSI)"
		}
	}

	what := "When the working set no longer fits in RAM the kernel evicts pages that are needed again at once: anonymous " +
		"pages go to swap and come back (pswpout, pswpin), file pages are dropped and read again (major faults). Everything " +
		"waits on the disk; PSI's memory line (Documentation/accounting/psi.rst) measures that waiting as a share of wall " +
		"time, \"some\" when at least one task waits and \"full\" when every non-idle task does, so no work gets done. The OOM " +
		"killer acts only when reclaim fails outright, so a thrashing host can stay unusable for many minutes, " +
		"as a web server whose Apache was restarted with more children than RAM could hold, where even `apache2 stop` could not complete."
	var now string
	if len(reasons) > 0 {
		now = "Here " + strings.Join(reasons, "; ") + "."
	} else {
		now = "Here nothing waits on memory."
	}
	var who string
	if len(growth) > 0 {
		g := growth[0]
		verb := "is the largest group"
		if g.RSSDeltaBytes != nil && *g.RSSDeltaBytes > 0 {
			verb = fmt.Sprintf("grew fastest (%+d processes, %s over %.1f s)", *g.CountDelta, signedBytes(*g.RSSDeltaBytes), secs)
		}
		who = fmt.Sprintf("%s × %s %s: %d %s averaging %s resident.", term.Escape(g.User), term.Escape(g.Comm), verb, g.Count,
			plural(g.Count, "process", "processes"), snapshot.HumanBytes(g.AvgRSSBytes))
		if g.Count > 1 {
			who += " Set the service's worker limit so that workers × the memory of one fit in RAM with room for " +
				"everything else; while the host thrashes, part of each worker is in swap and the resident size " +
				"understates it, so measure one when the host is calm."
		}
	}
	var noPSI string
	if !hasPSI {
		noPSI = "This kernel has no PSI (/proc/pressure/memory is missing: Linux before 4.20, a kernel built without " +
			"CONFIG_PSI, or booted with psi=0), so the verdict rests on /proc/vmstat rates alone: swap in and out, major " +
			"faults"
		if stalls.ok {
			noPSI += fmt.Sprintf(" and allocation stalls (%.1f/s, direct reclaim)", stalls.v)
		}
		noPSI += ". They show the mechanism, not how long tasks waited for memory."
	}
	f.Explanation = paragraphs(what, now, who, noPSI, noRates)
	if sev == OK {
		return f
	}
	var comms []string
	for i, g := range growth {
		if i >= 2 {
			break
		}
		comms = append(comms, g.Comm)
		f.Fix = appendNew(f.Fix, psLine(g.ParentPID, g.UID))
	}
	f.Fix = append(f.Fix, "# first stop new work from reaching the service (firewall its port, or stop its accept queue), then stop or shrink it")
	f.Fix = append(f.Fix, serviceFix(comms...)...)
	f.Fix = append(f.Fix, "# earlyoom or systemd-oomd end thrashing sooner than the kernel's OOM killer: they act on PSI and free memory")
	return f
}

// thrashingMetrics grade as the verdict does: PSI's shares against their
// levels, swap in both directions at once, major faults only without PSI,
// and any OOM kill. Rates that were not measured are left out.
func thrashingMetrics(t Thresholds, hasPSI bool, psi snapshot.PSI, swapIn, swapOut, majflt rate, oomKills *uint64, m snapshot.Memory) []Metric {
	var out []Metric
	if hasPSI {
		some, full := percentMetric("psi_some_avg10", psi.SomeAvg10), percentMetric("psi_full_avg10", psi.FullAvg10)
		some.Warn, some.Crit = atLeast(t.PSISomeWarn), atLeast(t.PSISomeCrit)
		full.Warn, full.Crit = atLeast(t.PSIFullWarn), atLeast(t.PSIFullCrit)
		out = append(out, some, full, percentMetric("psi_some_avg60", psi.SomeAvg60), percentMetric("psi_full_avg60", psi.FullAvg60))
	}
	if swapIn.ok && swapOut.ok {
		both := gauge("swap_both_pages_per_second", min(swapIn.v, swapOut.v), 0)
		both.Warn, both.Crit = atLeast(t.SwapWarnPages), atLeast(t.SwapCritPages)
		out = append(out, both)
	}
	for _, r := range []struct {
		label string
		r     rate
	}{{"swap_in_pages_per_second", swapIn}, {"swap_out_pages_per_second", swapOut}} {
		if r.r.ok {
			out = append(out, gauge(r.label, r.r.v, 0))
		}
	}
	if majflt.ok {
		mf := gauge("major_faults_per_second", majflt.v, 0)
		if !hasPSI {
			mf.Warn, mf.Crit = atLeast(t.MajfaultWarn), atLeast(t.MajfaultCrit)
		}
		out = append(out, mf)
	}
	if oomKills != nil {
		k := gauge("oom_kills", float64(*oomKills), 0)
		k.Warn = above(0)
		out = append(out, k)
	}
	if m.MemAvailableSource != snapshot.MemAvailableUnknown {
		out = append(out, Metric{Label: "mem_available", Value: float64(m.MemAvailableBytes), UOM: "B", Min: bound(0), Max: nonZero(m.MemTotalBytes)})
	}
	out = append(out,
		Metric{Label: "swap_used", Value: float64(m.SwapTotalBytes - min(m.SwapFreeBytes, m.SwapTotalBytes)), UOM: "B", Min: bound(0), Max: nonZero(m.SwapTotalBytes)})
	return out
}

func nonZero(v uint64) *float64 {
	if v == 0 {
		return nil
	}
	return bound(float64(v))
}

// growingGroups returns the user × command groups whose RSS grew most over
// the interval; with no previous snapshot, or when none grew, the largest.
func growingGroups(prev, cur *snapshot.Snapshot, n int) GrowthRows {
	type acc struct {
		g          snapshot.Group
		prevRSS    uint64
		prevCount  int
		deltaBytes int64
	}
	before := map[groupKey]snapshot.Group{}
	if prev != nil {
		for _, g := range prev.Processes.Groups {
			before[groupKey{g.UID, g.Comm}] = g
		}
	}
	list := make([]acc, 0, len(cur.Processes.Groups))
	grew := false
	for _, g := range cur.Processes.Groups {
		p := before[groupKey{g.UID, g.Comm}]
		a := acc{g: g, prevRSS: p.RSSBytes, prevCount: p.Count, deltaBytes: int64(g.RSSBytes) - int64(p.RSSBytes)}
		if prev != nil && a.deltaBytes > 0 {
			grew = true
		}
		list = append(list, a)
	}
	sort.SliceStable(list, func(i, j int) bool {
		if grew {
			return list[i].deltaBytes > list[j].deltaBytes
		}
		return list[i].g.RSSBytes > list[j].g.RSSBytes
	})
	if len(list) > n {
		list = list[:n]
	}
	keys := make([]groupKey, len(list))
	for i, a := range list {
		keys[i] = groupKey{a.g.UID, a.g.Comm}
	}
	det := groupDetails(cur, keys)
	out := GrowthRows{}
	for i, a := range list {
		if grew && a.deltaBytes <= 0 {
			break
		}
		r := GrowthRow{User: a.g.User, UID: a.g.UID, Comm: a.g.Comm, Count: a.g.Count, RSSBytes: a.g.RSSBytes,
			ParentPID: det[keys[i]].parentPID}
		if prev != nil {
			dc, db := a.g.Count-a.prevCount, a.deltaBytes
			r.CountDelta, r.RSSDeltaBytes = &dc, &db
		}
		if a.g.Count > 0 {
			r.AvgRSSBytes = a.g.RSSBytes / uint64(a.g.Count)
		}
		out = append(out, r)
	}
	return out
}
