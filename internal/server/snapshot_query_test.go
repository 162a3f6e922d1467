package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
)

// TestSnapshotTopAndFilters: ?top=N keeps each table's N heaviest rows and
// says how many there were; user, comm and unit pick rows without
// recounting them; the whole snapshot is unchanged when nothing is asked.
func TestSnapshotTopAndFilters(t *testing.T) {
	src := loadedSource(t)
	h := newServer(t, Options{Source: src}).Handler()
	get := func(path string) snapshot.Snapshot {
		t.Helper()
		w := do(t, h, http.MethodGet, path, nil)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		var s snapshot.Snapshot
		strictDecode(t, w.Body.String(), &s)
		return s
	}
	full := src.snap

	whole := get("/api/v1/snapshot")
	if whole.Selection != nil || len(whole.Processes.List) != len(full.Processes.List) {
		t.Errorf("no parameters: selection %+v, %d of %d processes", whole.Selection, len(whole.Processes.List), len(full.Processes.List))
	}

	s := get("/api/v1/snapshot?top=2")
	if len(s.Processes.Groups) != 2 || s.Processes.Groups[0] != full.Processes.Groups[0] || len(s.Sockets.Processes) != 2 || len(s.Processes.Users) != 2 {
		t.Errorf("top=2: %d groups (%+v), %d holders, %d users", len(s.Processes.Groups), s.Processes.Groups, len(s.Sockets.Processes), len(s.Processes.Users))
	}
	sel := s.Selection
	if sel == nil || sel.Top != 2 || sel.Groups != len(full.Processes.Groups) || sel.Holders != len(full.Sockets.Processes) || sel.List != len(full.Processes.List) {
		t.Errorf("top=2: selection %+v", sel)
	}
	if !sel.CutGroups(len(s.Processes.Groups)) {
		t.Error("top=2 does not say groups were cut")
	}
	// The list: the kept holders' processes and the 2 largest.
	pids := map[int]bool{}
	for _, p := range s.Processes.List {
		pids[p.PID] = true
	}
	for _, ho := range s.Sockets.Processes {
		if !pids[ho.PID] {
			t.Errorf("top=2: holder %d is not in the list", ho.PID)
		}
	}
	if len(s.Processes.List) > 4 || s.Processes.Total != full.Processes.Total || s.Kernel.Sockstat.TCP.Orphan != full.Kernel.Sockstat.TCP.Orphan {
		t.Errorf("top=2: %d in the list, total %d: host totals must stay", len(s.Processes.List), s.Processes.Total)
	}

	for _, q := range []string{"user=alice", fmt.Sprintf("user=%d", uidOf(t, full, "alice"))} {
		s = get("/api/v1/snapshot?" + q)
		if len(s.Processes.List) == 0 || len(s.Processes.Groups) == 0 {
			t.Fatalf("%s: nothing", q)
		}
		for _, p := range s.Processes.List {
			if p.User != "alice" {
				t.Errorf("%s: process %d of %s", q, p.PID, p.User)
			}
		}
		for _, g := range s.Processes.Groups {
			if g.User != "alice" {
				t.Errorf("%s: group %+v", q, g)
			}
		}
		if len(s.Processes.Users) != 1 || s.Processes.Users[0].User != "alice" {
			t.Errorf("%s: users %+v", q, s.Processes.Users)
		}
	}

	s = get("/api/v1/snapshot?comm=imapd")
	n := 0
	for _, g := range full.Processes.Groups {
		if g.Comm == "imapd" {
			n += g.Count
		}
	}
	if len(s.Processes.List) != n || n == 0 {
		t.Errorf("comm=imapd: %d processes, want %d", len(s.Processes.List), n)
	}
	for _, g := range s.Processes.Groups {
		if g.Comm != "imapd" {
			t.Errorf("comm=imapd: group %+v", g)
		}
	}
	for _, ho := range s.Sockets.Processes {
		if ho.Comm != "imapd" {
			t.Errorf("comm=imapd: holder %+v", ho)
		}
	}
	s = get("/api/v1/snapshot?comm=nosuchcommand")
	if s.Processes.List == nil || len(s.Processes.List) != 0 || len(s.Processes.Groups) != 0 || s.Selection.List != 0 {
		t.Errorf("comm=nosuchcommand: %+v", s.Processes)
	}

	for _, bad := range []string{"top=0", "top=-1", "top=x", "top=1000001"} {
		w := do(t, h, http.MethodGet, "/api/v1/snapshot?"+bad, nil)
		if msg := jsonError(t, w, http.StatusBadRequest); !strings.Contains(msg, "top") {
			t.Errorf("%s: %q", bad, msg)
		}
	}

	// The same query twice is the same bytes (cached), a new snapshot new
	// ones.
	a := do(t, h, http.MethodGet, "/api/v1/snapshot?top=3", nil).Body.String()
	b := do(t, h, http.MethodGet, "/api/v1/snapshot?top=3", nil).Body.String()
	if a != b {
		t.Error("the same query answered differently for the same snapshot")
	}
}

func uidOf(t *testing.T, s *snapshot.Snapshot, user string) uint32 {
	t.Helper()
	for _, u := range s.Processes.Users {
		if u.User == user {
			return u.UID
		}
	}
	t.Fatalf("no user %s", user)
	return 0
}

// bigSnapshot is a busy host: n processes of n/10 users, each holding
// sockets, in the shape collect makes (heaviest first).
func bigSnapshot(n int) *snapshot.Snapshot {
	s := &snapshot.Snapshot{Host: "big"}
	P := &s.Processes
	for i := range n {
		uid := uint32(1000 + i%(n/10))
		user := fmt.Sprintf("user%05d", uid)
		P.List = append(P.List, snapshot.Process{PID: 1000 + i, PPID: 1, User: user, UID: uid, Comm: "imapd", State: "S", Threads: 1, RSSBytes: uint64(4<<20 + i), FDs: 12,
			Cgroup: "/system.slice/dovecot.service", Unit: "dovecot.service"})
		s.Sockets.Processes = append(s.Sockets.Processes, snapshot.Holder{PID: 1000 + i, User: user, UID: uid, Comm: "imapd", SocketCounts: snapshot.SocketCounts{TCP: 2, Unix: 1}, Total: 3, FDs: 12})
	}
	for u := range n / 10 {
		uid := uint32(1000 + u)
		user := fmt.Sprintf("user%05d", uid)
		P.Groups = append(P.Groups, snapshot.Group{User: user, UID: uid, Comm: "imapd", Count: 10, Threads: 10, RSSBytes: 40 << 20})
		P.Users = append(P.Users, snapshot.User{User: user, UID: uid, Count: 10, Threads: 10, NprocLimit: 4096})
	}
	P.Total, P.Threads = n, n
	return s
}

// TestSnapshotTopIsSmall: on a host of 30,000 processes the answer
// `picket top --from` and the dashboard ask for is a small fraction of
// the whole snapshot.
func TestSnapshotTopIsSmall(t *testing.T) {
	src := loadedSource(t)
	src.snap = bigSnapshot(30_000)
	h := newServer(t, Options{Source: src}).Handler()
	whole := do(t, h, http.MethodGet, "/api/v1/snapshot", nil).Body.Len()
	top := do(t, h, http.MethodGet, "/api/v1/snapshot?top=200", nil).Body.Len()
	user := do(t, h, http.MethodGet, "/api/v1/snapshot?user=user01000", nil).Body.Len()
	t.Logf("30,000 processes: whole %d bytes, top=200 %d bytes, user= %d bytes", whole, top, user)
	if top*20 > whole || user*100 > whole {
		t.Errorf("top=200 is %d bytes and user= %d of %d: not narrowed", top, user, whole)
	}
}
