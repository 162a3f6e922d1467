package server

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/picket-guard/picket/internal/snapshot"
)

// A busy host's snapshot lists every process and every socket holder:
// tens of thousands of rows, megabytes a poll, while `picket top` shows a
// screenful and the dashboard 25 rows. These parameters let a client ask
// for what it shows:
//
//	top=N    the N heaviest rows of each table (groups, users, units and
//	         socket holders, already heaviest first); the process list
//	         keeps the processes those holders name and the N with the
//	         most RSS
//	user=U   rows of user U (a name, or a uid)
//	comm=C   rows of command C (exact)
//	unit=S   rows of systemd unit S (exact)
//
// A filter picks rows; it never recounts them: a group, user or unit keeps
// the totals the host gave it (RLIMIT_NPROC counts a user's processes
// whatever they run). Host totals (processes.total, the kernel's tables)
// are never narrowed. The answer's "selection" says what was asked and how
// many rows each table had before top.
const maxTop = 1_000_000

type snapQuery struct {
	top              int
	user, comm, unit string
	uid              uint32
	byUID            bool
}

// parseSnapQuery reads the parameters; an empty query is the whole
// snapshot (ok false). Unknown parameters are ignored, as they always were.
func parseSnapQuery(v url.Values) (q snapQuery, ok bool, err error) {
	if s := v.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxTop {
			return q, false, fmt.Errorf("top %q: want a whole number from 1 to %d", s, maxTop)
		}
		q.top = n
	}
	q.user, q.comm, q.unit = v.Get("user"), v.Get("comm"), v.Get("unit")
	if q.user != "" {
		// A name made of digits is read as a uid, as ps -u does.
		if n, err := strconv.ParseUint(q.user, 10, 32); err == nil {
			q.uid, q.byUID = uint32(n), true
		}
	}
	return q, q.top > 0 || q.user != "" || q.comm != "" || q.unit != "", nil
}

// key is the query in one canonical string, for the cache.
func (q snapQuery) key() string {
	return strconv.Itoa(q.top) + "\x00" + q.user + "\x00" + q.comm + "\x00" + q.unit
}

func (q snapQuery) userOK(name string, uid uint32) bool {
	if q.user == "" {
		return true
	}
	return name == q.user || q.byUID && uid == q.uid
}

func (q snapQuery) procOK(p *snapshot.Process) bool {
	return q.userOK(p.User, p.UID) && (q.comm == "" || p.Comm == q.comm) && (q.unit == "" || p.Unit == q.unit)
}

// narrow returns a copy of s holding what q asks for; s is not modified
// (published snapshots never are) and the rows are shared, not copied.
func narrow(s *snapshot.Snapshot, q snapQuery) *snapshot.Snapshot {
	c := *s
	P := &c.Processes
	list := s.Processes.List
	type gkey struct {
		uid  uint32
		comm string
	}
	var pids map[int]bool
	var groups map[gkey]bool
	var uids map[uint32]bool
	var units map[string]bool
	if q.user != "" || q.comm != "" || q.unit != "" {
		list = nil
		pids, groups, uids, units = map[int]bool{}, map[gkey]bool{}, map[uint32]bool{}, map[string]bool{}
		for i := range s.Processes.List {
			p := &s.Processes.List[i]
			if !q.procOK(p) {
				continue
			}
			list = append(list, *p)
			pids[p.PID], groups[gkey{p.UID, p.Comm}], uids[p.UID] = true, true, true
			if p.Unit != "" {
				units[p.Unit] = true
			}
		}
		P.Groups = keep(s.Processes.Groups, func(g *snapshot.Group) bool { return groups[gkey{g.UID, g.Comm}] })
		P.Users = keep(s.Processes.Users, func(u *snapshot.User) bool { return uids[u.UID] })
		P.Units = keep(s.Processes.Units, func(u *snapshot.UnitGroup) bool { return units[u.Unit] })
		c.Sockets.Processes = keep(s.Sockets.Processes, func(h *snapshot.Holder) bool { return pids[h.PID] })
	}
	sel := &snapshot.Selection{Top: q.top, User: q.user, Comm: q.comm, Unit: q.unit,
		Groups: len(P.Groups), Users: len(P.Users), Units: len(P.Units), Holders: len(c.Sockets.Processes), List: len(list)}
	if q.top > 0 {
		P.Groups = P.Groups[:min(q.top, len(P.Groups))]
		P.Users = P.Users[:min(q.top, len(P.Users))]
		P.Units = P.Units[:min(q.top, len(P.Units))]
		c.Sockets.Processes = c.Sockets.Processes[:min(q.top, len(c.Sockets.Processes))]
		list = topList(list, c.Sockets.Processes, q.top)
	}
	if list == nil {
		list = []snapshot.Process{}
	}
	P.List = list
	c.Selection = sel
	return &c
}

// topList keeps the processes the kept holders name (the dashboard names a
// holder's history by its start time) and the n with the most RSS, in the
// list's order.
func topList(list []snapshot.Process, holders []snapshot.Holder, n int) []snapshot.Process {
	if len(list) <= n {
		return list
	}
	want := make(map[int]bool, len(holders)+n)
	for _, h := range holders {
		want[h.PID] = true
	}
	order := make([]int, len(list))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(list[b].RSSBytes, list[a].RSSBytes), cmp.Compare(list[a].PID, list[b].PID))
	})
	for _, i := range order[:n] {
		want[list[i].PID] = true
	}
	return keep(list, func(p *snapshot.Process) bool { return want[p.PID] })
}

// keep returns the rows f accepts, never nil (the JSON says [] for none).
func keep[T any](rows []T, f func(*T) bool) []T {
	out := make([]T, 0, min(len(rows), 64))
	for i := range rows {
		if f(&rows[i]) {
			out = append(out, rows[i])
		}
	}
	return out
}

// narrowCache keeps the encoded answers to the last few queries of the
// latest snapshot: a dashboard and a `picket top` poll the same query
// every few seconds, while the snapshot changes once per collection.
type narrowCache struct {
	mu   sync.Mutex
	snap *snapshot.Snapshot
	b    map[string][]byte
}

// maxNarrowed bounds the cache: past it, the oldest answers are dropped
// wholesale (a client that varies its query each poll gets no caching).
const maxNarrowed = 8

func (c *narrowCache) get(s *snapshot.Snapshot, q snapQuery) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != s || len(c.b) >= maxNarrowed {
		c.snap, c.b = s, map[string][]byte{}
	}
	k := q.key()
	if b, ok := c.b[k]; ok {
		return b, nil
	}
	b, err := json.Marshal(narrow(s, q))
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	c.b[k] = b
	return b, nil
}
