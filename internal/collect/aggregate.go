package collect

import (
	"math"
	"sort"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/cgroup"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/snapshot"
)

// fill turns the raw scan into the snapshot's process and socket parts;
// host is picket's own namespace's tables (nil for a light look), hostNS
// that namespace.
func (s *procScanner) fill(snap *snapshot.Snapshot, tables map[uint64]*nsTables, host *nsTables, hostNS uint64) {
	c := s.c
	btime := s.bootTime()
	accounts := c.users.Accounts()
	pageSize := uint64(snap.Kernel.PageSize)
	P := &snap.Processes
	P.List = make([]snapshot.Process, 0, len(s.procs))
	P.Groups = []snapshot.Group{}
	P.Users = []snapshot.User{}
	snap.Sockets.Processes = []snapshot.Holder{}

	type gkey struct {
		uid  uint32
		comm string
	}
	groups := map[gkey]int{}
	users := map[uint32]int{}
	userPid := map[uint32]int{}
	holderIdx := map[int]int{}    // pid -> index in snap.Sockets.Processes
	untabled := map[uint64]bool{} // inodes in no table, already in the totals
	cgs := newCgroupJoin(snap)
	// One name per uid for the whole look: the name service may answer
	// while the look runs, and a user must not have two names in it.
	names := map[uint32]string{}
	nameOf := func(uid uint32) string {
		n, ok := names[uid]
		if !ok {
			n = accounts.Name(uid)
			names[uid] = n
		}
		return n
	}
	for i := range s.procs {
		p := &s.procs[i]
		name := nameOf(p.uid)
		rss := uint64(p.rssPages) * pageSize
		P.Total++
		P.Threads += p.threads
		if p.fds < 0 {
			P.FDUnreadable++
		}
		var start time.Time
		if btime > 0 {
			start = procid.StartTime(btime, p.startTicks)
		}
		sp := snapshot.Process{
			PID: p.pid, PPID: p.ppid, User: name, UID: p.uid, Comm: p.comm,
			State: string(p.state), StartTime: start, Threads: p.threads, RSSBytes: rss,
			KernelThread: p.kthread, FDs: p.fds,
		}
		cgs.add(p, &sp)
		P.List = append(P.List, sp)
		k := gkey{p.uid, p.comm}
		gi, ok := groups[k]
		if !ok {
			gi = len(P.Groups)
			groups[k] = gi
			P.Groups = append(P.Groups, snapshot.Group{User: name, UID: p.uid, Comm: p.comm, KernelThread: p.kthread})
		}
		g := &P.Groups[gi]
		// A root process that names itself kworker/0:1 joins the kernel
		// thread's group and makes it a group worth seeing.
		g.KernelThread = g.KernelThread && p.kthread
		g.Count++
		g.Threads += p.threads
		g.RSSBytes += rss
		// Users are real uids: RLIMIT_NPROC counts a process against its
		// real uid (copy_process, kernel/fork.c), so a setuid-root passwd
		// run by alice is alice's, and an imapd that only set its euid
		// counts for root.
		ui, ok := users[p.ruid]
		if !ok {
			ui = len(P.Users)
			users[p.ruid] = ui
			userPid[p.ruid] = p.pid
			P.Users = append(P.Users, snapshot.User{User: nameOf(p.ruid), UID: p.ruid})
		}
		P.Users[ui].Count++
		P.Users[ui].Threads += p.threads

		if p.sockets() == 0 {
			continue
		}
		t := tables[p.netns]
		h := snapshot.Holder{PID: p.pid, User: name, UID: p.uid, Comm: p.comm, FDs: p.fds}
		hc := (*snapshotCounts)(&h.SocketCounts)
		for _, sr := range s.socketsOf(p, hostNS) {
			kind := kindUnknown
			if host != nil && sr.hashed&host.hashed != 0 {
				// In picket's own namespace's table: its dump counted
				// it. (A process started after the pass has its sockets
				// from /proc, unmarked: they count as in no table, and
				// one the dumps saw too counts twice in this look's
				// totals; the next look counts it once.)
				kind = sr.kind
			} else if t != nil {
				kind = t.kind(sr.ino)
			}
			if kind == kindUnknown {
				// In no table: an unbound UDP or TCP socket (the kernel
				// lists only hashed ones), or a protocol with no table
				// (vsock, MPTCP, AF_ALG...). It exists, so it counts in the
				// totals too, once however many processes hold it, unless
				// another namespace's table lists it (a socket passed into
				// a container): that table counted it already.
				kind = sr.kind // the BPF iterator's
				if kind == kindUnknown {
					kind = s.protoKind(p.pid, sr)
				}
				if !untabled[sr.ino] && !inAnyTable(tables, sr) {
					untabled[sr.ino] = true
					(*snapshotCounts)(&snap.Sockets.Totals).add(kind)
				}
			}
			hc.add(kind)
		}
		// The fd walk's counts are of sockets in picket's own
		// namespace's tables, whose dumps counted them in the totals.
		hc.TCP += int(p.counted.TCP)
		hc.UDP += int(p.counted.UDP)
		hc.Unix += int(p.counted.Unix)
		h.Total = p.sockets()
		cgs.sockets(p, h.Total)
		holderIdx[p.pid] = len(snap.Sockets.Processes)
		snap.Sockets.Processes = append(snap.Sockets.Processes, h)
	}
	cgs.finish()
	s.readLimits(snap, holderIdx, userPid)
}

// socketsOf is what the scan found p to hold; hostNS is picket's own
// network namespace. The slice is valid until the next call.
func (s *procScanner) socketsOf(p *procInfo, hostNS uint64) []sockRef {
	if !p.bpfSocks {
		return s.workers[p.worker].socks[p.inoLo : p.inoLo+p.inoN]
	}
	refs := s.refBuf[:0]
	for _, sk := range s.bpf.list[p.inoLo : p.inoLo+p.inoN] {
		refs = append(refs, bpfRef(sk, hostNS))
	}
	s.refBuf = refs
	return refs
}

// cgroupJoin puts the walk's cgroup paths into the snapshot: each
// process's path, unit and container; each cgroup's process and thread
// counts, itself and below (as pids.current counts); and the processes
// grouped by unit.
type cgroupJoin struct {
	snap  *snapshot.Snapshot
	idx   map[string]int         // cgroup path -> index in snap.Cgroups
	paths map[string]*cgroupPath // what a path names, derived once per path
	units map[string]int         // unit -> index in snap.Processes.Units
	seen  map[int]bool           // cgroups already counted for the process at hand
}

type cgroupPath struct {
	unit      string
	container *snapshot.Container
}

func newCgroupJoin(snap *snapshot.Snapshot) *cgroupJoin {
	j := &cgroupJoin{snap: snap, idx: make(map[string]int, len(snap.Cgroups)), paths: map[string]*cgroupPath{},
		units: map[string]int{}, seen: map[int]bool{}}
	for i, cg := range snap.Cgroups {
		j.idx[cg.Path] = i
	}
	snap.Processes.Units = []snapshot.UnitGroup{}
	return j
}

func (j *cgroupJoin) add(p *procInfo, sp *snapshot.Process) {
	if p.cgroup == "" {
		return
	}
	cp, ok := j.paths[p.cgroup]
	if !ok {
		cp = &cgroupPath{unit: cgroup.Unit(p.cgroup)}
		if c, ok := cgroup.ContainerOf(p.cgroup); ok {
			cp.container = &snapshot.Container{Runtime: c.Runtime, ID: c.ID, Pod: c.Pod}
		}
		j.paths[p.cgroup] = cp
	}
	sp.Cgroup, sp.Unit, sp.Container = p.cgroup, cp.unit, cp.container
	clear(j.seen)
	j.count(p.cgroup, p.threads)
	for _, o := range p.cgOthers {
		if o != "" {
			j.count(o, p.threads)
		}
	}
	if cp.unit == "" {
		return
	}
	ui, ok := j.units[cp.unit]
	if !ok {
		ui = len(j.snap.Processes.Units)
		j.units[cp.unit] = ui
		j.snap.Processes.Units = append(j.snap.Processes.Units, snapshot.UnitGroup{Unit: cp.unit})
	}
	u := &j.snap.Processes.Units[ui]
	u.Processes++
	u.Threads += p.threads
	if p.fds > 0 {
		u.FDs += p.fds
	}
	u.RSSBytes += sp.RSSBytes
}

// count adds a process to the cgroup at path and to every cgroup above it
// but the root, each once per process.
func (j *cgroupJoin) count(path string, threads int) {
	for path != "/" && path != "" {
		if i, ok := j.idx[path]; ok && !j.seen[i] {
			j.seen[i] = true
			j.snap.Cgroups[i].Processes++
			j.snap.Cgroups[i].Threads += threads
		}
		k := strings.LastIndexByte(path, '/')
		if k <= 0 {
			break
		}
		path = path[:k]
	}
}

func (j *cgroupJoin) sockets(p *procInfo, n int) {
	if cp := j.paths[p.cgroup]; cp != nil && cp.unit != "" {
		j.snap.Processes.Units[j.units[cp.unit]].Sockets += n
	}
}

// finish counts the root cgroup (everything) and orders units heaviest
// first.
func (j *cgroupJoin) finish() {
	if i, ok := j.idx["/"]; ok {
		j.snap.Cgroups[i].Processes, j.snap.Cgroups[i].Threads = j.snap.Processes.Total, j.snap.Processes.Threads
	}
	u := j.snap.Processes.Units
	sort.SliceStable(u, func(a, b int) bool {
		if u[a].Threads != u[b].Threads {
			return u[a].Threads > u[b].Threads
		}
		return u[a].Unit < u[b].Unit
	})
}

// inAnyTable says whether some namespace's tables list the socket.
func inAnyTable(tables map[uint64]*nsTables, sr sockRef) bool {
	for _, t := range tables {
		if t.lists(sr) {
			return true
		}
	}
	return false
}

// readLimits reads /proc/PID/limits (RLIMIT_NOFILE) for the processes that
// hold the most fds, and RLIMIT_NPROC for the heaviest users: reading it for
// every process would double the cost of a scan, and a process with few fds
// is not near its limit.
func (s *procScanner) readLimits(snap *snapshot.Snapshot, holderIdx map[int]int, userPid map[uint32]int) {
	c := s.c
	list := snap.Processes.List
	order := make([]int, len(list))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return list[order[a]].FDs > list[order[b]].FDs })
	for rank, i := range order {
		p := &list[i]
		if p.FDs <= 0 || (rank >= c.opts.LimitsTop && p.FDs < c.opts.LimitsFDFloor) {
			break
		}
		lim, err := c.fs.Proc(p.PID)
		if err != nil {
			continue
		}
		l, err := lim.Limits()
		if err != nil {
			continue // vanished, or limits unreadable
		}
		p.FDLimit = rlimit(l.OpenFiles)
		if hi, ok := holderIdx[p.PID]; ok {
			snap.Sockets.Processes[hi].FDLimit = p.FDLimit
		}
	}
	users := snap.Processes.Users
	sort.Slice(users, func(a, b int) bool { return users[a].Threads > users[b].Threads })
	for i := range users {
		if i >= c.opts.NprocUsers {
			break
		}
		pr, err := c.fs.Proc(userPid[users[i].UID])
		if err != nil {
			continue
		}
		if l, err := pr.Limits(); err == nil {
			users[i].NprocLimit = rlimit(l.Processes)
		}
	}
}

// rlimit maps procfs's "unlimited" (all ones) to -1.
func rlimit(v uint64) int64 {
	if v > math.MaxInt64 {
		return -1
	}
	return int64(v)
}

// bootTime is btime from ROOT/proc/stat, in Unix seconds; 0 if unknown.
func (s *procScanner) bootTime() int64 {
	btime, err := s.c.ids.BootTime()
	if err != nil {
		return 0
	}
	return btime
}

// addCounts adds one namespace's socket totals to dst.
func addCounts(dst *snapshot.SocketCounts, a snapshot.SocketCounts) {
	dst.TCP += a.TCP
	dst.UDP += a.UDP
	dst.Unix += a.Unix
	dst.Raw += a.Raw
	dst.Netlink += a.Netlink
	dst.Packet += a.Packet
	dst.Other += a.Other
}
