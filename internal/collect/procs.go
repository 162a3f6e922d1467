package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
// stat, (sometimes) one of status, an fstat of fd/ and one readlink per fd
// (see listFDs). No fork, nothing of ps, ss or lsof (they are what fails when the pid
// table is full). Buffers are kept between scans.
//
// The walk is split across workers, one per CPU: on a loaded host nearly all
// of a scan is time in procfs syscalls (a readlink of a /proc/PID/fd entry
// costs microseconds, and there is one per fd), which the kernel serves on
// every CPU at once. Each worker has its own buffers; results land in the
// slot of their pid, so the output does not depend on scheduling.
type procScanner struct {
	c       *Collector
	workers []*procWorker
	tables  tableReader
	pids    []int
	procs   []procInfo
	errs    []error // per slot of pids: the error reading that process
	dirbuf  []byte  // getdents of /proc
	linkbuf []byte
	xattr   []byte
	root    bool // euid 0: every fd/ is readable, a kernel thread's is empty
	// light skips the fd walk and the socket tables for this scan (see
	// Collector.CollectLight); live only.
	light bool
}

// procWorker is one worker's share of a scan and its buffers.
type procWorker struct {
	s       *procScanner
	buf     []byte // stat and status
	dirbuf  []byte // getdents of fd/
	linkbuf []byte
	path    []byte // NUL-terminated path relative to /proc, reused
	name    []byte // NUL-terminated fd number, reused
	socks   []sockRef
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
	worker      int // whose socks the window below is in
	inoLo, inoN int // window into procWorker.socks
}

// maxWorkers bounds the walk's parallelism: past a few CPUs the kernel's
// per-process locks, not the CPUs, limit it, and each worker keeps ~50 KiB
// of buffers.
const maxWorkers = 8

// walkChunk is how many pids a worker takes at a time. One: a process
// costs tens of microseconds at least, so the shared counter is never the
// bottleneck, and heavy fd holders are often consecutive pids (a server
// forks its workers together), which a bigger chunk would hand to one
// worker while the others go idle.
const walkChunk = 1

func newProcScanner(c *Collector) *procScanner {
	return &procScanner{
		c:       c,
		dirbuf:  make([]byte, 32<<10),
		linkbuf: make([]byte, 256),
		xattr:   make([]byte, 64),
		root:    os.Geteuid() == 0,
	}
}

func (s *procScanner) worker(i int) *procWorker {
	for len(s.workers) <= i {
		s.workers = append(s.workers, &procWorker{
			s:       s,
			buf:     make([]byte, 16<<10),
			dirbuf:  make([]byte, 32<<10),
			linkbuf: make([]byte, 256),
			path:    make([]byte, 0, 64),
			name:    make([]byte, 0, 16),
		})
	}
	return s.workers[i]
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

	pids, err := s.listPids(procfd)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.proc, err)
	}
	s.pids = pids
	if cap(s.procs) < len(pids) {
		s.procs = make([]procInfo, len(pids), len(pids)+len(pids)/8)
		s.errs = make([]error, len(pids), cap(s.procs))
	}
	s.procs, s.errs = s.procs[:len(pids)], s.errs[:len(pids)]
	clear(s.errs)

	hostNS := readNSInode(procfd, []byte("self/ns/net\x00"), s.linkbuf)
	nw := min(runtime.GOMAXPROCS(0), maxWorkers, (len(pids)+walkChunk-1)/walkChunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < max(nw, 1); i++ {
		w := s.worker(i)
		w.socks = w.socks[:0]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker has its own fd of /proc: every *at call takes a
			// reference on its dirfd's file, and one shared by all workers
			// would be a cache line bounced between CPUs on every syscall.
			wfd := procfd
			if i > 0 {
				if fd, err := unix.Open(c.proc, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
					wfd = fd
					defer unix.Close(fd)
				}
			}
			w.run(ctx, wfd, i, &next, hostNS)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Compact in pid order; errors keep that order too.
	var errs []error
	procs := s.procs[:0]
	for i := range s.procs {
		if err := s.errs[i]; err != nil {
			if !errors.Is(err, errVanished) {
				errs = append(errs, err)
			}
			continue
		}
		procs = append(procs, s.procs[i])
	}
	s.procs = procs

	if s.light {
		snap.Light = true
		s.fill(snap, nil)
		return errors.Join(errs...)
	}

	// Network namespaces: the host's tables, plus those of any namespace a
	// socket holder lives in (containers), read once each.
	nsDir := map[uint64]string{hostNS: filepath.Join(c.proc, "net")}
	nsSocks := map[uint64]int{}
	for i := range s.procs {
		p := &s.procs[i]
		if p.inoN == 0 {
			continue
		}
		nsSocks[p.netns] += p.inoN
		if _, ok := nsDir[p.netns]; !ok {
			nsDir[p.netns] = filepath.Join(c.proc, strconv.Itoa(p.pid), "net")
		}
	}
	tables := make(map[uint64]*nsTables, len(nsDir))
	sockets := &snap.Sockets
	sockets.TCPStates = map[string]int{}
	for ns, dir := range nsDir {
		// picket's own namespace is dumped through sock_diag when live
		// (see sockdiag.go); elsewhere the text tables are read.
		dump := c.live && ns == hostNS && hostNS != 0
		t, err := s.tables.readNSDiag(dir, dump, nsSocks[ns])
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

// run reads chunks of pids until none are left or ctx is done.
func (w *procWorker) run(ctx context.Context, procfd, id int, next *atomic.Int64, hostNS uint64) {
	s := w.s
	for ctx.Err() == nil {
		lo := int(next.Add(walkChunk)) - walkChunk
		if lo >= len(s.pids) {
			return
		}
		for i := lo; i < min(lo+walkChunk, len(s.pids)); i++ {
			p, err := w.readProc(procfd, s.pids[i])
			p.worker = id
			if err == nil && p.inoN > 0 {
				w.path = append(strconv.AppendInt(w.path[:0], int64(p.pid), 10), "/ns/net\x00"...)
				p.netns = readNSInode(procfd, w.path, w.linkbuf)
				if p.netns == 0 { // unreadable: assume the host's
					p.netns = hostNS
				}
			}
			s.procs[i], s.errs[i] = p, err
		}
	}
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

// listPids reads the numeric entries of /proc with getdents on procfd (the
// *at calls that use procfd later do not care about its offset), without a
// string per entry.
func (s *procScanner) listPids(procfd int) ([]int, error) {
	pids := s.pids[:0]
	for {
		n, err := unix.Getdents(procfd, s.dirbuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		eachDirent(s.dirbuf[:n], func(name []byte) {
			if pid, ok := parseDec(name); ok && pid > 0 && pid <= math.MaxInt32 {
				pids = append(pids, int(pid))
			}
		})
	}
	sort.Ints(pids)
	return pids, nil
}

// eachDirent calls fn with the name of each struct linux_dirent64 in b
// (ino u64, off i64, reclen u16, type u8, then the NUL-terminated name).
func eachDirent(b []byte, fn func(name []byte)) {
	for len(b) >= 19 {
		reclen := int(b[16]) | int(b[17])<<8
		if reclen < 20 || reclen > len(b) {
			return
		}
		name := b[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		fn(name)
		b = b[reclen:]
	}
}

// readProc reads one process. Files that vanish (ENOENT, ESRCH) mean the
// process exited: errVanished.
func (w *procWorker) readProc(procfd, pid int) (procInfo, error) {
	c := w.s.c
	p := procInfo{pid: pid}
	base := len(strconv.AppendInt(w.path[:0], int64(pid), 10))
	w.path = append(w.path[:base], "/stat\x00"...)
	n, err := readAt(procfd, w.path, w.buf)
	if err != nil {
		return p, vanished(err, c.proc, pid, "stat")
	}
	if err := parseStat(w.buf[:n], &p); err != nil {
		return p, fmt.Errorf("%s: %w", filepath.Join(c.proc, strconv.Itoa(pid), "stat"), err)
	}
	if !c.live {
		// In a fixture tree ownership means nothing: status says the uid,
		// and fd/ is listed as a plain directory.
		if err := w.readStatusUID(procfd, base, &p); err != nil {
			return p, err
		}
		p.inoLo = len(w.socks)
		w.path = append(w.path[:base], "/fd\x00"...)
		p.fds = w.readFDs(procfd, w.path)
		p.inoN = len(w.socks) - p.inoLo
		return p, nil
	}
	// The owner of /proc/PID (and of every file in it) is the process's
	// effective uid, except for non-dumpable processes (those that changed
	// uid, such as an imapd that dropped root), whose /proc/PID the kernel
	// gives to root (task_dump_owner). So a non-root owner is trusted and a
	// root one is confirmed from status. fstat of fd/, which is opened
	// anyway, is the cheapest way to ask.
	//
	// A kernel thread has no files: its fd/ is empty, so root need not open
	// it (on a big host there are hundreds of them); it is root's. Without
	// root it is unreadable and still tried, so that it is counted as such.
	if w.s.root && p.flags&pfKthread != 0 {
		return p, w.readStatusUID(procfd, base, &p)
	}
	w.path = append(w.path[:base], "/fd\x00"...)
	if w.s.light {
		// One stat of fd/ tells the owner and, since Linux 6.2, how many
		// fds are open (proc_fd_getattr puts the count in st_size): no
		// walk, no readlink. 0 on older kernels means "not counted".
		var st unix.Stat_t
		if err := unix.Fstatat(procfd, string(w.path[:len(w.path)-1]), &st, 0); err != nil {
			w.path = append(w.path[:base], 0)
			if err := unix.Fstatat(procfd, string(w.path[:base]), &st, 0); err != nil {
				return p, vanished(err, c.proc, pid, "")
			}
			p.fds = -1
		} else {
			p.fds = int(st.Size)
			if st.Size == 0 {
				p.fds = -1
			}
		}
		p.uid = st.Uid
		if p.uid == 0 {
			return p, w.readStatusUID(procfd, base, &p)
		}
		return p, nil
	}
	dfd, err := openat(procfd, w.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	var st unix.Stat_t
	if err != nil {
		// fd/ unreadable (another user's process, picket not root): the
		// owner from /proc/PID itself.
		p.fds = -1
		w.path = append(w.path[:base], 0)
		if err := unix.Fstatat(procfd, string(w.path[:base]), &st, 0); err != nil {
			return p, vanished(err, c.proc, pid, "")
		}
	} else {
		err = unix.Fstat(dfd, &st)
		if err == nil {
			p.inoLo = len(w.socks)
			p.fds = w.listFDs(dfd, st.Size)
			p.inoN = len(w.socks) - p.inoLo
		}
		unix.Close(dfd)
		if err != nil {
			return p, vanished(err, c.proc, pid, "fd")
		}
	}
	p.uid = st.Uid
	if p.uid == 0 {
		return p, w.readStatusUID(procfd, base, &p)
	}
	return p, nil
}

// readStatusUID sets p.uid from PID/status (base is the length of "PID" in
// w.path).
func (w *procWorker) readStatusUID(procfd, base int, p *procInfo) error {
	w.path = append(w.path[:base], "/status\x00"...)
	n, err := readAt(procfd, w.path, w.buf)
	if err != nil {
		return vanished(err, w.s.c.proc, p.pid, "status")
	}
	uid, err := parseStatusUID(w.buf[:n])
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(w.s.c.proc, strconv.Itoa(p.pid), "status"), err)
	}
	p.uid = uid
	return nil
}

// probeMisses is how many absent fd numbers listFDs tries in a row before
// it lists the rest of fd/ instead.
const probeMisses = 4

// listFDs counts the fds of the process whose open fd/ is dfd and appends
// its sockets to w.socks. size is fd/'s st_size, which the kernel (since
// 6.2) sets to the number of open fds. The kernel hands out the lowest free
// fd, so fd tables are dense: readlinkat of "0", "1", ... until size fds
// are found needs no getdents, which on /proc/PID/fd costs a dcache lookup
// per entry before the readlinks do one each again. A gap of probeMisses
// absent numbers (a sparse table), or a size of 0 (an older kernel, or no
// fds), switches to getdents from that fd on.
func (w *procWorker) listFDs(dfd int, size int64) int {
	count, misses := 0, 0
	fd := 0
	for ; int64(count) < size; fd++ {
		if misses == probeMisses || fd > math.MaxInt32 {
			// /proc/PID/fd's readdir position is fd+2 (after . and ..).
			if _, err := unix.Seek(dfd, int64(fd)+2, 0); err != nil {
				return count
			}
			n := w.scanDirents(dfd)
			if n < 0 {
				return count
			}
			return count + n
		}
		w.name = append(strconv.AppendInt(w.name[:0], int64(fd), 10), 0)
		ln, err := readlinkat(dfd, &w.name[0], w.linkbuf)
		if err != nil {
			misses++ // not open (or closed meanwhile)
			continue
		}
		misses = 0
		count++
		w.addSocket(w.linkbuf[:ln], fd)
	}
	if size == 0 {
		if n := w.scanDirents(dfd); n > 0 {
			return n
		}
	}
	return count
}

// addSocket records fd when its link l is "socket:[INODE]".
func (w *procWorker) addSocket(l []byte, fd int) {
	if len(l) > 9 && string(l[:8]) == "socket:[" && l[len(l)-1] == ']' {
		if ino, ok := parseDec(l[8 : len(l)-1]); ok && fd <= math.MaxInt32 {
			w.socks = append(w.socks, sockRef{ino, int32(fd)})
		}
	}
}

func vanished(err error, proc string, pid int, file string) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return errVanished
	}
	return fmt.Errorf("read %s: %w", filepath.Join(proc, strconv.Itoa(pid), file), err)
}

// openat is openat(2) on a NUL-terminated path held in a reused buffer:
// x/sys/unix.Openat would copy a string into a new one on every call.
func openat(dirfd int, path []byte, flags int) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(flags), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// readlinkat is readlinkat(2) on a NUL-terminated name (a dirent's, in
// place), for the same reason.
func readlinkat(dirfd int, path *byte, buf []byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// readAt reads a whole small file relative to dirfd into buf; path is
// NUL-terminated.
func readAt(dirfd int, path []byte, buf []byte) (int, error) {
	fd, err := openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return readFD(fd, buf)
}

// readFD reads a small /proc file from fd into buf. stat and status are
// single-record seq_files: the kernel formats the whole file and hands all
// of it to the first read that has room, so a read that ends in a newline
// with room to spare is the whole file, and the read that would return 0 is
// skipped (one syscall less per file, per process).
func readFD(fd int, buf []byte) (int, error) {
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
		if total < len(buf) && buf[total-1] == '\n' {
			break
		}
	}
	return total, nil
}

// readFDs counts a process's fds and appends the inodes of its sockets to
// w.socks. path is "PID/fd" NUL-terminated. It returns -1 when fd/ cannot be
// read (another user's process without CAP_SYS_PTRACE).
func (w *procWorker) readFDs(procfd int, path []byte) int {
	dfd, err := openat(procfd, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1
	}
	defer unix.Close(dfd)
	return w.scanDirents(dfd)
}

// scanDirents lists the open fd/ dfd from its current position: it counts
// the entries and readlinks each, appending sockets to w.socks. It returns
// -1 when nothing could be read.
func (w *procWorker) scanDirents(dfd int) int {
	count := 0
	for {
		n, err := unix.Getdents(dfd, w.dirbuf)
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
		b := w.dirbuf[:n]
		for len(b) >= 19 {
			// struct linux_dirent64: ino u64, off i64, reclen u16, type u8,
			// then the name, NUL-terminated: readlinkat takes it in place.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 20 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			i := bytes.IndexByte(name, 0)
			b = b[reclen:]
			if i <= 0 || name[0] == '.' {
				continue
			}
			name = name[:i]
			count++
			ln, err := readlinkat(dfd, &name[0], w.linkbuf)
			if err != nil {
				continue // closed since getdents
			}
			if fd, ok := parseDec(name); ok && fd <= math.MaxInt32 {
				w.addSocket(w.linkbuf[:ln], int(fd))
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

// readNSInode reads a namespace link ("net:[4026531840]"; path is
// NUL-terminated) and returns its inode, or 0 when it cannot be read.
func readNSInode(procfd int, path []byte, buf []byte) uint64 {
	n, err := readlinkat(procfd, &path[0], buf)
	if err != nil || n == 0 {
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
	holderIdx := map[int]int{}    // pid -> index in snap.Sockets.Processes
	untabled := map[uint64]bool{} // inodes in no table, already in the totals
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
		for _, sr := range s.workers[p.worker].socks[p.inoLo : p.inoLo+p.inoN] {
			kind := kindUnknown
			if t != nil {
				kind = t.kinds[sr.ino]
			}
			if kind == kindUnknown {
				// In no table: an unbound UDP or TCP socket (the kernel
				// lists only hashed ones), or a protocol with no table
				// (vsock, MPTCP, AF_ALG...). It exists, so it counts in the
				// totals too, once however many processes hold it, unless
				// another namespace's table lists it (a socket passed into
				// a container): that table counted it already.
				kind = s.protoKind(p.pid, sr)
				if !untabled[sr.ino] && !inAnyTable(tables, sr.ino) {
					untabled[sr.ino] = true
					(*snapshotCounts)(&snap.Sockets.Totals).add(kind)
				}
			}
			hc.add(kind)
		}
		h.Total = p.inoN
		holderIdx[p.pid] = len(snap.Sockets.Processes)
		snap.Sockets.Processes = append(snap.Sockets.Processes, h)
	}
	s.readLimits(snap, holderIdx, userPid)
}

// inAnyTable says whether some namespace's tables list the inode.
func inAnyTable(tables map[uint64]*nsTables, ino uint64) bool {
	for _, t := range tables {
		if t.kinds[ino] != kindUnknown {
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
	st, err := s.c.fs.Stat()
	if err != nil {
		return 0
	}
	return int64(st.BootTime)
}
