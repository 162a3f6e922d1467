package doctor

import (
	"sort"
	"testing"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

var t0 = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

// healthy returns a small host on which every check is ok: the base that
// each table row changes one thing of.
func healthy() *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Time: t0, Host: "test",
		Sockets: snapshot.Sockets{
			Totals:     snapshot.SocketCounts{TCP: 10, UDP: 2, Unix: 20, Netlink: 3},
			TCPStates:  map[string]int{"ESTABLISHED": 8, "LISTEN": 2},
			Namespaces: 1,
			Processes:  []snapshot.Holder{},
		},
		Kernel: snapshot.Kernel{
			Sockstat:      &snapshot.Sockstat{SocketsUsed: 40, TCP: snapshot.SockstatTCP{Inuse: 10, Orphan: 1, Alloc: 10, MemPages: 5}},
			TCPMemPages:   []int64{1000, 2000, 3000},
			TCPMaxOrphans: 65536,
			FileNr:        &snapshot.FileNr{Allocated: 1000, Max: 100000},
			NrOpen:        1048576,
			PidMax:        32768,
			ThreadsMax:    10000,
			PageSize:      4096,
		},
		Memory: snapshot.Memory{
			MemTotalBytes: 8 << 30, MemAvailableBytes: 6 << 30,
			VMStat: map[string]uint64{"pswpin": 10, "pswpout": 20, "pgmajfault": 300, "oom_kill": 0},
			PSI:    map[string]snapshot.PSI{"memory": {HasFull: true}},
		},
		Beancounters: []snapshot.Beancounter{},
	}
	setProcs(s, []snapshot.Process{
		{PID: 1, User: "root", Comm: "systemd", Threads: 1, RSSBytes: 10 << 20, FDs: 50, FDLimit: 1024},
		{PID: 2, User: "root", Comm: "kthreadd", Threads: 1, KernelThread: true},
		{PID: 10, PPID: 1, User: "root", Comm: "sshd", Threads: 1, RSSBytes: 5 << 20, FDs: 5},
		{PID: 20, PPID: 1, User: "www-data", UID: 33, Comm: "nginx", Threads: 1, RSSBytes: 8 << 20, FDs: 30, FDLimit: 1024},
	})
	return s
}

// setProcs replaces the process list and derives what the collector
// derives from it: totals, user × command groups and per-user totals.
func setProcs(s *snapshot.Snapshot, list []snapshot.Process) {
	P := &s.Processes
	P.List = list
	P.Total, P.Threads = 0, 0
	type key struct {
		uid  uint32
		comm string
	}
	gi := map[key]int{}
	ui := map[uint32]int{}
	limits := map[uint32]int64{}
	for _, u := range P.Users {
		limits[u.UID] = u.NprocLimit
	}
	P.Groups, P.Users = []snapshot.Group{}, []snapshot.User{}
	for _, p := range list {
		P.Total++
		P.Threads += p.Threads
		k := key{p.UID, p.Comm}
		i, ok := gi[k]
		if !ok {
			i = len(P.Groups)
			gi[k] = i
			P.Groups = append(P.Groups, snapshot.Group{User: p.User, UID: p.UID, Comm: p.Comm})
		}
		P.Groups[i].Count++
		P.Groups[i].Threads += p.Threads
		P.Groups[i].RSSBytes += p.RSSBytes
		j, ok := ui[p.UID]
		if !ok {
			j = len(P.Users)
			ui[p.UID] = j
			P.Users = append(P.Users, snapshot.User{User: p.User, UID: p.UID, NprocLimit: limits[p.UID]})
		}
		P.Users[j].Count++
		P.Users[j].Threads += p.Threads
	}
	sort.SliceStable(P.Groups, func(i, j int) bool { return P.Groups[i].Count > P.Groups[j].Count })
	sort.SliceStable(P.Users, func(i, j int) bool { return P.Users[i].Threads > P.Users[j].Threads })
}

// many returns n processes of one user and command, children of ppid,
// with pids from first.
func many(n, first, ppid int, user string, uid uint32, comm string, rss uint64) []snapshot.Process {
	out := make([]snapshot.Process, n)
	for i := range out {
		out[i] = snapshot.Process{PID: first + i, PPID: ppid, User: user, UID: uid, Comm: comm, Threads: 1, RSSBytes: rss,
			StartTime: t0.Add(-time.Hour), FDs: 4}
	}
	return out
}

// run runs one check with default thresholds.
func run(t *testing.T, c Check, prev, cur *snapshot.Snapshot) Finding {
	t.Helper()
	in := Input{Prev: prev, Cur: cur, Interval: time.Second, Thresholds: DefaultThresholds()}
	return runOne(c, in)
}

// evInt reads an integer evidence value whatever its Go type.
func evInt(t *testing.T, f Finding, key string) int64 {
	t.Helper()
	v, ok := f.Evidence.Get(key)
	if !ok {
		t.Fatalf("%s: evidence has no %q: %v", f.ID, key, f.Evidence)
	}
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	t.Fatalf("%s: evidence %q is %T, not an integer", f.ID, key, v)
	return 0
}

func wantSeverity(t *testing.T, f Finding, want Severity) {
	t.Helper()
	if f.Severity != want {
		t.Errorf("%s: severity %s, want %s (%s)", f.ID, f.Severity, want, f.Title)
	}
}
