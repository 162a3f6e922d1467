// Package tui is `picket top`: one live view of what is growing
// toward which kernel limit. The administrators of docs/stories.md watched `top`,
// `netstat -p | wc -l` and `watch -n 5 "ss -x | wc -l"` in three windows
// while the box froze; this puts the limits, the heaviest user × command
// groups and the heaviest socket holders, with their change since the last
// refresh, on one 80×24 screen.
//
// The package has three layers. Model is the state (two snapshots, the
// doctor's report, sort, filter, focus) and its keys; it knows nothing of
// terminals, so tests drive it with synthetic snapshots. Model.Render draws
// one frame as text of an exact width, the same for the full-screen view and
// for `--once`. Run wraps the Model in a bubbletea program; WriteOnce prints
// one frame. A Source feeds both: the host's own collection or a daemon's
// JSON API.
//
// Every name a process or user chose goes through term.Escape before it is
// measured, truncated and drawn.
package tui

import (
	"cmp"
	"github.com/picket-guard/picket/internal/forecast"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/term"
)

// Table names one of the two tables.
type Table int

// The tables, in screen order; Tab moves between them.
const (
	Groups  Table = iota // heaviest user × command groups
	Holders              // heaviest socket holders
)

// Column is a sortable column. Each has a key (see Keys) that sorts the
// focused table by it; pressing it again reverses the order.
type Column int

// The sortable columns.
const (
	ColCount Column = iota
	ColChange
	ColThreads
	ColRSS
	ColUser
	ColComm
	ColPID
	ColTotal
	ColTCP
	ColUDP
	ColUnix
	ColOther
	ColFDs
)

// sortKeys maps a key to the column it sorts, per table. Letters are shared
// where the meaning is (d change, u user, n name); t is threads among groups
// and total among holders, the column an administrator reaches for first.
var sortKeys = [2]map[string]Column{
	Groups: {
		"c": ColCount, "d": ColChange, "t": ColThreads, "r": ColRSS, "u": ColUser, "n": ColComm,
	},
	Holders: {
		"t": ColTotal, "d": ColChange, "p": ColPID, "u": ColUser, "n": ColComm,
		"T": ColTCP, "U": ColUDP, "x": ColUnix, "o": ColOther, "f": ColFDs,
	},
}

// Sort is a table's order.
type Sort struct {
	By  Column
	Asc bool
}

// GroupRow is one user × command group with its change since the previous
// snapshot. User and Comm are raw: escape them to print.
type GroupRow struct {
	User     string
	UID      uint32
	Comm     string
	Count    int
	Threads  int
	RSSBytes uint64
	// Change is Count minus the previous snapshot's count for the same
	// uid and command; a group that is gone shows Count 0 and a negative
	// Change for one refresh. Meaningful only when HasChange.
	Change    int
	HasChange bool
	// KernelThread: every process of the group is a kernel thread.
	KernelThread bool
}

// HolderRow is one process holding sockets, with its change since the
// previous snapshot. Other is raw, netlink, packet and the rest.
type HolderRow struct {
	PID                   int
	User                  string
	Comm                  string
	TCP, UDP, Unix, Other int
	Total                 int
	FDs                   int
	FDLimit               int64 // 0: not read
	Change                int   // Total minus the same pid's previous total (pid and comm must match)
	HasChange             bool
	// ETA is the forecast time until FDs reach FDLimit, in seconds; 0
	// when its fds have no trend (docs/forecast.md).
	ETA float64
}

// Model is the state of `picket top`: not safe for concurrent use.
type Model struct {
	cur, prev *snapshot.Snapshot
	report    *doctor.Report
	err       string // the last fetch's error, escaped; "" when it went well

	groups  []GroupRow
	holders []HolderRow

	// Source says where the numbers come from, for the status line.
	Source string
	// Interval is the refresh interval, shown in the title.
	Interval time.Duration
	// Top caps the rows of each table; 0 means as many as fit (10 when the
	// height is unbounded).
	Top int

	focus   Table
	sorts   [2]Sort
	offsets [2]int
	filter  string
	editing bool   // the filter line has the keyboard
	saved   string // the filter before editing began, for Esc
	help    bool
	// kernel shows one-process kernel-thread groups (K): hidden by
	// default, as htop hides kernel threads, so that a storm is not pushed
	// off the screen by cpuhp/0, kauditd and a dozen kworkers.
	kernel bool
}

// NewModel returns an empty model: groups sorted by count and holders by
// total, heaviest first, as `picket snapshot` prints them.
func NewModel() *Model {
	return &Model{sorts: [2]Sort{Groups: {By: ColCount}, Holders: {By: ColTotal}}}
}

// Update takes a new snapshot and report. The previous snapshot, which
// changes are computed against, moves forward only when the snapshot is a
// new one: a daemon polled faster than it collects serves the same snapshot
// twice, and that is no change. A nil snapshot keeps the last one (a failed
// fetch); err, when not nil, is shown on the status line until a fetch
// succeeds.
func (m *Model) Update(s *snapshot.Snapshot, rep *doctor.Report, err error) {
	m.err = ""
	if err != nil {
		m.err = term.Escape(err.Error())
	}
	if s == nil {
		return
	}
	if rep != nil || m.cur == nil || !s.Time.Equal(m.cur.Time) {
		m.report = rep
	}
	if m.cur != nil && s.Time.Equal(m.cur.Time) && s.Host == m.cur.Host {
		return
	}
	m.prev, m.cur = m.cur, s
	m.groups = groupRows(m.prev, m.cur)
	m.holders = holderRows(m.prev, m.cur)
}

// Snapshot returns the snapshot on screen; nil before the first.
func (m *Model) Snapshot() *snapshot.Snapshot { return m.cur }

type groupKey struct {
	uid  uint32
	comm string
}

func groupRows(prev, cur *snapshot.Snapshot) []GroupRow {
	rows := make([]GroupRow, 0, len(cur.Processes.Groups))
	var before map[groupKey]snapshot.Group
	if prev != nil {
		before = make(map[groupKey]snapshot.Group, len(prev.Processes.Groups))
		for _, g := range prev.Processes.Groups {
			before[groupKey{g.UID, g.Comm}] = g
		}
	}
	for _, g := range cur.Processes.Groups {
		r := GroupRow{User: g.User, UID: g.UID, Comm: g.Comm, Count: g.Count, Threads: g.Threads, RSSBytes: g.RSSBytes, KernelThread: g.KernelThread}
		if prev != nil {
			k := groupKey{g.UID, g.Comm}
			r.Change, r.HasChange = g.Count-before[k].Count, true
			delete(before, k)
		}
		rows = append(rows, r)
	}
	// What is left vanished since the last refresh: a storm that was
	// killed shows as -N once, so a drop is seen and not just an absence.
	// From a daemon's top N, a group no heavier than the lightest kept may
	// only have fallen below the cut.
	cut, lightest := cur.Selection.CutGroups(len(cur.Processes.Groups)), 0
	for i, g := range cur.Processes.Groups {
		if i == 0 || g.Count < lightest {
			lightest = g.Count
		}
	}
	for _, g := range vanishedGroups(prev, before) {
		if cut && g.Count <= lightest {
			continue
		}
		rows = append(rows, GroupRow{User: g.User, UID: g.UID, Comm: g.Comm, Change: -g.Count, HasChange: true, KernelThread: g.KernelThread})
	}
	return rows
}

type holderKey struct {
	pid  int
	comm string
}

func holderRows(prev, cur *snapshot.Snapshot) []HolderRow {
	rows := make([]HolderRow, 0, len(cur.Sockets.Processes))
	var before map[holderKey]snapshot.Holder
	if prev != nil {
		before = make(map[holderKey]snapshot.Holder, len(prev.Sockets.Processes))
		for _, h := range prev.Sockets.Processes {
			before[holderKey{h.PID, h.Comm}] = h
		}
	}
	etas := map[int]float64{}
	for _, f := range cur.Forecasts {
		if f.Limit == forecast.RlimitNofile {
			etas[f.PID] = max(f.ETASeconds, 1)
		}
	}
	for _, h := range cur.Sockets.Processes {
		r := holderRow(h)
		r.ETA = etas[h.PID]
		if prev != nil {
			// A pid whose command changed exec'd or was reused: its old
			// count says nothing about this one, so it counts from zero.
			k := holderKey{h.PID, h.Comm}
			r.Change, r.HasChange = h.Total-before[k].Total, true
			delete(before, k)
		}
		rows = append(rows, r)
	}
	cut, lightest := cur.Selection.CutHolders(len(cur.Sockets.Processes)), 0
	for i, h := range cur.Sockets.Processes {
		if i == 0 || h.Total < lightest {
			lightest = h.Total
		}
	}
	for _, h := range vanishedHolders(prev, before) {
		if cut && h.Total <= lightest {
			continue
		}
		r := holderRow(h)
		r.TCP, r.UDP, r.Unix, r.Other, r.Total, r.FDs = 0, 0, 0, 0, 0, 0
		r.Change, r.HasChange = -h.Total, true
		rows = append(rows, r)
	}
	return rows
}

func holderRow(h snapshot.Holder) HolderRow {
	return HolderRow{
		PID: h.PID, User: h.User, Comm: h.Comm,
		TCP: h.TCP, UDP: h.UDP, Unix: h.Unix, Other: h.Raw + h.Netlink + h.Packet + h.Other,
		Total: h.Total, FDs: h.FDs, FDLimit: h.FDLimit,
	}
}

// vanishedGroups lists the groups left in the map in the previous
// snapshot's order, so the rows do not depend on map iteration.
func vanishedGroups(prev *snapshot.Snapshot, left map[groupKey]snapshot.Group) []snapshot.Group {
	if prev == nil || len(left) == 0 {
		return nil
	}
	var out []snapshot.Group
	for _, g := range prev.Processes.Groups {
		if _, ok := left[groupKey{g.UID, g.Comm}]; ok {
			out = append(out, g)
		}
	}
	return out
}

func vanishedHolders(prev *snapshot.Snapshot, left map[holderKey]snapshot.Holder) []snapshot.Holder {
	if prev == nil || len(left) == 0 {
		return nil
	}
	var out []snapshot.Holder
	for _, h := range prev.Sockets.Processes {
		if _, ok := left[holderKey{h.PID, h.Comm}]; ok {
			out = append(out, h)
		}
	}
	return out
}

// Focus is the table the sort keys and scrolling act on.
func (m *Model) Focus() Table { return m.focus }

// Filter is the filter in force (while it is being typed: the draft).
func (m *Model) Filter() string { return m.filter }

// SortOf is a table's order.
func (m *Model) SortOf(t Table) Sort { return m.sorts[t] }

// matches is the filter: a case-insensitive substring of the user or the
// command, as typed or as printed (so `\x1b` finds a name holding ESC).
func (m *Model) matches(user, comm string) bool {
	if m.filter == "" {
		return true
	}
	f := strings.ToLower(m.filter)
	for _, s := range [...]string{user, comm, term.Escape(user), term.Escape(comm)} {
		if strings.Contains(strings.ToLower(s), f) {
			return true
		}
	}
	return false
}

// ShowsKernelThreads says whether one-process kernel-thread groups are
// listed (K switches).
func (m *Model) ShowsKernelThreads() bool { return m.kernel }

// hiddenKernel says whether a group is left out as a lone kernel thread.
// A kernel-thread name that many processes share stays: that is news.
func (m *Model) hiddenKernel(r GroupRow) bool { return !m.kernel && r.KernelThread && r.Count <= 1 }

// HiddenKernelGroups counts the groups K would show.
func (m *Model) HiddenKernelGroups() int {
	n := 0
	for _, r := range m.groups {
		if m.hiddenKernel(r) && m.matches(r.User, r.Comm) {
			n++
		}
	}
	return n
}

// GroupRows returns the groups that pass the filter, in the table's order;
// one-process kernel-thread groups only when K shows them.
func (m *Model) GroupRows() []GroupRow {
	rows := make([]GroupRow, 0, len(m.groups))
	for _, r := range m.groups {
		if m.matches(r.User, r.Comm) && !m.hiddenKernel(r) {
			rows = append(rows, r)
		}
	}
	s := m.sorts[Groups]
	slices.SortStableFunc(rows, func(a, b GroupRow) int {
		if c := orient(compareGroups(s.By, a, b), s.Asc); c != 0 {
			return c
		}
		// Ties: heaviest first, then by name, whatever the sort.
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.User, b.User), cmp.Compare(a.Comm, b.Comm))
	})
	return rows
}

// HolderRows returns the socket holders that pass the filter, in the
// table's order.
func (m *Model) HolderRows() []HolderRow {
	rows := make([]HolderRow, 0, len(m.holders))
	for _, r := range m.holders {
		if m.matches(r.User, r.Comm) {
			rows = append(rows, r)
		}
	}
	s := m.sorts[Holders]
	slices.SortStableFunc(rows, func(a, b HolderRow) int {
		if c := orient(compareHolders(s.By, a, b), s.Asc); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.PID, b.PID))
	})
	return rows
}

// orient turns an ascending comparison into the order asked for.
func orient(c int, asc bool) int {
	if asc {
		return c
	}
	return -c
}

func compareGroups(by Column, a, b GroupRow) int {
	switch by {
	case ColChange:
		return cmp.Compare(a.Change, b.Change)
	case ColThreads:
		return cmp.Compare(a.Threads, b.Threads)
	case ColRSS:
		return cmp.Compare(a.RSSBytes, b.RSSBytes)
	case ColUser:
		return cmp.Compare(a.User, b.User)
	case ColComm:
		return cmp.Compare(a.Comm, b.Comm)
	}
	return cmp.Compare(a.Count, b.Count)
}

func compareHolders(by Column, a, b HolderRow) int {
	switch by {
	case ColChange:
		return cmp.Compare(a.Change, b.Change)
	case ColPID:
		return cmp.Compare(a.PID, b.PID)
	case ColUser:
		return cmp.Compare(a.User, b.User)
	case ColComm:
		return cmp.Compare(a.Comm, b.Comm)
	case ColTCP:
		return cmp.Compare(a.TCP, b.TCP)
	case ColUDP:
		return cmp.Compare(a.UDP, b.UDP)
	case ColUnix:
		return cmp.Compare(a.Unix, b.Unix)
	case ColOther:
		return cmp.Compare(a.Other, b.Other)
	case ColFDs:
		return cmp.Compare(a.FDs, b.FDs)
	}
	return cmp.Compare(a.Total, b.Total)
}

// ascendingFirst are the columns read alphabetically or by number: a first
// press sorts them ascending, every count descending (heaviest first).
func ascendingFirst(c Column) bool { return c == ColUser || c == ColComm || c == ColPID }

// Key is one key press, named as bubbletea names them ("q", "ctrl+c",
// "tab", "enter", "esc", "backspace", "up", "down", "pgup", "pgdown",
// "home", "end", or the character typed). It returns true when the program
// should quit.
func (m *Model) Key(k string) (quit bool) {
	if k == "ctrl+c" {
		return true
	}
	if m.editing {
		m.editKey(k)
		return false
	}
	if m.help {
		switch k {
		case "q":
			return true
		case "?", "esc", "enter", "h":
			m.help = false
		}
		return false
	}
	switch k {
	case "q":
		return true
	case "?", "h":
		m.help = true
	case "/":
		m.editing, m.saved = true, m.filter
	case "esc":
		m.setFilter("")
	case "tab", "shift+tab":
		m.focus = 1 - m.focus
	case "K":
		m.kernel = !m.kernel
		m.offsets[Groups] = 0
	case "down", "j":
		m.offsets[m.focus]++
	case "up", "k":
		m.offsets[m.focus]--
	case "pgdown", " ":
		m.offsets[m.focus] += 10
	case "pgup":
		m.offsets[m.focus] -= 10
	case "home", "g":
		m.offsets[m.focus] = 0
	case "end", "G":
		m.offsets[m.focus] = 1 << 30 // clamped when drawn
	default:
		if c, ok := sortKeys[m.focus][k]; ok {
			m.sortBy(c)
		}
	}
	m.offsets[m.focus] = max(m.offsets[m.focus], 0)
	return false
}

func (m *Model) sortBy(c Column) {
	s := &m.sorts[m.focus]
	if s.By == c {
		s.Asc = !s.Asc
	} else {
		s.By, s.Asc = c, ascendingFirst(c)
	}
	m.offsets[m.focus] = 0
}

func (m *Model) editKey(k string) {
	switch k {
	case "enter":
		m.editing = false
	case "esc":
		m.editing = false
		m.setFilter(m.saved)
	case "backspace", "ctrl+h":
		if r := []rune(m.filter); len(r) > 0 {
			m.setFilter(string(r[:len(r)-1]))
		}
	case "ctrl+u":
		m.setFilter("")
	default:
		// One typed character; named keys ("up", "f1", "alt+x") are
		// longer and are not text. A paste arrives one character at a time.
		if r, n := utf8.DecodeRuneInString(k); n == len(k) && r != utf8.RuneError && r >= 0x20 && r != 0x7f &&
			utf8.RuneCountInString(m.filter) < maxFilter {
			m.setFilter(m.filter + k)
		}
	}
}

// maxFilter bounds the filter: the line that shows it is narrow, and a
// pasted log does not need to be kept.
const maxFilter = 64

func (m *Model) setFilter(f string) {
	m.filter = f
	m.offsets = [2]int{}
}

// fmtChange prints a change with its sign; blank before a second snapshot.
func fmtChange(n int, ok bool) string {
	switch {
	case !ok:
		return ""
	case n > 0:
		return "+" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
