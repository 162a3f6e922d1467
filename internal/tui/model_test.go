package tui

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/picket-guard/picket/internal/doctor"
	"github.com/picket-guard/picket/internal/snapshot"
)

var t0 = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

// host returns a small synthetic snapshot taken at t0+sec with the groups
// and holders given; the kernel's limits are a healthy host's.
func host(sec int, groups []snapshot.Group, holders []snapshot.Holder) *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Time: t0.Add(time.Duration(sec) * time.Second), Host: "test",
		Processes: snapshot.Processes{Groups: groups},
		Sockets:   snapshot.Sockets{Processes: holders},
		Kernel: snapshot.Kernel{
			Sockstat:      &snapshot.Sockstat{SocketsUsed: 40, TCP: snapshot.SockstatTCP{Inuse: 10, Orphan: 300, MemPages: 5}},
			TCPMemPages:   []int64{1000, 2000, 3000},
			TCPMaxOrphans: 1000,
			FileNr:        &snapshot.FileNr{Allocated: 95000, Max: 100000},
			PidMax:        32768,
			ThreadsMax:    10000,
			PageSize:      4096,
		},
		Beancounters: []snapshot.Beancounter{},
	}
	for _, g := range groups {
		s.Processes.Total += g.Count
		s.Processes.Threads += g.Threads
	}
	for _, h := range holders {
		s.Sockets.Totals.TCP += h.TCP
		s.Sockets.Totals.Unix += h.Unix
	}
	return s
}

func grp(user string, uid uint32, comm string, count int) snapshot.Group {
	return snapshot.Group{User: user, UID: uid, Comm: comm, Count: count, Threads: count, RSSBytes: uint64(count) << 20}
}

func holder(pid int, user, comm string, tcp, unix int) snapshot.Holder {
	return snapshot.Holder{PID: pid, User: user, Comm: comm, SocketCounts: snapshot.SocketCounts{TCP: tcp, Unix: unix}, Total: tcp + unix, FDs: tcp + unix + 3, FDLimit: 1024}
}

type groupView struct {
	comm      string
	count     int
	change    int
	hasChange bool
}

func groupViews(rows []GroupRow) []groupView {
	var out []groupView
	for _, r := range rows {
		out = append(out, groupView{r.Comm, r.Count, r.Change, r.HasChange})
	}
	return out
}

func TestChangeSinceLastRefresh(t *testing.T) {
	m := NewModel()
	m.Update(host(0, []snapshot.Group{grp("mail", 8, "imapd", 20), grp("root", 0, "cron", 1), grp("www", 33, "httpd", 5)}, nil), nil, nil)
	if got, want := groupViews(m.GroupRows()), []groupView{{"imapd", 20, 0, false}, {"httpd", 5, 0, false}, {"cron", 1, 0, false}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first refresh: %+v, want %+v (no change known yet)", got, want)
	}
	// imapd storms, cron is gone, ypserv is new; httpd is steady.
	m.Update(host(1, []snapshot.Group{grp("mail", 8, "imapd", 60), grp("www", 33, "httpd", 5), grp("root", 0, "ypserv", 7)}, nil), nil, nil)
	want := []groupView{{"imapd", 60, 40, true}, {"ypserv", 7, 7, true}, {"httpd", 5, 0, true}, {"cron", 0, -1, true}}
	if got := groupViews(m.GroupRows()); !reflect.DeepEqual(got, want) {
		t.Fatalf("second refresh: %+v, want %+v", got, want)
	}
	// The same snapshot again (a daemon polled faster than it collects)
	// is no change: the changes stay as they were.
	m.Update(host(1, []snapshot.Group{grp("mail", 8, "imapd", 60), grp("www", 33, "httpd", 5), grp("root", 0, "ypserv", 7)}, nil), nil, nil)
	if got := groupViews(m.GroupRows()); !reflect.DeepEqual(got, want) {
		t.Fatalf("same snapshot twice: %+v, want %+v", got, want)
	}
	// A failed fetch keeps the frame and says why.
	m.Update(nil, nil, fmt.Errorf("GET /api/v1/snapshot: 503 \x1b[2J"))
	if got := groupViews(m.GroupRows()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a failed fetch: %+v, want %+v", got, want)
	}
	if f := m.Render(80, 24, Style{Interactive: true}); !strings.Contains(f, `503 \x1b[2J`) || strings.Contains(f, "\x1b") {
		t.Errorf("error not shown escaped on the key line:\n%s", f)
	}
	// The same comm under another uid is another group.
	m.Update(host(2, []snapshot.Group{grp("mail", 8, "imapd", 60), grp("bob", 1001, "imapd", 3)}, nil), nil, nil)
	// Vanished groups tie at 0: by user, root before www.
	want = []groupView{{"imapd", 60, 0, true}, {"imapd", 3, 3, true}, {"ypserv", 0, -7, true}, {"httpd", 0, -5, true}}
	if got := groupViews(m.GroupRows()); !reflect.DeepEqual(got, want) {
		t.Fatalf("third refresh: %+v, want %+v", got, want)
	}
}

func TestHolderChange(t *testing.T) {
	m := NewModel()
	m.Update(host(0, nil, []snapshot.Holder{holder(100, "mysql", "mysqld", 10, 5), holder(200, "root", "master", 0, 40), holder(300, "www", "php", 2, 0)}), nil, nil)
	// 200 leaks unix sockets; 300 exited and its pid went to another
	// command, which counts from zero; 100 is gone.
	m.Update(host(1, nil, []snapshot.Holder{holder(200, "root", "master", 0, 90), holder(300, "www", "perl", 1, 0)}), nil, nil)
	type hv struct {
		pid, total, change int
		comm               string
	}
	var got []hv
	for _, r := range m.HolderRows() {
		got = append(got, hv{r.PID, r.Total, r.Change, r.Comm})
	}
	want := []hv{{200, 90, 50, "master"}, {300, 1, 1, "perl"}, {100, 0, -15, "mysqld"}, {300, 0, -2, "php"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("holders: %+v\nwant %+v", got, want)
	}
}

func TestSortKeys(t *testing.T) {
	m := NewModel()
	m.Update(host(0, []snapshot.Group{grp("a", 1, "few", 2), grp("b", 2, "many", 50), grp("c", 3, "grow", 10)},
		[]snapshot.Holder{holder(10, "a", "x", 5, 0), holder(20, "b", "y", 1, 100), holder(5, "c", "z", 50, 1)}), nil, nil)
	m.Update(host(1, []snapshot.Group{grp("a", 1, "few", 1), grp("b", 2, "many", 50), grp("c", 3, "grow", 30)},
		[]snapshot.Holder{holder(10, "a", "x", 9, 0), holder(20, "b", "y", 1, 100), holder(5, "c", "z", 50, 1)}), nil, nil)
	comms := func() string {
		var s []string
		for _, r := range m.GroupRows() {
			s = append(s, r.Comm)
		}
		return strings.Join(s, " ")
	}
	pids := func() string {
		var s []string
		for _, r := range m.HolderRows() {
			s = append(s, fmt.Sprint(r.PID))
		}
		return strings.Join(s, " ")
	}
	steps := []struct {
		key           string
		groups, holds string
	}{
		{"", "many grow few", "20 5 10"},
		{"d", "grow many few", "20 5 10"},   // change: +20, 0, -1
		{"d", "few many grow", "20 5 10"},   // again: reversed
		{"n", "few grow many", "20 5 10"},   // command, ascending first
		{"u", "few many grow", "20 5 10"},   // user a b c
		{"r", "many grow few", "20 5 10"},   // rss follows count here
		{"p", "many grow few", "20 5 10"},   // no pid column among groups: ignored
		{"tab", "many grow few", "20 5 10"}, // now the holders
		{"p", "many grow few", "5 10 20"},
		{"T", "many grow few", "5 10 20"},   // tcp 50, 9, 1
		{"x", "many grow few", "20 5 10"},   // unix
		{"d", "many grow few", "10 20 5"},   // change: +4, then ties by total
		{"c", "many grow few", "10 20 5"},   // no count column among holders
		{"t", "many grow few", "20 5 10"},   // total
		{"t", "many grow few", "10 5 20"},   // reversed
		{"tab", "many grow few", "10 5 20"}, // back: groups keep their sort
	}
	for i, s := range steps {
		if s.key != "" && m.Key(s.key) {
			t.Fatalf("step %d: %q quit", i, s.key)
		}
		if g, h := comms(), pids(); g != s.groups || h != s.holds {
			t.Errorf("step %d after %q: groups %q holders %q, want %q %q", i, s.key, g, h, s.groups, s.holds)
		}
	}
	if m.Focus() != Groups {
		t.Errorf("focus %v after two tabs", m.Focus())
	}
	if s := m.SortOf(Groups); s != (Sort{By: ColRSS}) {
		t.Errorf("groups sort %+v", s)
	}
}

func TestFilterKeys(t *testing.T) {
	m := NewModel()
	m.Update(host(0, []snapshot.Group{grp("mail", 8, "imapd", 60), grp("root", 0, "cron", 1), grp("Mallory", 1000, "x\x1b[2Jy", 1)},
		[]snapshot.Holder{holder(1, "mail", "imapd", 1, 1), holder(2, "root", "sshd", 1, 0)}), nil, nil)
	count := func() (int, int) { return len(m.GroupRows()), len(m.HolderRows()) }
	typeText := func(s string) {
		for _, r := range s {
			if m.Key(string(r)) {
				t.Fatalf("typing %q quit", s)
			}
		}
	}
	m.Key("/")
	typeText("MAIL")
	// Live while typing; case-insensitive; user or command.
	if g, h := count(); g != 1 || h != 1 || m.Filter() != "MAIL" {
		t.Fatalf("filter MAIL: %d groups %d holders, filter %q", g, h, m.Filter())
	}
	m.Key("enter")
	if m.Key("q") != true {
		t.Fatal("q after Enter should quit")
	}
	// Esc while typing puts the previous filter back.
	m.Key("/")
	typeText("q")
	if m.Filter() != "MAILq" {
		t.Fatalf("q while typing is text: filter %q", m.Filter())
	}
	m.Key("esc")
	if m.Filter() != "MAIL" {
		t.Fatalf("esc: filter %q, want MAIL back", m.Filter())
	}
	// Esc outside clears; the escaped form of a hostile name matches.
	m.Key("esc")
	m.Key("/")
	typeText(`\x1b`)
	if g, _ := count(); g != 1 {
		t.Fatalf(`filter \x1b: %d groups`, g)
	}
	m.Key("ctrl+u")
	typeText("cr")
	m.Key("backspace")
	m.Key("backspace")
	m.Key("down") // a named key is not text
	m.Key("\x07")
	if m.Filter() != "" {
		t.Fatalf("filter %q after backspaces", m.Filter())
	}
	typeText("nomatch")
	m.Key("enter")
	f := m.Render(80, 24, Style{Interactive: true})
	if !strings.Contains(f, `(nothing matches "nomatch")`) {
		t.Errorf("no-match frame:\n%s", f)
	}
	if m.Key("ctrl+c") != true {
		t.Error("ctrl+c should quit")
	}
	// Help: ? opens, Esc closes, q still quits.
	m.Key("?")
	if f := m.Render(80, 24, Style{Interactive: true}); !strings.Contains(f, "Sort the socket holders") {
		t.Errorf("help frame:\n%s", f)
	}
	m.Key("esc")
	if f := m.Render(80, 24, Style{Interactive: true}); strings.Contains(f, "Sort the socket holders") {
		t.Errorf("help still shown after esc")
	}
}

// hostileNames are names a process or user can choose: terminal escapes,
// line breaks, bidi overrides, wide and zero-width characters, invalid
// UTF-8, backslashes and sheer length.
var hostileNames = []string{
	"\x1b[2J\x1b[H\x1b]0;owned\x07",
	"line\nbreak\rreturn\ttab",
	"\u202eevil\u202c",
	"日本語のプロセス名前がとても長い",
	"👩‍👩‍👧‍👦🔥💣",
	"e\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301",
	"\xff\xfe\xc3",
	`back\slash\x1b`,
	strings.Repeat("A", 300),
	"\u200b\u200b\u200b",
	"\x00\x7f\x9b[31m",
}

func hostileHost(sec int) *snapshot.Snapshot {
	var groups []snapshot.Group
	var holders []snapshot.Holder
	for i, n := range hostileNames {
		groups = append(groups, snapshot.Group{User: hostileNames[len(hostileNames)-1-i], UID: uint32(i), Comm: n, Count: 1000000 * (i + 1), Threads: 1 << 30, RSSBytes: 1 << 50})
		holders = append(holders, snapshot.Holder{PID: 4194304 - i, User: n, Comm: hostileNames[len(hostileNames)-1-i],
			SocketCounts: snapshot.SocketCounts{TCP: 1 << 20, UDP: 1 << 20, Unix: 1 << 24, Other: 99999},
			Total:        1<<24 + 2<<20 + 99999, FDs: 1 << 25, FDLimit: 1 << 30})
	}
	s := host(sec, groups, holders)
	s.Host = "\x1b[31mhost\u202e\nname"
	s.Beancounters = []snapshot.Beancounter{
		{UID: "101\x1b[1m", Resource: "numothersock\n", Held: 400, Barrier: 400, Limit: 400, Failcnt: 1 << 40},
		{UID: "101\x1b[1m", Resource: "numtcpsock", Held: 399, Barrier: 400, Limit: 400},
		{UID: "102", Resource: "privvmpages", Held: 1 << 40, Barrier: 1 << 41, Limit: 1 << 41},
	}
	// The kernel's text as a Log keeps it; a hostile one all the same (a
	// snapshot can come from a daemon that is not picket).
	s.KernelLog = &snapshot.KernelLog{Available: true, Kinds: []snapshot.KernelKind{
		{Kind: "oom-kill", Count: 1 << 40, LastHour: 3, Last: s.Time, Message: `Out of memory: Killed process 1 (\x1b[2J) ` + hostileNames[0]},
		{Kind: "fork-rejected\x1b", Count: 2, Last: s.Time.Add(-time.Hour), Message: "cgroup: fork rejected by pids controller in /\u202e\x1b]0;x\a"},
	}}
	return s
}

// TestKernelLines: the kernel's latest words under the verdict, newest
// first, at most three kinds; one line on a small screen; a word when the
// log is unreadable; nothing when it said nothing picket knows.
func TestKernelLines(t *testing.T) {
	s := host(0, []snapshot.Group{grp("a", 1, "x", 1)}, nil)
	s.KernelLog = &snapshot.KernelLog{Available: true, Kinds: []snapshot.KernelKind{
		{Kind: "tcp-orphans", Count: 14, LastHour: 14, Last: t0.Add(-8 * time.Minute), Message: "TCP: too many orphaned sockets"},
		{Kind: "conntrack-full"},
		{Kind: "oom-kill", Count: 2, LastHour: 1, Last: t0.Add(-time.Minute), Message: `Out of memory: Killed process 1999 (\x1b[31mx) total-vm:1kB`},
		{Kind: "syn-flood", Count: 1, Last: t0.Add(-3 * time.Hour), Message: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:443. Sending cookies."},
		{Kind: "file-max", Count: 1, Last: t0.Add(-4 * time.Hour), Message: "VFS: file-max limit 100 reached"},
	}}
	m := NewModel()
	m.Update(s, nil, nil)
	f := m.Render(200, 0, Style{ASCII: true})
	var got []string
	for _, l := range strings.Split(f, "\n") {
		if strings.HasPrefix(l, "KERNEL") || strings.HasPrefix(l, "        ") {
			got = append(got, normalizeTime(l))
		}
	}
	want := []string{
		`KERNEL  T  oom-kill x2 (1 in the last hour)  Out of memory: Killed process 1999 (\x1b[31mx) total-vm:1kB`,
		`        T  tcp-orphans x14 (14 in the last hour)  TCP: too many orphaned sockets`,
		`        T  syn-flood x1  TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:443. Sending cookies.`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kernel lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f := m.Render(200, 20, Style{Interactive: true}); strings.Count(f, "Killed process") != 1 || strings.Contains(f, "orphaned") {
		t.Errorf("a 20-line screen shows more than one kernel line:\n%s", f)
	}
	s.KernelLog = &snapshot.KernelLog{Error: "/dev/kmsg is not readable: it needs root or CAP_SYSLOG"}
	m.Update(s, nil, nil)
	if f := m.Render(200, 0, Style{}); !strings.Contains(f, "KERNEL  /dev/kmsg is not readable") {
		t.Errorf("unreadable:\n%s", f)
	}
	s.KernelLog = &snapshot.KernelLog{Available: true, Kinds: []snapshot.KernelKind{{Kind: "oom-kill"}}}
	m.Update(s, nil, nil)
	if f := m.Render(200, 0, Style{}); strings.Contains(f, "KERNEL") {
		t.Errorf("a quiet kernel takes a line:\n%s", f)
	}
}

var frameTimes = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S*`)

func normalizeTime(s string) string { return frameTimes.ReplaceAllString(s, "T") }

// TestRenderFitsAndIsInert draws hostile names at every size from tiny to
// wide: no line may be wider than the screen, no frame taller, and no byte
// a name chose may reach the terminal as a control character.
func TestRenderFitsAndIsInert(t *testing.T) {
	m := NewModel()
	m.Update(hostileHost(0), nil, nil)
	rep := doctor.Report{Status: doctor.Critical, Findings: []doctor.Finding{
		{ID: "process-storm", Severity: doctor.Critical, Title: "1000000 \x1b[2J processes of user \\x1b\u202e"},
		{ID: "tcp-orphans", Severity: doctor.Warning, Title: "w"},
	}}
	m.Update(hostileHost(1), &rep, fmt.Errorf("partial: \x1b]52;c;AAAA\x07"))
	styles := []Style{{}, {ASCII: true}, {Interactive: true}, {Interactive: true, ASCII: true}, {Interactive: true, Color: true}}
	for _, st := range styles {
		for _, width := range []int{1, 2, 10, 20, 40, 60, 79, 80, 81, 120, 200, 400} {
			for _, height := range []int{0, 1, 3, 5, 10, 24, 50} {
				for _, prep := range [][]string{nil, {"?"}, {"/", "A"}, {"tab", "end"}} {
					mm := *m
					for _, k := range prep {
						mm.Key(k)
					}
					f := mm.Render(width, height, st)
					lines := strings.Split(f, "\n")
					if height > 0 && len(lines) > height {
						t.Fatalf("%+v %dx%d %v: %d lines", st, width, height, prep, len(lines))
					}
					if st.Interactive && height > 0 && len(lines) != height {
						t.Errorf("%+v %dx%d %v: %d lines, want the full screen", st, width, height, prep, len(lines))
					}
					for i, l := range lines {
						plain := l
						if st.Color {
							plain = ansi.Strip(l)
						}
						if w := ansi.StringWidth(plain); w > width {
							t.Fatalf("%+v %dx%d %v: line %d is %d cells wide: %q", st, width, height, prep, i, w, plain)
						}
						if j := strings.IndexFunc(plain, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }); j >= 0 {
							t.Fatalf("%+v %dx%d %v: line %d has a control character: %q", st, width, height, prep, i, plain)
						}
						if strings.ContainsRune(plain, '\u202e') || strings.ContainsRune(plain, '\ufffd') {
							t.Fatalf("%+v %dx%d: line %d holds a bidi override or a replaced byte: %q", st, width, height, i, plain)
						}
					}
				}
			}
		}
	}
	// At 80 columns the names are there, escaped and cut.
	f := m.Render(80, 0, Style{})
	for _, want := range []string{`\x1b[31mhost\u202e\nname`, `\x1b[2J\x1b[`, `back\\slash\\x1b`, `\xff\xfe\xc3`, `1000000 \x1b[2J processes of user \x1b\u202e`, "AAAA…"} {
		if !strings.Contains(f, want) {
			t.Errorf("frame lacks %q:\n%s", want, f)
		}
	}
}

func TestRender80x24(t *testing.T) {
	m := NewModel()
	m.Interval = time.Second
	m.Source = "collected here"
	var groups []snapshot.Group
	for i := range 30 {
		groups = append(groups, grp(fmt.Sprintf("user%d", i), uint32(1000+i), fmt.Sprintf("cmd%d", i), 100-i))
	}
	m.Update(host(0, groups, []snapshot.Holder{holder(10, "a", "x", 5, 0)}), nil, nil)
	groups = append([]snapshot.Group(nil), groups...)
	groups[3].Count += 40
	m.Update(host(1, groups, []snapshot.Holder{holder(10, "a", "x", 5, 10)}), &doctor.Report{Status: doctor.OK, Findings: make([]doctor.Finding, 8)}, nil)
	f := m.Render(80, 24, Style{Interactive: true})
	lines := strings.Split(f, "\n")
	if len(lines) != 24 {
		t.Fatalf("%d lines:\n%s", len(lines), f)
	}
	for _, want := range []string{
		"picket top  test", "every 1s",
		"orphans", " 30% 300/1000", "files", " 95% 95.0k/100k", "pids", "threads", "tcp mem",
		"OK  8 checks: nothing near a limit",
		"▸ USER × COMMAND  30 groups  1-", "COUNT↓  CHANGE",
		"   137     +40       97   97.0 MiB  user3   cmd3",
		"  SOCKET HOLDERS  1 processes", "TOTAL↓",
		"q quit  ? help  / filter",
	} {
		if !strings.Contains(f, want) {
			t.Errorf("80x24 frame lacks %q:\n%s", want, f)
		}
	}
	// The holders table shrinks to its one row; the groups take the rest.
	if n := strings.Count(f, " cmd"); n < 12 {
		t.Errorf("only %d group rows on 24 lines:\n%s", n, f)
	}
	if !strings.HasPrefix(lines[23], "q quit") {
		t.Errorf("last line %q, want the keys", lines[23])
	}
	// Scrolling moves the window and says where it is.
	m.Key("end")
	if f := m.Render(80, 24, Style{Interactive: true}); !strings.Contains(f, "-30 of 30") || !strings.Contains(f, "cmd29") {
		t.Errorf("after End:\n%s", f)
	}
}

func TestLimitBars(t *testing.T) {
	s := host(0, nil, nil)
	s.Kernel.Conntrack = &snapshot.Conntrack{Count: 10, Max: 0}
	s.Beancounters = []snapshot.Beancounter{
		{UID: "101", Resource: "numothersock", Held: 400, Barrier: 400, Limit: 400, Failcnt: 17},
		{UID: "101", Resource: "numproc", Held: 10, Barrier: 400, Limit: 400},           // far from its barrier
		{UID: "101", Resource: "numtcpsock", Held: 390, Barrier: 400, Limit: 400},       // near it
		{UID: "101", Resource: "oomguarpages", Held: 900, Barrier: 400, Limit: 1 << 63}, // a guarantee
	}
	var got []string
	for _, b := range limitBars(s) {
		got = append(got, b.label+" "+b.values())
	}
	want := []string{"orphans 300/1000", "tcp mem 20.0K/11.7M", "files 95.0k/100k", "pids 0/32.8k", "threads 0/10.0k", "conntrack 10/?", "numothersock 400/400 !17", "numtcpsock 390/400"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bars:\n%q\nwant\n%q", got, want)
	}
	// Two containers: the veid is kept.
	s.Beancounters = append(s.Beancounters, snapshot.Beancounter{UID: "102", Resource: "numfile", Held: 9, Barrier: 10, Limit: 10})
	bars := limitBars(s)
	if l := bars[len(bars)-1].label; l != "102 numfile" {
		t.Errorf("label %q", l)
	}
	// Too many for the screen: the last cell counts the rest.
	m := NewModel()
	m.Update(s, nil, nil)
	f := m.Render(80, 18, Style{Interactive: true})
	if !strings.Contains(f, "+6 more limits") || !strings.Contains(f, "files ") || !strings.Contains(f, "101 numothe") || strings.Contains(f, "pids") {
		t.Errorf("on 18 lines: want the nearest limits (101 numothersock refusing, files at 95%%) and +6 more:\n%s", f)
	}
	// One line, one column: the nearest limit alone.
	f = m.Render(40, 14, Style{Interactive: true})
	if lines := strings.Split(f, "\n"); !strings.HasPrefix(lines[1], "101 numothe") || strings.Contains(f, "more limits") {
		t.Errorf("on 40x14: want numothersock alone:\n%s", f)
	}
}

func TestCompact(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {9999, "9999"}, {10000, "10.0k"}, {21564, "21.6k"}, {262144, "262k"}, {3247617, "3.2M"}, {999_999_999, "1.0G"}, {1 << 62, "4.6E"}} {
		if got := compactCount(c.n); got != c.want {
			t.Errorf("compactCount(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0B"}, {1023, "1023B"}, {1024, "1.0K"}, {7757824, "7.4M"}, {25346 << 20, "24.8G"}, {1 << 62, "4.0E"}} {
		if got := compactBytes(c.n); got != c.want {
			t.Errorf("compactBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestShare(t *testing.T) {
	for _, c := range []struct{ avail, g, h, top, wantG, wantH int }{
		{14, 100, 100, 0, 7, 7},
		{14, 100, 1, 0, 13, 1},
		{14, 2, 100, 0, 2, 12},
		{14, 0, 0, 0, 1, 1},
		{14, 100, 100, 3, 3, 3},
		{1, 100, 100, 0, 1, 1},
		{-5, 100, 100, 0, 1, 1},
	} {
		if g, h := share(c.avail, c.g, c.h, c.top); g != c.wantG || h != c.wantH {
			t.Errorf("share(%d, %d, %d, %d) = %d, %d; want %d, %d", c.avail, c.g, c.h, c.top, g, h, c.wantG, c.wantH)
		}
	}
}

func TestUTF8Locale(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want bool
	}{
		{nil, false},
		{[]string{"LANG=C.UTF-8"}, true},
		{[]string{"LANG=en_US.utf8"}, true},
		{[]string{"LANG=C.UTF-8", "LC_ALL=C"}, false},
		{[]string{"LC_CTYPE=de_DE.UTF-8", "LANG=C"}, true},
		{[]string{"LANG=POSIX"}, false},
	} {
		if got := utf8Locale(c.env); got != c.want {
			t.Errorf("utf8Locale(%q) = %v", c.env, got)
		}
	}
}

// A forecast shows beside its limit bar and in the holder's ETA column.
func TestForecastETA(t *testing.T) {
	m := NewModel()
	s := host(0, nil, []snapshot.Holder{holder(200, "root", "leaky", 0, 900), holder(300, "www", "steady", 1500, 0)})
	s.Kernel.PidMax = 32768
	s.Processes.Total = 3000
	s.Forecasts = []snapshot.Forecast{{Limit: "RLIMIT_NOFILE", PID: 200, ETASeconds: 1800}, {Limit: "pid_max", ETASeconds: 7800}}
	m.Update(s, nil, nil)
	etas := map[int]float64{}
	for _, r := range m.HolderRows() {
		etas[r.PID] = r.ETA
	}
	if etas[200] != 1800 || etas[300] != 0 {
		t.Errorf("holder ETAs %v", etas)
	}
	f := m.Render(120, 30, Style{})
	if !strings.Contains(f, "full ~2h10m") || !strings.Contains(f, "~30m") {
		t.Errorf("no ETA in the frame:\n%s", f)
	}
}

// TestKernelThreadsHidden: lone kernel threads (cpuhp/0, kworker/…) are
// not listed until K, as htop hides them; a kernel-thread name many
// processes share, and a root process that only calls itself kworker,
// stay. K again hides them.
func TestKernelThreadsHidden(t *testing.T) {
	kthread := func(comm string, n int) snapshot.Group {
		g := grp("root", 0, comm, n)
		g.KernelThread = true
		return g
	}
	m := NewModel()
	m.Update(host(0, []snapshot.Group{grp("mail", 8, "imapd", 20), kthread("cpuhp/0", 1), kthread("kworker/0:1-events", 1),
		kthread("kauditd", 1), kthread("pkt-kpile", 3), grp("root", 0, "kworker/fake", 1)}, nil), nil, nil)
	comms := func() []string {
		var out []string
		for _, r := range m.GroupRows() {
			out = append(out, r.Comm)
		}
		return out
	}
	if got, want := comms(), []string{"imapd", "pkt-kpile", "kworker/fake"}; !reflect.DeepEqual(got, want) {
		t.Errorf("by default: %q, want %q", got, want)
	}
	if n := m.HiddenKernelGroups(); n != 3 {
		t.Errorf("%d hidden, want 3", n)
	}
	if f := m.Render(80, 0, Style{}); !strings.Contains(f, "6 groups, 3 kernel threads hidden (K)") || strings.Contains(f, "cpuhp") {
		t.Errorf("frame:\n%s", f)
	}
	m.Key("K")
	if got := comms(); len(got) != 6 || !m.ShowsKernelThreads() {
		t.Errorf("after K: %q", got)
	}
	if f := m.Render(80, 0, Style{}); strings.Contains(f, "hidden") || !strings.Contains(f, "cpuhp/0") {
		t.Errorf("frame after K:\n%s", f)
	}
	m.Key("K")
	if got := comms(); len(got) != 3 {
		t.Errorf("after K twice: %q", got)
	}
}

// TestCutIsNotVanished: from a daemon's top N (snapshot.Selection), a
// group or holder that fell below the cut is not shown as gone; one
// heavier than every kept row did vanish.
func TestCutIsNotVanished(t *testing.T) {
	m := NewModel()
	m.Update(host(0, []snapshot.Group{grp("mail", 8, "imapd", 60), grp("www", 33, "httpd", 5), grp("root", 0, "cron", 2)},
		[]snapshot.Holder{holder(10, "mail", "imapd", 50, 0), holder(11, "www", "httpd", 3, 0), holder(12, "root", "cron", 1, 0)}), nil, nil)
	cur := host(1, []snapshot.Group{grp("www", 33, "httpd", 5), grp("root", 0, "cron", 3)},
		[]snapshot.Holder{holder(11, "www", "httpd", 3, 0), holder(12, "root", "cron", 2, 0)})
	// httpd fell below the top 2 (as 4 processes, say); imapd is gone.
	cur.Selection = &snapshot.Selection{Top: 2, Groups: 3, Holders: 3}
	m.Update(cur, nil, nil)
	if got, want := groupViews(m.GroupRows()), []groupView{{"httpd", 5, 0, true}, {"cron", 3, 1, true}, {"imapd", 0, -60, true}}; !reflect.DeepEqual(got, want) {
		t.Errorf("groups %+v, want %+v", got, want)
	}
	var pids []int
	for _, r := range m.HolderRows() {
		pids = append(pids, r.PID)
	}
	if want := []int{11, 12, 10}; !reflect.DeepEqual(pids, want) {
		t.Errorf("holders %v, want %v", pids, want)
	}
	// Cut again, and this time a light group is missing: below the cut,
	// not gone.
	m.Update(host(2, []snapshot.Group{grp("root", 0, "cron", 4)}, nil), nil, nil)
	last := host(3, []snapshot.Group{grp("root", 0, "cron", 4)}, nil)
	m.Update(last, nil, nil)
	m.Update(host(4, []snapshot.Group{grp("mail", 8, "imapd", 9), grp("www", 33, "httpd", 5)}, nil), nil, nil)
	cut := host(5, []snapshot.Group{grp("mail", 8, "imapd", 9)}, nil)
	cut.Selection = &snapshot.Selection{Top: 1, Groups: 2}
	m.Update(cut, nil, nil)
	if got, want := groupViews(m.GroupRows()), []groupView{{"imapd", 9, 0, true}}; !reflect.DeepEqual(got, want) {
		t.Errorf("below the cut: %+v, want %+v", got, want)
	}
}
