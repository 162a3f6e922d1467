package doctor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

func TestProcessStorm(t *testing.T) {
	base := healthy().Processes.List // 4 processes
	for _, tc := range []struct {
		name   string
		extra  []snapshot.Process
		tweak  func(*snapshot.Snapshot, *Thresholds)
		want   Severity
		storms []string
		title  string
	}{
		{"quiet", nil, nil, OK, nil, "no group over 50"},
		{"the imapd storm: 64 imapd of one user", many(64, 1000, 300, "alice", 1001, "imapd", 3<<20), nil, Warning, []string{"alice imapd"},
			"64 imapd processes of user alice (94.1% of 68), 64 forked by pid 300"},
		{"49 is below the count", many(49, 1000, 300, "alice", 1001, "imapd", 1<<20), nil, OK, nil, ""},
		{"50 is a storm", many(50, 1000, 300, "alice", 1001, "imapd", 1<<20), nil, Warning, []string{"alice imapd"}, ""},
		{"big but a small share", append(many(60, 1000, 300, "alice", 1001, "imapd", 1<<20), many(600, 2000, 1, "bob", 1002, "worker", 1<<20)...),
			func(s *snapshot.Snapshot, th *Thresholds) { th.StormMinCount = 100 }, Warning, []string{"bob worker"}, ""},
		{"share threshold", append(many(60, 1000, 300, "alice", 1001, "imapd", 1<<20), many(600, 2000, 1, "bob", 1002, "a", 0)...),
			func(s *snapshot.Snapshot, th *Thresholds) { th.StormMinCount = 55; th.StormMinPercent = 10 }, Warning, []string{"bob a"}, ""},
		{"configurable count", many(20, 1000, 300, "alice", 1001, "imapd", 1<<20),
			func(s *snapshot.Snapshot, th *Thresholds) { th.StormMinCount = 20 }, Warning, []string{"alice imapd"}, ""},
		{"kernel threads are not a storm", kthreads(80), nil, OK, nil, ""},
		{"pid_max nearly used up", nil, func(s *snapshot.Snapshot, _ *Thresholds) { s.Processes.Threads = 32000 }, Critical, nil, "tasks use 97.7% of kernel.pid_max 32768"},
		{"threads-max at 80%", nil, func(s *snapshot.Snapshot, _ *Thresholds) { s.Processes.Threads = 8000 }, Warning, nil, "kernel.threads-max"},
		{"user near RLIMIT_NPROC", many(45, 1000, 300, "alice", 1001, "imapd", 1<<20),
			func(s *snapshot.Snapshot, _ *Thresholds) { setNproc(s, 1001, 50) }, Warning, nil, "user alice runs 45 threads, 90.0% of its RLIMIT_NPROC 50"},
		{"user at RLIMIT_NPROC", many(48, 1000, 300, "alice", 1001, "imapd", 1<<20),
			func(s *snapshot.Snapshot, _ *Thresholds) { setNproc(s, 1001, 50) }, Critical, nil, "RLIMIT_NPROC"},
		{"root is exempt from RLIMIT_NPROC", many(45, 1000, 1, "root", 0, "kworkerish", 1<<20),
			func(s *snapshot.Snapshot, _ *Thresholds) { setNproc(s, 0, 50) }, OK, nil, ""},
		{"unlimited", many(45, 1000, 300, "alice", 1001, "imapd", 1<<20),
			func(s *snapshot.Snapshot, _ *Thresholds) { setNproc(s, 1001, -1) }, OK, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			setProcs(s, append(slices.Clone(base), tc.extra...))
			th := DefaultThresholds()
			if tc.tweak != nil {
				tc.tweak(s, &th)
			}
			f := runOne(ProcessStorm{}, Input{Cur: s, Thresholds: th})
			wantSeverity(t, f, tc.want)
			v, _ := f.Evidence.Get("storms")
			var got []string
			for _, g := range v.(GroupRows) {
				got = append(got, g.User+" "+g.Comm)
			}
			if !slices.Equal(got, tc.storms) {
				t.Errorf("storms %v, want %v", got, tc.storms)
			}
			if !strings.Contains(f.Title, tc.title) {
				t.Errorf("title %q lacks %q", f.Title, tc.title)
			}
			if evInt(t, f, "processes") != int64(s.Processes.Total) || evInt(t, f, "pid_max") != 32768 {
				t.Errorf("evidence = %v", f.Evidence)
			}
		})
	}
}

func setNproc(s *snapshot.Snapshot, uid uint32, limit int64) {
	for i := range s.Processes.Users {
		if s.Processes.Users[i].UID == uid {
			s.Processes.Users[i].NprocLimit = limit
		}
	}
}

func kthreads(n int) []snapshot.Process {
	out := many(n, 5000, 2, "root", 0, "kworker/u8:0", 0)
	for i := range out {
		out[i].KernelThread = true
	}
	return out
}

// TestProcessStormDetail: a storm row says who forked it, how many started
// in the last minute and how it changed over the interval; the fix lists the
// parent's children by pid, never by name.
func TestProcessStormDetail(t *testing.T) {
	prev := healthy()
	setProcs(prev, append(healthy().Processes.List, many(40, 1000, 300, "alice", 1001, "$(reboot)", 1<<20)...))
	s := healthy()
	storm := many(64, 1000, 300, "alice", 1001, "$(reboot)", 1<<20)
	for i := 50; i < 64; i++ {
		storm[i].StartTime = t0.Add(-10 * time.Second)
	}
	storm[63].PPID = 301
	list := append(healthy().Processes.List, snapshot.Process{PID: 300, PPID: 1, User: "root", Comm: "inetd", Threads: 1})
	setProcs(s, append(list, storm...))
	f := run(t, ProcessStorm{}, prev, s)
	wantSeverity(t, f, Warning)
	v, _ := f.Evidence.Get("storms")
	g := v.(GroupRows)[0]
	if g.Count != 64 || g.ParentPID != 300 || g.ParentComm != "inetd" || g.FromParent != 63 || g.StartedLastMinute != 14 ||
		g.CountDelta == nil || *g.CountDelta != 24 {
		t.Errorf("storm row = %+v", g)
	}
	for _, l := range f.Fix {
		if strings.Contains(l, "reboot") {
			t.Errorf("a process name in a fix line: %q", l)
		}
	}
	if !slices.Contains(f.Fix, "ps -o pid,etime,rss,args --ppid 300 --sort=-rss | head -20   # the children of pid 300") {
		t.Errorf("fix = %q", f.Fix)
	}
}

func TestProcessStormNoScan(t *testing.T) {
	s := healthy()
	setProcs(s, nil)
	wantSeverity(t, run(t, ProcessStorm{}, nil, s), Unknown)
}
