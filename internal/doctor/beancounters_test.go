package doctor

import (
	"slices"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

func bc(resource string, held, barrier, failcnt uint64) snapshot.Beancounter {
	return snapshot.Beancounter{UID: "101", Resource: resource, Held: held, MaxHeld: held, Barrier: barrier, Limit: barrier, Failcnt: failcnt}
}

func TestBeancounters(t *testing.T) {
	const longMax = 9223372036854775807
	for _, tc := range []struct {
		name  string
		rows  []snapshot.Beancounter
		want  Severity
		title string
		rows_ int
	}{
		{"not OpenVZ", nil, OK, "not an OpenVZ", 0},
		{"the frozen V-Server: numothersock at its barrier, refused", []snapshot.Beancounter{bc("kmemsize", 2854282, 11055923, 0), bc("numothersock", 400, 400, 17)},
			Critical, "numothersock refused 17 allocations (held 400 of barrier 400)", 1},
		{"refused long ago, now low", []snapshot.Beancounter{bc("numproc", 10, 240, 3)}, Critical, "numproc refused 3", 1},
		{"at 90% of the barrier", []snapshot.Beancounter{bc("numothersock", 360, 400, 0)}, Warning, "numothersock held at 90.0%", 1},
		{"just below 90%", []snapshot.Beancounter{bc("numothersock", 359, 400, 0)}, OK, "none refused", 0},
		{"guarantees are not limits", []snapshot.Beancounter{bc("oomguarpages", 27427, 26112, 0), bc("vmguarpages", 40000, 33792, 0)}, OK, "none", 0},
		{"unlimited barrier", []snapshot.Beancounter{bc("physpages", 27427, longMax, 0)}, OK, "none", 0},
		{"zero barrier", []snapshot.Beancounter{bc("physpages", 27427, 0, 0)}, OK, "none", 0},
		{"dummy rows", []snapshot.Beancounter{bc("dummy", 0, 0, 0)}, OK, "none", 0},
		{"refusals sort first", []snapshot.Beancounter{bc("numtcpsock", 359, 360, 0), bc("numfile", 100, 9312, 2)}, Critical, "numfile refused 2 allocations (held 100 of barrier 9312), and 1 more rows", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			s.Beancounters = tc.rows
			if tc.rows == nil {
				s.Beancounters = []snapshot.Beancounter{}
			}
			f := run(t, Beancounters{}, nil, s)
			wantSeverity(t, f, tc.want)
			if !strings.Contains(f.Title, tc.title) {
				t.Errorf("title %q lacks %q", f.Title, tc.title)
			}
			if tc.rows == nil {
				if v, _ := f.Evidence.Get("present"); v != false {
					t.Errorf("present = %v", v)
				}
				return
			}
			rows, _ := f.Evidence.Get("rows")
			if got := len(rows.(BeancounterRows)); got != tc.rows_ {
				t.Errorf("%d rows, want %d: %v", got, tc.rows_, rows)
			}
		})
	}
}

// TestBeancountersNumothersock: numothersock's refusal names what it is made of
// (the top non-TCP holders, Postfix's master first) and suggests Postfix's
// default_process_limit and a barrier for the container.
func TestBeancountersNumothersock(t *testing.T) {
	s := healthy()
	s.Beancounters = []snapshot.Beancounter{bc("numothersock", 400, 400, 17)}
	s.Sockets.Processes = []snapshot.Holder{
		{PID: 302, User: "root", Comm: "master", SocketCounts: snapshot.SocketCounts{Unix: 120}, Total: 120, FDs: 130},
		{PID: 410, User: "named", UID: 25, Comm: "named", SocketCounts: snapshot.SocketCounts{UDP: 40, Netlink: 4}, Total: 44},
		{PID: 50, User: "root", Comm: "sshd", SocketCounts: snapshot.SocketCounts{TCP: 3}, Total: 3},
	}
	s.Sockets.Totals = snapshot.SocketCounts{Unix: 356, UDP: 40, Netlink: 4, TCP: 12}
	prev := healthy()
	prev.Beancounters = []snapshot.Beancounter{bc("numothersock", 400, 400, 10)}
	f := run(t, Beancounters{}, prev, s)
	wantSeverity(t, f, Critical)
	v, _ := f.Evidence.Get("top_non_tcp_holders")
	hs := v.(HolderRows)
	if len(hs) != 2 || hs[0].PID != 302 || hs[0].Unix != 120 || hs[1].PID != 410 || hs[1].UDP != 40 || hs[0].SharePercent != 30 {
		t.Errorf("holders = %+v", hs)
	}
	rows, _ := f.Evidence.Get("rows")
	if inc := rows.(BeancounterRows)[0].FailcntIncrease; inc == nil || *inc != 7 {
		t.Errorf("failcnt increase = %v, want 7", inc)
	}
	for _, want := range []string{"postconf -e default_process_limit=10", "postfix reload",
		"# or, on the hardware node, raise the barrier: vzctl set 101 --numothersock 800:800 --save"} {
		if !slices.Contains(f.Fix, want) {
			t.Errorf("fix lacks %q: %q", want, f.Fix)
		}
	}
	if !strings.Contains(f.Explanation, "numothersock counts") || !strings.Contains(f.Explanation, "default_process_limit") {
		t.Errorf("explanation: %s", f.Explanation)
	}
}

// TestBeancountersHostileRow: a row whose container id or resource is not
// what OpenVZ prints never reaches a fix line.
func TestBeancountersHostileRow(t *testing.T) {
	s := healthy()
	s.Beancounters = []snapshot.Beancounter{{UID: "101; reboot", Resource: "numothersock", Held: 1, Barrier: 1, Limit: 1, Failcnt: 1},
		{UID: "102", Resource: "x$(reboot)", Held: 1, Barrier: 1, Limit: 1, Failcnt: 1}}
	f := run(t, Beancounters{}, nil, s)
	for _, l := range f.Fix {
		if strings.Contains(l, "reboot") {
			t.Errorf("hostile row in fix: %q", l)
		}
	}
	if strings.Contains(f.Title, "$(reboot)") && !strings.Contains(f.Title, "x$(reboot)") {
		t.Errorf("title %q", f.Title)
	}
}

func TestBeancountersUnreadable(t *testing.T) {
	s := healthy()
	s.Errors = []string{"beancounters: /proc/user_beancounters:3: want resource and 5 numbers, got 2 fields"}
	wantSeverity(t, run(t, Beancounters{}, nil, s), Unknown)
}

func TestBeancountersNumproc(t *testing.T) {
	s := healthy()
	setProcs(s, append(s.Processes.List, many(30, 100, 1, "www-data", 33, "apache2", 1<<20)...))
	s.Beancounters = []snapshot.Beancounter{bc("numproc", 230, 240, 0)}
	f := run(t, Beancounters{}, nil, s)
	wantSeverity(t, f, Warning)
	v, ok := f.Evidence.Get("top_groups_by_threads")
	if !ok || v.(GroupRows)[0].Comm != "apache2" || v.(GroupRows)[0].Count != 30 {
		t.Errorf("top groups = %v", v)
	}
	if !slices.Contains(f.Fix, services[1].fix[0]) {
		t.Errorf("no Apache hint in %q", f.Fix)
	}
}
