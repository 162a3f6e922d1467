package tui

import (
	"cmp"
	"fmt"
	"github.com/picket-guard/picket/internal/forecast"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// Style chooses how a frame is drawn.
type Style struct {
	// Interactive draws the full-screen view: the focused table marked,
	// sort arrows, the key line at the bottom, the time without the date.
	Interactive bool
	// Color paints bars and verdicts with ANSI colours.
	Color bool
	// ASCII draws bars with # and . instead of block characters, for plain
	// text that may land in a log or a mail.
	ASCII bool
}

// KeyHelp documents the keys; `picket top --help` and the ? screen print it.
const KeyHelp = `Keys:
  q, Ctrl-C    quit
  ?            help (?, Esc or Enter closes it)
  /            filter both tables by a substring of user or command;
               Enter keeps it, Esc cancels, Ctrl-U clears
  Esc          clear the filter
  Tab          switch the table that sort and scroll keys act on
  K            show or hide kernel threads alone in their group (cpuhp/0,
               kauditd, kworker/…: hidden at first, as htop hides them)
  Up Down j k  scroll the table; PgUp PgDn Home End too
Sort the user × command table: c count, d change, t threads, r rss,
  u user, n command
Sort the socket holders: t total, d change, p pid, T tcp, U udp, x unix,
  o other, f fds, u user, n command
The same key again reverses the order. CHANGE is since the previous
refresh (blank until there is one); a group or holder that vanished shows
once with its loss. A beancounter's !N is its failcnt: allocations the
container was already refused.`

// Render draws one frame: at most width cells on each line, and at most
// height lines (0: as many as the tables need, each at most Top rows or
// 10). Lines are joined with "\n", without a trailing newline.
func (m *Model) Render(width, height int, st Style) string {
	return m.render(width, height, st, newPalette(st, nil))
}

func (m *Model) render(width, height int, st Style, p palette) string {
	if width < 1 {
		width = 1
	}
	var out []line
	if m.cur == nil {
		t := line{}
		t.add("picket top", p.bold)
		if m.err != "" {
			t.add(": "+m.err, p.crit)
		} else {
			t.add(": waiting for the first snapshot", p.plain)
		}
		out = append(out, t)
		return m.finish(out, width, height, st, p)
	}
	s := m.cur
	out = append(out, m.titleLine(s, st, p))

	// What is left for the tables decides how many limit rows fit.
	bars := limitBars(s)
	cols := barColumns(bars, width)
	rows := (len(bars) + cols - 1) / cols
	if height > 0 {
		maxRows := min(max((height-12)/3, 1), 6)
		if rows > maxRows {
			rows = maxRows
		}
	}
	out = append(out, barLines(bars, cols, rows, width, p)...)
	out = append(out, verdictLine(m.report, p))
	kernel := kernelLines(s, st, p)
	if height > 0 && len(kernel) > 1 && height < 24 {
		kernel = kernel[:1] // a small screen keeps its tables
	}
	out = append(out, kernel...)

	if m.help && st.Interactive {
		for _, h := range strings.Split(KeyHelp, "\n") {
			out = append(out, line{}.with(h, p.plain))
		}
		return m.finish(out, width, height, st, p)
	}

	cgRows := cgroupRowsMax
	if height > 0 {
		cgRows = min(cgRows, max((height-len(out)-10)/4, 1))
	}
	out = append(out, cgroupLines(s, cgRows, width, p)...)

	groups, holders := m.GroupRows(), m.HolderRows()
	nG, nH := m.Top, m.Top
	if height > 0 {
		avail := height - len(out) - 4 // two titles, two headers
		if st.Interactive {
			avail-- // the key line
		}
		nG, nH = share(avail, len(groups), len(holders), m.Top)
	} else if m.Top <= 0 {
		nG, nH = 10, 10
	}
	out = append(out, m.groupTable(groups, nG, width, st, p)...)
	out = append(out, m.holderTable(holders, nH, width, st, p)...)
	return m.finish(out, width, height, st, p)
}

// share splits avail rows between the tables: half each, and what one
// cannot use goes to the other. Each gets at least one row (for "none").
func share(avail, nGroups, nHolders, top int) (int, int) {
	if top > 0 {
		nGroups, nHolders = min(nGroups, top), min(nHolders, top)
	}
	nGroups, nHolders = max(nGroups, 1), max(nHolders, 1)
	avail = max(avail, 2)
	g := min(nGroups, (avail+1)/2)
	h := min(nHolders, avail-g)
	g = min(nGroups, avail-h)
	return g, h
}

// finish adds the key line and fits the frame into width × height.
func (m *Model) finish(out []line, width, height int, st Style, p palette) string {
	if st.Interactive {
		k := m.keyLine(p)
		if height > 0 {
			for len(out) < height-1 {
				out = append(out, line{}) // keep the key line at the bottom
			}
			out = out[:min(len(out), height-1)]
		}
		out = append(out, k)
	} else if m.err != "" && m.cur != nil {
		out = append(out, line{}.with("error: "+m.err, p.crit))
	}
	if height > 0 && len(out) > height {
		out = out[:height]
	}
	var b strings.Builder
	for i, l := range out {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l.render(width, p))
	}
	return b.String()
}

func (m *Model) titleLine(s *snapshot.Snapshot, st Style, p palette) line {
	var l line
	l.add("picket top", p.bold)
	l.add("  "+term.Escape(s.Host), p.bold)
	if st.Interactive {
		l.add("  "+s.Time.Local().Format("15:04:05"), p.plain)
	} else {
		l.add("  "+s.Time.Local().Format("2006-01-02 15:04:05Z07:00"), p.plain)
	}
	l.add(fmt.Sprintf("  %d procs  %d threads  %d sockets", s.Processes.Total, s.Processes.Threads, s.Sockets.Totals.Sum()), p.plain)
	if m.Interval > 0 && st.Interactive {
		l.add("  every "+m.Interval.String(), p.dim)
	}
	return l
}

func (m *Model) keyLine(p palette) line {
	var l line
	switch {
	case m.editing:
		l.add("filter: ", p.bold)
		l.add(term.Escape(m.filter), p.plain)
		l.add(p.cursor, p.plain)
		l.add("  Enter keep · Esc cancel · Ctrl-U clear", p.dim)
	case m.err != "":
		l.add("error: "+m.err, p.crit)
	default:
		l.add("q", p.bold)
		l.add(" quit  ", p.dim)
		l.add("?", p.bold)
		l.add(" help  ", p.dim)
		l.add("/", p.bold)
		l.add(" filter  ", p.dim)
		l.add("Tab", p.bold)
		l.add(" table  ", p.dim)
		if m.focus == Groups {
			l.add("c d t r u n", p.bold)
		} else {
			l.add("t d p T U x o f u n", p.bold)
		}
		l.add(" sort", p.dim)
		if m.Source != "" {
			l.add("  "+m.Source, p.dim)
		}
	}
	return l
}

// bar is one kernel limit on the header.
type bar struct {
	label   string
	used    int64
	max     int64
	unit    int64 // bytes per unit for a limit in pages; 0: a count
	failcnt uint64
	eta     float64 // seconds to the limit at its trend; 0: no trend
}

// etaCell is a time to exhaustion for a table, "-" without a trend.
func etaCell(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	return forecast.FormatETA(sec)
}

// barLimits are the forecast names of snapshot.Limits' host limits.
var barLimits = map[string]string{
	"tcp orphans (tcp_max_orphans)": forecast.TCPMaxOrphans,
	"tcp memory (tcp_mem[2])":       forecast.TCPMem,
	"open files (file-max)":         forecast.FileMax,
	"processes (pid_max)":           forecast.PidMax,
	"threads (threads-max)":         forecast.ThreadsMax,
	"conntrack (nf_conntrack_max)":  forecast.NfConntrackMax,
}

func (b bar) percent() float64 {
	if b.max <= 0 {
		return 0
	}
	return float64(b.used) * 100 / float64(b.max)
}

// Short labels for snapshot.Limits' names; a limit it adds later shows
// with its own name until it gets one here.
var barLabels = map[string]string{
	"tcp orphans (tcp_max_orphans)": "orphans",
	"tcp memory (tcp_mem[2])":       "tcp mem",
	"open files (file-max)":         "files",
	"processes (pid_max)":           "pids",
	"threads (threads-max)":         "threads",
	"conntrack (nf_conntrack_max)":  "conntrack",
}

// nearBarrier is where a beancounter earns a bar: below it the container
// is not short of that resource (snapshot.WriteSummary uses the same cut).
const nearBarrier = 80

// limitBars is every kernel limit the snapshot knows, beancounters only
// when near their barrier or already refusing, the nearest first.
func limitBars(s *snapshot.Snapshot) []bar {
	var out, bc []bar
	uids := map[string]bool{}
	etas := map[string]float64{}
	for _, f := range s.Forecasts {
		switch {
		case f.Limit == forecast.Beancounter:
			etas["beancounter "+term.Escape(f.UID)+" "+term.Escape(f.Resource)] = max(f.ETASeconds, 1)
		case f.Cgroup == "" && f.PID == 0 && f.User == "":
			etas[f.Limit] = max(f.ETASeconds, 1)
		}
	}
	for _, l := range snapshot.Limits(s) {
		if !l.Beancounter {
			label := barLabels[l.Name]
			if label == "" {
				label = l.Name
			}
			out = append(out, bar{label: label, used: l.Used, max: l.Max, unit: l.Bytes, eta: etas[barLimits[l.Name]]})
			continue
		}
		if l.Percent() < nearBarrier && l.Failcnt == 0 {
			continue
		}
		// l.Name is "beancounter UID RESOURCE", both escaped.
		f := strings.Fields(strings.TrimPrefix(l.Name, "beancounter "))
		label := l.Name
		if len(f) == 2 {
			label = f[0] + " " + f[1]
			uids[f[0]] = true
		}
		bc = append(bc, bar{label: label, used: l.Used, max: l.Max, failcnt: l.Failcnt, eta: etas[l.Name]})
	}
	if len(uids) == 1 {
		// Inside one container the veid says nothing.
		for i := range bc {
			if _, r, ok := strings.Cut(bc[i].label, " "); ok {
				bc[i].label = r
			}
		}
	}
	slices.SortStableFunc(bc, compareNearness)
	return append(out, bc...)
}

func (b bar) values() string {
	used, lim := compactCount(b.used), "?"
	if b.unit > 0 {
		used = compactBytes(b.used * b.unit)
	}
	if b.max > 0 {
		lim = compactCount(b.max)
		if b.unit > 0 {
			lim = compactBytes(b.max * b.unit)
		}
	}
	v := used + "/" + lim
	if b.failcnt > 0 {
		v += " !" + compactCount(int64(b.failcnt))
	}
	if b.eta > 0 {
		v += " full " + forecast.FormatETA(b.eta)
	}
	return v
}

// Bars are laid out in cells of label, bar (with its two ends), percent and
// values, with a blank between each.
const (
	barMinW   = 6
	barWantW  = 10
	barMaxW   = 30
	barLabelW = 12
)

func barCellWidth(bars []bar) (labelW, valuesW int) {
	for _, b := range bars {
		labelW = max(labelW, ansi.StringWidth(b.label))
		valuesW = max(valuesW, len(b.values()))
	}
	return min(labelW, barLabelW), valuesW
}

// barColumns is how many limits share a line, at most three: as many as
// fit with bars of barWantW cells, or if that is one, of barMinW.
func barColumns(bars []bar, width int) int {
	lw, vw := barCellWidth(bars)
	fit := func(barW int) int {
		cell := lw + 1 + barW + 2 + 1 + 4 + 1 + vw
		return min(max((width+2)/(cell+2), 1), 3)
	}
	if n := fit(barWantW); n > 1 {
		return n
	}
	return fit(barMinW)
}

func barLines(bars []bar, cols, rows, width int, p palette) []line {
	if len(bars) == 0 {
		return nil
	}
	lw, vw := barCellWidth(bars)
	cellW := (width - 2*(cols-1)) / cols
	barW := min(max(cellW-lw-vw-9, barMinW), barMaxW)
	hidden := 0
	if slots := cols * rows; len(bars) > slots {
		// Not all fit: the nearest to their limits stay, in their order,
		// and the last cell (if there is more than one) says how many
		// more there are.
		if slots > 1 {
			slots--
		}
		hidden = len(bars) - slots
		bars = nearest(bars, slots)
		if cols*rows == 1 {
			hidden = 0
		}
	}
	out := make([]line, 0, rows)
	for r := 0; r < rows; r++ {
		var l line
		for c := 0; c < cols; c++ {
			i := r*cols + c
			if i > len(bars) || i == len(bars) && hidden == 0 {
				break
			}
			if c > 0 {
				l.add("  ", p.plain)
			}
			if i == len(bars) {
				l.add(fmt.Sprintf("+%d more limits: picket snapshot", hidden), p.dim)
				break
			}
			b := bars[i]
			sev := p.barStyle(b)
			l.add(pad(ansi.Truncate(b.label, lw, p.tail), lw, false)+" ", p.plain)
			fill := 0
			if b.max > 0 {
				fill = int(min(max(b.percent(), 0), 100)*float64(barW)/100 + 0.5)
				if b.used > 0 && fill == 0 {
					fill = 1 // something is used: show it
				}
			}
			if p.ascii {
				l.add("["+strings.Repeat("#", fill), sev)
				l.add(strings.Repeat(".", barW-fill)+"]", p.dim)
			} else {
				l.add(" "+strings.Repeat("█", fill), sev)
				l.add(strings.Repeat("░", barW-fill)+" ", p.dim)
			}
			pct := "   ?"
			switch {
			case b.max > 0 && b.percent() >= 999.5:
				pct = ">999%" // a limit lowered below what already runs
			case b.max > 0:
				pct = fmt.Sprintf("%3.0f%%", b.percent())
			}
			l.add(" "+pct, sev)
			v := " " + b.values()
			if c < cols-1 && i < len(bars)-1 {
				v = pad(v, vw+1, false)
			}
			l.add(v, p.plain)
		}
		out = append(out, l)
	}
	return out
}

// nearest keeps the n bars nearest to their limits (refusing beancounters
// first), in the order given.
func nearest(bars []bar, n int) []bar {
	idx := make([]int, len(bars))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return compareNearness(bars[a], bars[b]) })
	idx = idx[:n]
	slices.Sort(idx)
	out := make([]bar, 0, n)
	for _, i := range idx {
		out = append(out, bars[i])
	}
	return out
}

// compareNearness orders bars with failures first, then by percent.
func compareNearness(a, b bar) int {
	if a.failcnt > 0 != (b.failcnt > 0) {
		if a.failcnt > 0 {
			return -1
		}
		return 1
	}
	return cmp.Compare(b.percent(), a.percent())
}

func verdictLine(rep *doctor.Report, p palette) line {
	var l line
	if rep == nil {
		return l.with("findings: not known yet", p.dim)
	}
	if len(rep.Findings) == 0 || rep.Status == doctor.OK {
		return l.with(fmt.Sprintf("OK  %d checks: nothing near a limit", len(rep.Findings)), p.ok)
	}
	f := rep.Findings[0]
	st := p.severity(f.Severity)
	l.add(strings.ToUpper(f.Severity.String())+" ", st)
	// Titles come escaped from doctor (a daemon's too, if it is picket):
	// escaping again would double every backslash, so only what is still
	// unprintable is escaped here.
	l.add(printableOnly(f.ID)+": "+printableOnly(f.Title), p.plain)
	if n := len(rep.Findings) - rep.Count(doctor.OK) - 1; n > 0 {
		l.add(fmt.Sprintf("  (+%d more: picket doctor)", n), p.dim)
	}
	return l
}

// kernelMessages is how many kinds of kernel message a frame shows at
// most.
const kernelMessages = 3

// kernelLines are the kernel's latest words: the kinds it has said most
// recently, newest first, one line each with the count since boot and the
// last message as the kernel wrote it (printable ASCII, its own \xNN
// escapes kept). Nothing when the kernel has said nothing picket knows.
func kernelLines(s *snapshot.Snapshot, st Style, p palette) []line {
	l := s.KernelLog
	if l == nil {
		return nil
	}
	if !l.Available {
		return []line{line{}.with("KERNEL  "+printableOnly(l.Error), p.dim)}
	}
	var kinds []snapshot.KernelKind
	for _, k := range l.Kinds {
		if k.Count > 0 {
			kinds = append(kinds, k)
		}
	}
	slices.SortStableFunc(kinds, func(a, b snapshot.KernelKind) int { return b.Last.Compare(a.Last) })
	var out []line
	for i, k := range kinds {
		if i == kernelMessages {
			break
		}
		var ln line
		head := "        "
		if i == 0 {
			head = "KERNEL  "
		}
		ln.add(head, p.bold)
		when := k.Last.Local().Format("2006-01-02 15:04:05Z07:00")
		if st.Interactive {
			when = k.Last.Local().Format("Jan 02 15:04:05")
		}
		style := p.plain
		if k.LastHour > 0 {
			style = p.warn
		}
		ln.add(when+"  ", p.plain)
		ln.add(fmt.Sprintf("%s %s%d", printableOnly(k.Kind), p.times, k.Count), style)
		if k.LastHour > 0 {
			ln.add(fmt.Sprintf(" (%d in the last hour)", k.LastHour), style)
		}
		ln.add("  "+printableOnly(k.Message), p.plain)
		out = append(out, ln)
	}
	return out
}

// printableOnly escapes the runes term.Escape would and leaves backslashes
// alone: for text that was escaped once already.
func printableOnly(s string) string {
	ok := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.Is(unicode.Bidi_Control, r) {
			ok = false
			break
		}
	}
	if ok && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == '\\' {
			b.WriteByte('\\')
		} else {
			b.WriteString(term.Escape(s[i : i+n]))
		}
		i += n
	}
	return b.String()
}

// column is one column of a table.
type column struct {
	head  string
	left  bool // text, left-aligned; numbers are right-aligned
	flex  bool // user and command share what the numbers leave
	limit int  // a flexible column's widest (0: unbounded)
}

// layout returns each column's width and the gap between columns:
// numbers at their widest, user and command sharing the rest, two spaces
// between columns or one when that is what makes it fit.
func layout(cols []column, cells [][]string, width int) ([]int, int) {
	w := make([]int, len(cols))
	for i, c := range cols {
		w[i] = ansi.StringWidth(c.head)
		for _, row := range cells {
			w[i] = max(w[i], ansi.StringWidth(row[i]))
		}
		if c.flex && c.limit > 0 {
			w[i] = min(w[i], c.limit)
		}
	}
	fixed, nflex := 0, 0
	for i, c := range cols {
		if c.flex {
			nflex++
			continue
		}
		fixed += w[i]
	}
	gap := 2
	const minFlex = 6
	if fixed+gap*(len(cols)-1)+minFlex*nflex > width {
		gap = 1
	}
	left := width - fixed - gap*(len(cols)-1)
	// Flexible columns but the last get at most a third of what is left
	// each; the last takes the rest and is cut at the screen's edge.
	for i, c := range cols {
		if !c.flex {
			continue
		}
		if i == len(cols)-1 {
			w[i] = max(left, 1)
			break
		}
		w[i] = max(min(w[i], left/3), min(w[i], minFlex))
		left -= w[i]
	}
	return w, gap
}

func tableRow(cols []column, w []int, gap int, cells []string, tail string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(strings.Repeat(" ", gap))
		}
		s := ansi.Truncate(cells[i], w[i], tail)
		if i == len(cols)-1 {
			b.WriteString(s) // no trailing blanks
			continue
		}
		b.WriteString(pad(s, w[i], !c.left))
	}
	return b.String()
}

func (m *Model) tableTitle(t Table, title string, shown, from, total int, st Style, p palette) line {
	var l line
	focused := st.Interactive && m.focus == t
	style := p.bold
	if focused {
		style = p.focus
		l.fill = true
	}
	mark := ""
	if st.Interactive {
		mark = "  "
		if focused {
			mark = p.mark
		}
	}
	text := mark + title
	if m.filter != "" {
		text += fmt.Sprintf("  %d matching \"%s\"", total, term.Escape(m.filter))
	}
	if shown < total {
		text += fmt.Sprintf("  %d-%d of %d", from+1, from+shown, total)
	}
	l.add(text, style)
	return l
}

func (m *Model) arrow(t Table, c Column, head string, st Style, p palette) string {
	if !st.Interactive || m.sorts[t].By != c {
		return head
	}
	if m.sorts[t].Asc {
		return head + p.up
	}
	return head + p.down
}

func (m *Model) window(t Table, total, n int) (from int) {
	m.offsets[t] = min(m.offsets[t], max(total-n, 0))
	return m.offsets[t]
}

func (m *Model) groupTable(rows []GroupRow, n, width int, st Style, p palette) []line {
	from := m.window(Groups, len(rows), n)
	shown := rows[from:min(from+n, len(rows))]
	cols := []column{
		{head: m.arrow(Groups, ColCount, "COUNT", st, p)},
		{head: m.arrow(Groups, ColChange, "CHANGE", st, p)},
		{head: m.arrow(Groups, ColThreads, "THREADS", st, p)},
		{head: m.arrow(Groups, ColRSS, "RSS", st, p)},
		{head: m.arrow(Groups, ColUser, "USER", st, p), left: true, flex: true, limit: 16},
		{head: m.arrow(Groups, ColComm, "COMMAND", st, p), left: true, flex: true},
	}
	cells := make([][]string, len(shown))
	for i, r := range shown {
		cells[i] = []string{
			strconv.Itoa(r.Count), fmtChange(r.Change, r.HasChange), strconv.Itoa(r.Threads),
			snapshot.HumanBytes(r.RSSBytes), term.Escape(r.User), term.Escape(r.Comm),
		}
	}
	title := fmt.Sprintf("USER %s COMMAND  %d groups", p.times, len(m.cur.Processes.Groups))
	if k := m.HiddenKernelGroups(); k > 0 {
		title += fmt.Sprintf(", %d kernel thread%s hidden (K)", k, map[bool]string{true: "s"}[k > 1])
	}
	return m.table(Groups, title, cols, cells, len(rows), from, width, st, p, func(i int) int { return shown[i].Change })
}

func (m *Model) holderTable(rows []HolderRow, n, width int, st Style, p palette) []line {
	from := m.window(Holders, len(rows), n)
	shown := rows[from:min(from+n, len(rows))]
	cols := []column{
		{head: m.arrow(Holders, ColPID, "PID", st, p)},
		{head: m.arrow(Holders, ColTCP, "TCP", st, p)},
		{head: m.arrow(Holders, ColUDP, "UDP", st, p)},
		{head: m.arrow(Holders, ColUnix, "UNIX", st, p)},
		{head: m.arrow(Holders, ColOther, "OTHER", st, p)},
		{head: m.arrow(Holders, ColTotal, "TOTAL", st, p)},
		{head: m.arrow(Holders, ColChange, "CHANGE", st, p)},
		{head: m.arrow(Holders, ColFDs, "FDS/LIMIT", st, p)},
		{head: "ETA"},
		{head: m.arrow(Holders, ColUser, "USER", st, p), left: true, flex: true, limit: 16},
		{head: m.arrow(Holders, ColComm, "COMMAND", st, p), left: true, flex: true},
	}
	cells := make([][]string, len(shown))
	for i, r := range shown {
		fds := strconv.Itoa(r.FDs)
		if r.FDLimit > 0 {
			fds += "/" + strconv.FormatInt(r.FDLimit, 10)
		}
		cells[i] = []string{
			strconv.Itoa(r.PID), strconv.Itoa(r.TCP), strconv.Itoa(r.UDP), strconv.Itoa(r.Unix), strconv.Itoa(r.Other),
			strconv.Itoa(r.Total), fmtChange(r.Change, r.HasChange), fds, etaCell(r.ETA), term.Escape(r.User), term.Escape(r.Comm),
		}
	}
	title := fmt.Sprintf("SOCKET HOLDERS  %d processes", len(m.cur.Sockets.Processes))
	return m.table(Holders, title, cols, cells, len(rows), from, width, st, p, func(i int) int { return shown[i].Change })
}

func (m *Model) table(t Table, title string, cols []column, cells [][]string, total, from, width int, st Style, p palette, change func(int) int) []line {
	out := []line{m.tableTitle(t, title, len(cells), from, total, st, p)}
	w, gap := layout(cols, cells, width)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	out = append(out, line{}.with(tableRow(cols, w, gap, heads, p.tail), p.head))
	if len(cells) == 0 {
		none := "  (none)"
		if m.filter != "" {
			none = fmt.Sprintf("  (nothing matches \"%s\")", term.Escape(m.filter))
		}
		return append(out, line{}.with(none, p.dim))
	}
	for i, row := range cells {
		style := p.plain
		switch d := change(i); {
		case d > 0:
			style = p.grow
		case d < 0:
			style = p.shrink
		}
		out = append(out, line{}.with(tableRow(cols, w, gap, row, p.tail), style))
	}
	return out
}

// pad fills s with blanks to w cells, on the left when right is set.
func pad(s string, w int, right bool) string {
	n := w - ansi.StringWidth(s)
	if n <= 0 {
		return s
	}
	if right {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

// compactCount prints a count in at most 5 characters: 999, 21.6k, 262k,
// 3.2M.
func compactCount(n int64) string {
	if n < 10000 && n > -10000 {
		return strconv.FormatInt(n, 10)
	}
	f, units := float64(n), "kMGTPE"
	for i := 0; i < len(units); i++ {
		f /= 1000
		if f < 999.5 && f > -999.5 || i == len(units)-1 {
			if f < 99.95 && f > -99.95 {
				return strconv.FormatFloat(f, 'f', 1, 64) + units[i:i+1]
			}
			return strconv.FormatFloat(f, 'f', 0, 64) + units[i:i+1]
		}
	}
	return strconv.FormatInt(n, 10)
}

// compactBytes prints a byte count with a binary unit letter: 7.4M, 23.6G.
func compactBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, units := float64(n), "KMGTPE"
	for i := 0; i < len(units); i++ {
		f /= 1024
		if f < 1023.5 || i == len(units)-1 {
			if f < 99.95 {
				return strconv.FormatFloat(f, 'f', 1, 64) + units[i:i+1]
			}
			return strconv.FormatFloat(f, 'f', 0, 64) + units[i:i+1]
		}
	}
	return strconv.FormatInt(n, 10)
}

// line is one screen line as styled pieces; render cuts it at the width
// before any colour is added, so escape sequences never count as cells
// and never get cut in half.
type line struct {
	segs []seg
	fill bool // pad to the full width (a highlighted title bar)
}

type seg struct {
	text  string
	style lipgloss.Style
}

func (l *line) add(s string, st lipgloss.Style) { l.segs = append(l.segs, seg{s, st}) }

func (l line) with(s string, st lipgloss.Style) line {
	l.add(s, st)
	return l
}

func (l line) render(width int, p palette) string {
	var b strings.Builder
	left := width
	for i, s := range l.segs {
		if left <= 0 {
			break
		}
		text := s.text
		w := ansi.StringWidth(text)
		if w > left {
			text = ansi.Truncate(text, left, p.tail)
			w = ansi.StringWidth(text)
		}
		if l.fill && p.color && i == len(l.segs)-1 {
			text += strings.Repeat(" ", left-w)
			w = left
		}
		left -= w
		if p.color {
			text = s.style.Render(text)
		}
		b.WriteString(text)
	}
	return b.String()
}

// palette is the frame's styles; without colour every style is plain.
type palette struct {
	color, ascii                  bool
	tail, mark, up, down, times   string
	cursor                        string
	plain, bold, dim, head, focus lipgloss.Style
	ok, warn, crit, unknown       lipgloss.Style
	grow, shrink                  lipgloss.Style
	limitWarn, limitCrit          float64
}

// newPalette makes the styles for st; r is the renderer of the terminal
// the frame goes to (nil: lipgloss's default, stdout's).
func newPalette(st Style, r *lipgloss.Renderer) palette {
	th := doctor.DefaultThresholds()
	p := palette{color: st.Color, ascii: st.ASCII, limitWarn: th.LimitWarnPercent, limitCrit: th.LimitCritPercent,
		tail: "…", mark: "▸ ", up: "↑", down: "↓", times: "×", cursor: "█"}
	if st.ASCII {
		p.tail, p.mark, p.up, p.down, p.times, p.cursor = "~", "> ", "^", "v", "x", "_"
	}
	if !st.Color {
		return p
	}
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	s := r.NewStyle
	p.bold = s().Bold(true)
	p.dim = s().Faint(true)
	p.head = s().Bold(true).Underline(true)
	p.focus = s().Reverse(true).Bold(true)
	p.ok = s().Foreground(lipgloss.Color("2"))
	p.warn = s().Foreground(lipgloss.Color("3")).Bold(true)
	p.crit = s().Foreground(lipgloss.Color("1")).Bold(true)
	p.unknown = s().Foreground(lipgloss.Color("5"))
	p.grow = s().Foreground(lipgloss.Color("3"))
	p.shrink = s().Foreground(lipgloss.Color("6"))
	return p
}

func (p palette) severity(s doctor.Severity) lipgloss.Style {
	switch s {
	case doctor.Critical:
		return p.crit
	case doctor.Warning:
		return p.warn
	case doctor.Unknown:
		return p.unknown
	}
	return p.ok
}

// barStyle colours a limit as doctor's default thresholds would judge it.
func (p palette) barStyle(b bar) lipgloss.Style {
	switch pct := b.percent(); {
	case b.failcnt > 0 || pct >= p.limitCrit:
		return p.crit
	case pct >= p.limitWarn:
		return p.warn
	}
	return p.ok
}
