package doctor

import (
	"fmt"
	"sort"
	"time"

	"github.com/picket-guard/picket/internal/snapshot"
)

// groupKey is a user × command group's identity, as the snapshot forms it.
type groupKey struct {
	uid  uint32
	comm string
}

// groupDetail is what the process list says about one group beyond its
// count: where its processes came from and how young they are.
type groupDetail struct {
	parentPID   int
	parentComm  string
	fromParent  int
	newLastMin  int
	kernelOnly  bool
	members     int
	parentCount map[int]int
	unitCount   map[string]int
	unit        string // the systemd unit most of the group runs in, "" when none
}

// groupDetails walks the process list once for the groups asked about.
func groupDetails(s *snapshot.Snapshot, keys []groupKey) map[groupKey]*groupDetail {
	out := make(map[groupKey]*groupDetail, len(keys))
	for _, k := range keys {
		out[k] = &groupDetail{kernelOnly: true, parentCount: map[int]int{}, unitCount: map[string]int{}}
	}
	if len(out) == 0 {
		return out
	}
	comm := make(map[int]string, len(s.Processes.List))
	recent := s.Time.Add(-time.Minute)
	for _, p := range s.Processes.List {
		comm[p.PID] = p.Comm
		d, ok := out[groupKey{p.UID, p.Comm}]
		if !ok {
			continue
		}
		d.members++
		if !p.KernelThread {
			d.kernelOnly = false
		}
		d.parentCount[p.PPID]++
		if p.Unit != "" {
			d.unitCount[p.Unit]++
		}
		if !p.StartTime.IsZero() && p.StartTime.After(recent) {
			d.newLastMin++
		}
	}
	for _, d := range out {
		best, n := 0, 0
		for ppid, c := range d.parentCount {
			if c > n || (c == n && ppid < best) {
				best, n = ppid, c
			}
		}
		// A parent "stands out" when it forked at least half of a group of
		// several: xinetd for imapd, Postfix's master for smtpd, Apache's
		// parent. A lone process's parent says nothing.
		if best > 0 && d.members >= 2 && n*2 >= d.members {
			d.parentPID, d.fromParent, d.parentComm = best, n, comm[best]
		}
		if d.members == 0 {
			d.kernelOnly = false
		}
		d.unit = majority(d.unitCount)
	}
	return out
}

// majority is the key with the highest count (ties: the smaller key).
func majority(counts map[string]int) string {
	best, n := "", 0
	for k, c := range counts {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best
}

// unitsByPID maps each process to its systemd unit.
func unitsByPID(s *snapshot.Snapshot) map[int]string {
	m := map[int]string{}
	for _, p := range s.Processes.List {
		if p.Unit != "" {
			m[p.PID] = p.Unit
		}
	}
	return m
}

// userByUID indexes the snapshot's per-user totals.
func userByUID(s *snapshot.Snapshot) map[uint32]snapshot.User {
	m := make(map[uint32]snapshot.User, len(s.Processes.Users))
	for _, u := range s.Processes.Users {
		m[u.UID] = u
	}
	return m
}

// topHolders returns the holders with the most sockets by the given
// measure, heaviest first (ties by pid), at most n, skipping zeros.
func topHolders(hs []snapshot.Holder, n int, by func(snapshot.Holder) int) []snapshot.Holder {
	var out []snapshot.Holder
	for _, h := range hs {
		if by(h) > 0 {
			out = append(out, h)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := by(out[i]), by(out[j])
		if a != b {
			return a > b
		}
		return out[i].PID < out[j].PID
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// groupRows turns groups into evidence rows with their parents, youth and
// the owner's RLIMIT_NPROC; prev (may be nil) gives count deltas.
func groupRows(s, prev *snapshot.Snapshot, gs []snapshot.Group) GroupRows {
	keys := make([]groupKey, len(gs))
	for i, g := range gs {
		keys[i] = groupKey{g.UID, g.Comm}
	}
	det := groupDetails(s, keys)
	var before map[groupKey]int
	if prev != nil {
		before = map[groupKey]int{}
		for _, g := range prev.Processes.Groups {
			before[groupKey{g.UID, g.Comm}] = g.Count
		}
	}
	users := userByUID(s)
	rows := make(GroupRows, 0, len(gs))
	for i, g := range gs {
		d := det[keys[i]]
		r := GroupRow{
			User: g.User, UID: g.UID, Comm: g.Comm, Count: g.Count, Threads: g.Threads, RSSBytes: g.RSSBytes,
			SharePercent:      percent(float64(g.Count), float64(s.Processes.Total)),
			StartedLastMinute: d.newLastMin,
			ParentPID:         d.parentPID, ParentComm: d.parentComm, FromParent: d.fromParent,
			NprocLimit: users[g.UID].NprocLimit, UserThreads: users[g.UID].Threads,
			Unit: d.unit,
		}
		if before != nil {
			delta := g.Count - before[keys[i]]
			r.CountDelta = &delta
		}
		rows = append(rows, r)
	}
	return rows
}

// psLine is the command that lists a group's processes: the children of its
// parent when one stands out (and is not init, whose children are
// everything), else the user's processes. Only numbers go into it.
func psLine(parentPID int, uid uint32) string {
	if parentPID > 1 {
		return fmt.Sprintf("ps -o pid,etime,rss,args --ppid %d --sort=-rss | head -20   # the children of pid %d", parentPID, parentPID)
	}
	return fmt.Sprintf("ps -o pid,ppid,etime,rss,args -u %d --sort=-rss | head -20   # the processes of uid %d", uid, uid)
}

// appendNew appends the lines not already in fix.
func appendNew(fix []string, lines ...string) []string {
	for _, l := range lines {
		dup := false
		for _, f := range fix {
			if f == l {
				dup = true
				break
			}
		}
		if !dup {
			fix = append(fix, l)
		}
	}
	return fix
}

// holderGroups adds the socket holders up by user × command, heaviest in
// non-TCP sockets first, at most n.
func holderGroups(s *snapshot.Snapshot, hs []snapshot.Holder, n int) HolderGroupRows {
	units := unitsByPID(s)
	unitCount := map[groupKey]map[string]int{}
	idx := map[groupKey]int{}
	out := HolderGroupRows{}
	for _, h := range hs {
		if h.NonTCP() == 0 {
			continue
		}
		k := groupKey{h.UID, h.Comm}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, HolderGroupRow{User: h.User, UID: h.UID, Comm: h.Comm})
		}
		g := &out[i]
		if u := units[h.PID]; u != "" {
			if unitCount[k] == nil {
				unitCount[k] = map[string]int{}
			}
			unitCount[k][u]++
		}
		g.Processes++
		g.NonTCP += h.NonTCP()
		g.Unix += h.Unix
		g.UDP += h.UDP
		g.TCP += h.TCP
	}
	for k, i := range idx {
		out[i].Unit = majority(unitCount[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].NonTCP > out[j].NonTCP })
	if len(out) > n {
		out = out[:n]
	}
	return out
}
