package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// The units and cgroups near a limit: systemd's "Tasks: 498 (limit: 512)"
// for every unit at once, with the limit as a bar, the nearest first.

// cgroupNear is where a cgroup earns a row: half its limit, or a refusal.
const cgroupNear = 50

// cgroupRowsMax bounds the section, so the tables keep their room.
const cgroupRowsMax = 5

// cgroupBar is one cgroup as a bar: its nearer limit (tasks or memory),
// and what it refused (forks at pids.max, OOM kills) as the failcnt.
func cgroupBar(c *snapshot.Cgroup) (bar, string) {
	label := c.Unit
	if label == "" || !strings.HasSuffix(c.Path, "/"+c.Unit) {
		label = c.Path
	}
	b := bar{label: term.Escape(label)}
	pp, okP := c.PidsPercent()
	mp, okM := c.MemoryPercent()
	what := ""
	switch {
	case okM && (!okP || mp > pp):
		lim := c.MemoryMax
		if lim == nil {
			lim = c.MemoryHigh
		}
		b.used, b.max, b.unit, what = int64(c.WorkingSet()), int64(*lim), 1, "memory"
	case okP:
		b.used, b.max, what = int64(*c.PidsCurrent), int64(*c.PidsMax), "tasks"
	}
	forks, ooms, _ := c.Refusals()
	b.failcnt = forks + ooms
	return b, what
}

// cgroupLines draws at most n rows of the cgroups near a limit, under a
// title; none when no cgroup with a limit is near it.
func cgroupLines(s *snapshot.Snapshot, n, width int, p palette) []line {
	near := snapshot.NearLimit(s.Cgroups, cgroupNear, 0)
	if len(near) == 0 || n <= 0 {
		return nil
	}
	title := line{}
	title.add(fmt.Sprintf("UNITS/CGROUPS NEAR A LIMIT  %d", len(near)), p.bold)
	if len(near) > n {
		title.add(fmt.Sprintf(" (the %d nearest; picket snapshot lists them)", n), p.dim)
		near = near[:n]
	}
	out := []line{title}
	lw := 0
	bars := make([]bar, len(near))
	whats := make([]string, len(near))
	for i, c := range near {
		bars[i], whats[i] = cgroupBar(c)
		lw = max(lw, ansi.StringWidth(bars[i].label))
	}
	lw = min(lw, max(width/3, 12))
	barW := min(max(width-lw-40, barMinW), barMaxW)
	for i, b := range bars {
		var l line
		sev := p.barStyle(b)
		// A path says most at its end (…/apache2.service): cut its start.
		l.add(pad(term.TruncateLeft(b.label, lw), lw, false)+" ", p.plain)
		fill := 0
		if b.max > 0 {
			fill = int(min(max(b.percent(), 0), 100)*float64(barW)/100 + 0.5)
		}
		if p.ascii {
			l.add("["+strings.Repeat("#", fill), sev)
			l.add(strings.Repeat(".", barW-fill)+"]", p.dim)
		} else {
			l.add(" "+strings.Repeat("█", fill), sev)
			l.add(strings.Repeat("░", barW-fill)+" ", p.dim)
		}
		pct := "   -"
		if b.max > 0 {
			pct = fmt.Sprintf("%3.0f%%", min(b.percent(), 999))
		}
		l.add(" "+pct, sev)
		v := " " + whats[i]
		if b.max > 0 {
			if b.unit > 0 {
				v += " " + compactBytes(b.used) + "/" + compactBytes(b.max)
			} else {
				v += " " + compactCount(b.used) + "/" + compactCount(b.max)
			}
		}
		forks, ooms, failcnt := near[i].Refusals()
		if forks > 0 {
			v += " forks refused " + compactCount(int64(forks))
		}
		if ooms > 0 {
			v += " oom kills " + compactCount(int64(ooms))
		}
		if failcnt > 0 {
			v += " failcnt " + compactCount(int64(failcnt))
		}
		l.add(v, p.plain)
		out = append(out, l)
	}
	return out
}
