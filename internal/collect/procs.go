package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
)

// pfKthread is PF_KTHREAD from include/linux/sched.h: the stat "flags" bit
// that marks a kernel thread (never a target, never a user's process).
const pfKthread = 0x00200000

// userHZ is USER_HZ, the unit of /proc/PID/stat's starttime: 100 on every
// architecture Go runs Linux on (sysconf(_SC_CLK_TCK) needs cgo).
const userHZ = 100

// procScanner walks /proc once per collection: for each process one read of
// stat, (sometimes) one of status, one getdents of fd/ and one readlink per
// fd. No fork, nothing of ps, ss or lsof (they are what fails when the pid
// table is full). Buffers are kept between scans.
type procScanner struct {
	c       *Collector
	buf     []byte // stat and status
	dirbuf  []byte // getdents
	linkbuf []byte
	tables  tableReader
	procs   []procInfo
	socks   []sockRef // socket fds of all processes; each proc owns a window
	xattr   []byte
}

// sockRef is one socket fd: the socket's inode and the fd number it was
// found under (for the xattr fallback).
type sockRef struct {
	ino uint64
	fd  int32
}

type procInfo struct {
	pid, ppid   int
	uid         uint32
	comm        string
	state       byte
	flags       uint64
	startTicks  uint64
	threads     int
	rssPages    int64
	fds         int // -1: unreadable
	netns       uint64
	inoLo, inoN int // window into procScanner.inodes
}

func newProcScanner(c *Collector) *procScanner {
	return &procScanner{
		c:       c,
		buf:     make([]byte, 16<<10),
		dirbuf:  make([]byte, 32<<10),
		linkbuf: make([]byte, 256),
		xattr:   make([]byte, 64),
	}
}

// errVanished marks a process that exited while it was being read: normal,
// skipped silently.
var errVanished = errors.New("process vanished")

func (s *procScanner) scan(ctx context.Context, snap *snapshot.Snapshot) error {
	c := s.c
	c.users.refresh()
	procfd, err := unix.Open(c.proc, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", c.proc, err)
	}
	defer unix.Close(procfd)

	pids, err := s.listPids()
	if err != nil {
		return fmt.Errorf("read %s: %w", c.proc, err)
	}
	s.procs = s.procs[:0]
	s.socks = s.socks[:0]
	var errs []error
	for i, pid := range pids {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		p, err := s.readProc(procfd, pid)
		if err != nil {
			if errors.Is(err, errVanished) {
				continue
			}
			errs = append(errs, err)
			continue
		}
		s.procs = append(s.procs, p)
	}

	// Network namespaces: the host's tables, plus those of any namespace a
	// socket holder lives in (containers), read once each.
	hostNS := readNSInode(procfd, "self/ns/net", s.linkbuf)
	nsDir := map[uint64]string{hostNS: filepath.Join(c.proc, "net")}
	for i := range s.procs {
		p := &s.procs[i]
		if p.inoN == 0 {
			continue
		}
		p.netns = readNSInode(procfd, strconv.Itoa(p.pid)+"/ns/net", s.linkbuf)
		if p.netns == 0 { // unreadable: assume the host's
			p.netns = hostNS
		}
		if _, ok := nsDir[p.netns]; !ok {
			nsDir[p.netns] = filepath.Join(c.proc, strconv.Itoa(p.pid), "net")
		}
	}
	tables := make(map[uint64]*nsTables, len(nsDir))
	sockets := &snap.Sockets
	sockets.TCPStates = map[string]int{}
	for ns, dir := range nsDir {
		t, err := s.tables.readNS(dir)
		if err != nil {
			errs = append(errs, err)
		}
		tables[ns] = t
		addCounts(&sockets.Totals, t.totals)
		for st, n := range t.states {
			if n > 0 {
				sockets.TCPStates[tcpStates[st]] += n
			}
		}
	}
	sockets.Namespaces = len(tables)

	s.fill(snap, tables)
	return errors.Join(errs...)
}

func addCounts(dst *snapshot.SocketCounts, a snapshot.SocketCounts) {
	dst.TCP += a.TCP
	dst.UDP += a.UDP
	dst.Unix += a.Unix
	dst.Raw += a.Raw
	dst.Netlink += a.Netlink
	dst.Packet += a.Packet
	dst.Other += a.Other
}

func (s *procScanner) listPids() ([]int, error) {
	d, err := os.Open(s.c.proc)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, ok := parseDec([]byte(n)); ok && pid > 0 && pid <= math.MaxInt32 {
			pids = append(pids, int(pid))
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// readProc reads one process. Files that vanish (ENOENT, ESRCH) mean the
// process exited: errVanished.
func (s *procScanner) readProc(procfd, pid int) (procInfo, error) {
	p := procInfo{pid: pid}
	ps := strconv.Itoa(pid)
	n, err := readAt(procfd, ps+"/stat", s.buf)
	if err != nil {
		return p, vanished(err, s.c.proc, ps+"/stat")
	}
	if err := parseStat(s.buf[:n], &p); err != nil {
		return p, fmt.Errorf("%s: %w", filepath.Join(s.c.proc, ps, "stat"), err)
	}

	// The owner of /proc/PID is the process's effective uid, except for
	// non-dumpable processes (those that changed uid, such as an imapd that
	// dropped root), whose /proc/PID the kernel gives to root
	// (task_dump_owner). So a non-root owner is trusted and a root one is
	// confirmed from status. In a fixture tree ownership means nothing:
	// status is always read.
	needStatus := true
	if s.c.live {
		var st unix.Stat_t
		if err := unix.Fstatat(procfd, ps, &st, 0); err != nil {
			return p, vanished(err, s.c.proc, ps)
		}
		if st.Uid != 0 {
			p.uid, needStatus = st.Uid, false
		}
	}
	if needStatus {
		n, err := readAt(procfd, ps+"/status", s.buf)
		if err != nil {
			return p, vanished(err, s.c.proc, ps+"/status")
		}
		uid, err := parseStatusUID(s.buf[:n])
		if err != nil {
			return p, fmt.Errorf("%s: %w", filepath.Join(s.c.proc, ps, "status"), err)
		}
		p.uid = uid
	}
	p.inoLo = len(s.socks)
	p.fds = s.readFDs(procfd, ps)
	p.inoN = len(s.socks) - p.inoLo
	return p, nil
}

func vanished(err error, proc, rel string) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return errVanished
	}
	return fmt.Errorf("read %s: %w", filepath.Join(proc, rel), err)
}

// readAt reads a whole small file relative to dirfd into buf.
func readAt(dirfd int, rel string, buf []byte) (int, error) {
	fd, err := unix.Openat(dirfd, rel, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	total := 0
	for total < len(buf) {
		n, err := unix.Read(fd, buf[total:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, nil
}

// readFDs counts a process's fds and appends the inodes of its sockets to
// s.socks. It returns -1 when fd/ cannot be read (another user's process
// without CAP_SYS_PTRACE).
func (s *procScanner) readFDs(procfd int, ps string) int {
	dfd, err := unix.Openat(procfd, ps+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(dfd)
	count := 0
	for {
		n, err := unix.Getdents(dfd, s.dirbuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if count == 0 {
				return -1
			}
			return count
		}
		if n == 0 {
			return count
		}
		b := s.dirbuf[:n]
		for len(b) > 0 {
			// struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name
			reclen := int(b[16]) | int(b[17])<<8
			if reclen == 0 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if len(name) == 0 || name[0] == '.' {
				continue
			}
			count++
			ln, err := unix.Readlinkat(dfd, string(name), s.linkbuf)
			if err != nil {
				continue // closed since getdents
			}
			// "socket:[12345]"
			l := s.linkbuf[:ln]
			if len(l) > 9 && string(l[:8]) == "socket:[" && l[len(l)-1] == ']' {
				ino, ok := parseDec(l[8 : len(l)-1])
				fd, fdok := parseDec(name)
				if ok && fdok && fd <= math.MaxInt32 {
					s.socks = append(s.socks, sockRef{ino, int32(fd)})
				}
			}
		}
	}
}

// protoKind asks the socket itself: the xattr "system.sockprotoname" that
// sockfs gives every socket inode ("UDP", "UNIX-STREAM", "AF_VSOCK"...).
// It is one getxattr per socket, so it is only the fallback for sockets the
// tables do not list; it works on the live /proc only (a fixture's fds are
// plain symlinks), and checks first that the fd still is the same socket.
func (s *procScanner) protoKind(pid int, sr sockRef) sockKind {
	if !s.c.live {
		return kindOther
	}
	path := s.c.proc + "/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(int(sr.fd))
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Ino != sr.ino {
		return kindOther
	}
	n, err := unix.Getxattr(path, "system.sockprotoname", s.xattr)
	if err != nil || n == 0 {
		return kindOther
	}
	return kindOfProto(string(bytes.TrimRight(s.xattr[:n], "\x00")))
}

// kindOfProto maps a struct proto's name (net/*/: tcp_prot.name and so on)
// to a picket kind.
func kindOfProto(name string) sockKind {
	switch name {
	case "TCP", "TCPv6":
		return kindTCP
	case "UDP", "UDPv6":
		return kindUDP
	case "UNIX", "UNIX-STREAM":
		return kindUnix
	case "RAW", "RAWv6":
		return kindRaw
	case "NETLINK":
		return kindNetlink
	case "PACKET":
		return kindPacket
	}
	return kindOther
}

// readNSInode reads a namespace link ("net:[4026531840]") and returns its
// inode, or 0 when it cannot be read.
func readNSInode(procfd int, rel string, buf []byte) uint64 {
	n, err := unix.Readlinkat(procfd, rel, buf)
	if err != nil {
		return 0
	}
	l := buf[:n]
	i := bytes.IndexByte(l, '[')
	if i < 0 || l[len(l)-1] != ']' {
		return 0
	}
	v, _ := parseDec(l[i+1 : len(l)-1])
	return v
}

// parseStat reads the fields picket needs from /proc/PID/stat (see proc(5);
// fields are 1-based there). comm is between the first '(' and the last ')':
// it may itself contain spaces and parentheses.
func parseStat(b []byte, p *procInfo) error {
	l := bytes.IndexByte(b, '(')
	r := bytes.LastIndexByte(b, ')')
	if l < 0 || r < l || r+2 > len(b) {
		return errors.New("line 1: no \"(comm)\"")
	}
	p.comm = string(b[l+1 : r])
	rest := bytes.TrimRight(b[r+2:], "\n")
	// rest starts at field 3 (state).
	var fieldsWanted = [...]int{3, 4, 9, 20, 22, 24}
	var vals [len(fieldsWanted)][]byte
	fi, col := 0, 3
	i := 0
	for fi < len(fieldsWanted) && i <= len(rest) {
		j := i
		for j < len(rest) && rest[j] != ' ' {
			j++
		}
		if col == fieldsWanted[fi] {
			vals[fi] = rest[i:j]
			fi++
		}
		col++
		i = j + 1
	}
	if fi < len(fieldsWanted) {
		return fmt.Errorf("line 1: %d fields, want at least %d", col-1, fieldsWanted[len(fieldsWanted)-1])
	}
	if len(vals[0]) != 1 {
		return fmt.Errorf("line 1: field 3 (state) is %q", vals[0])
	}
	p.state = vals[0][0]
	var ok bool
	var v uint64
	if v, ok = parseDec(vals[1]); !ok {
		return fmt.Errorf("line 1: field 4 (ppid) is %q", vals[1])
	}
	p.ppid = int(v)
	if p.flags, ok = parseDec(vals[2]); !ok {
		return fmt.Errorf("line 1: field 9 (flags) is %q", vals[2])
	}
	if v, ok = parseDec(vals[3]); !ok {
		return fmt.Errorf("line 1: field 20 (num_threads) is %q", vals[3])
	}
	p.threads = int(v)
	if p.startTicks, ok = parseDec(vals[4]); !ok {
		return fmt.Errorf("line 1: field 22 (starttime) is %q", vals[4])
	}
	rss := vals[5]
	neg := len(rss) > 0 && rss[0] == '-' // rss is signed in the kernel's output
	if neg {
		rss = rss[1:]
	}
	if v, ok = parseDec(rss); !ok {
		return fmt.Errorf("line 1: field 24 (rss) is %q", vals[5])
	}
	if !neg {
		p.rssPages = int64(v)
	}
	return nil
}

// parseStatusUID returns the effective uid from status's
// "Uid:\treal\teffective\tsaved\tfs" line; ps's "user" column is the
// effective one too.
func parseStatusUID(b []byte) (uint32, error) {
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		if !bytes.HasPrefix(l, []byte("Uid:")) {
			continue
		}
		v, ok := parseDec(field(l[4:], 1))
		if !ok || v > math.MaxUint32 {
			return 0, fmt.Errorf("line %d: bad Uid line %q", line, l)
		}
		return uint32(v), nil
	}
	return 0, errors.New("no Uid line")
}

// fill turns the raw scan into the snapshot's process and socket parts.
func (s *procScanner) fill(snap *snapshot.Snapshot, tables map[uint64]*nsTables) {
	c := s.c
	btime := s.bootTime()
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
	holderIdx := map[int]int{} // pid -> index in snap.Sockets.Processes
	held := map[uint64]bool{}  // inodes attributed to some process, for "other" totals
	for i := range s.procs {
		p := &s.procs[i]
		name := c.users.name(p.uid)
		rss := uint64(p.rssPages) * pageSize
		P.Total++
		P.Threads += p.threads
		if p.fds < 0 {
			P.FDUnreadable++
		}
		var start time.Time
		if btime > 0 {
			start = time.Unix(btime+int64(p.startTicks/userHZ), int64(p.startTicks%userHZ)*int64(time.Second/userHZ)).UTC()
		}
		P.List = append(P.List, snapshot.Process{
			PID: p.pid, PPID: p.ppid, User: name, UID: p.uid, Comm: p.comm,
			State: string(p.state), StartTime: start, Threads: p.threads, RSSBytes: rss,
			KernelThread: p.flags&pfKthread != 0, FDs: p.fds,
		})
		k := gkey{p.uid, p.comm}
		gi, ok := groups[k]
		if !ok {
			gi = len(P.Groups)
			groups[k] = gi
			P.Groups = append(P.Groups, snapshot.Group{User: name, UID: p.uid, Comm: p.comm})
		}
		g := &P.Groups[gi]
		g.Count++
		g.Threads += p.threads
		g.RSSBytes += rss
		ui, ok := users[p.uid]
		if !ok {
			ui = len(P.Users)
			users[p.uid] = ui
			userPid[p.uid] = p.pid
			P.Users = append(P.Users, snapshot.User{User: name, UID: p.uid})
		}
		P.Users[ui].Count++
		P.Users[ui].Threads += p.threads

		if p.inoN == 0 {
			continue
		}
		t := tables[p.netns]
		h := snapshot.Holder{PID: p.pid, User: name, UID: p.uid, Comm: p.comm, FDs: p.fds}
		hc := (*snapshotCounts)(&h.SocketCounts)
		for _, sr := range s.socks[p.inoLo : p.inoLo+p.inoN] {
			kind := kindUnknown
			if t != nil {
				kind = t.kinds[sr.ino]
			}
			if kind == kindUnknown {
				// In no table: an unbound UDP or TCP socket (the kernel
				// lists only hashed ones), or a protocol with no table
				// (vsock, MPTCP, AF_ALG...). It exists, so it counts in the
				// totals too, once however many processes hold it.
				kind = s.protoKind(p.pid, sr)
				if !held[sr.ino] {
					(*snapshotCounts)(&snap.Sockets.Totals).add(kind)
				}
			}
			hc.add(kind)
			held[sr.ino] = true
		}
		h.Total = p.inoN
		holderIdx[p.pid] = len(snap.Sockets.Processes)
		snap.Sockets.Processes = append(snap.Sockets.Processes, h)
	}
	s.readLimits(snap, holderIdx, userPid)
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
	st, err := s.c.fs.Stat()
	if err != nil {
		return 0
	}
	return int64(st.BootTime)
}
