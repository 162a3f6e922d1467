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
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/proctext"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
)

// procScanner walks /proc once per collection: for each process one read of
// stat, (sometimes) one of status, an fstat of fd/ and one readlink per fd
// (process.go, fds.go); then aggregate.go turns what it read into the
// snapshot. No fork, nothing of ps, ss or lsof (they are what fails when
// the pid table is full). Buffers are kept between scans.
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
	// bpf lists every socket fd in one pass where it can (bpfsockets.go);
	// bpfRun is set for a scan that uses its pass: fd/ is then counted,
	// not walked.
	bpf    bpfSockets
	bpfRun bool
	// taskRun is set for a scan whose processes come from the task
	// iterator's pass (s.bpf.tlist, in the order of pids); cgIDs turns
	// its cgroup ids into paths.
	taskRun bool
	cgIDs   cgroupIndex
	// cgSeen is each process's cgroup paths as the previous scan read them,
	// by pid; a light scan reuses them for a process with the same start
	// time instead of reading /proc/PID/cgroup again (cgSeen is only read
	// during a scan, and rebuilt after it into cgNext, then swapped).
	cgSeen, cgNext map[int]cgSeen
	// passErr and taskErr are the last overlapPasses' errors; hostSocks
	// is how many sockets the last full look found held in picket's own
	// namespace, which sizes the next dumps' maps.
	passErr, taskErr error
	hostSocks        int
	refBuf           []sockRef // one process's sockets of the BPF pass, in fill
}

// cgSeen is one process's cgroup paths from an earlier scan.
type cgSeen struct {
	start  uint64
	cgroup string
	others [2]string
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
	cgPaths map[string]string // interned cgroup paths, kept between scans
	comms   map[string]string // interned process names (fromTask)
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
		cgSeen:  map[int]cgSeen{},
		cgNext:  map[int]cgSeen{},
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
			cgPaths: map[string]string{},
			comms:   map[string]string{},
		})
	}
	return s.workers[i]
}

// scan reads every process into snap. A light scan (live only) skips the
// fd walk and the socket tables: fd counts come from one stat of fd/.
//
// useBPF (a full look of the live host whose iterators loaded) makes the
// iterators' passes run, together with the dumps of the socket tables
// (overlapPasses).
func (s *procScanner) scan(ctx context.Context, snap *snapshot.Snapshot, light, useBPF bool) error {
	c := s.c
	procfd, err := unix.Open(c.proc, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", c.proc, err)
	}
	defer unix.Close(procfd)

	hostNS := readNSInode(procfd, []byte("self/ns/net\x00"), s.linkbuf)
	// The iterators' passes come before the walk, as the walk's fd reads
	// do: a socket held then is still in the tables read after it.
	s.bpfRun, s.taskRun = false, false
	var why, tasksWhy string
	var dump *pendingDump
	if !light && c.live {
		if useBPF {
			dump = s.overlapPasses(ctx, hostNS)
			if err := s.passErr; err != nil {
				why = err.Error()
				tasksWhy = "the task_file pass failed: " + why
				// Its dumps stored no inodes, which the /proc walk
				// needs: the tables are read again below.
				dump.wait()
				dump = nil
			} else {
				// Whatever happens below, the dumps' goroutines end
				// before scan returns (wait is a no-op once the tables
				// have it).
				defer dump.wait()
				s.bpfRun = true
				tasksWhy = s.bpf.tasksWhy
			}
			if s.bpfRun && s.bpf.tasks != nil {
				if err := s.taskErr; err != nil {
					tasksWhy = err.Error()
				} else {
					s.taskRun = true
				}
			}
		} else {
			why, tasksWhy = s.bpf.why, s.bpf.why
		}
	}

	var pids []int
	if s.taskRun {
		pids = s.taskPids()
		if c.cgroupsMounted {
			s.cgIDs.refresh(c)
		}
	} else if pids, err = s.listPids(procfd); err != nil {
		return fmt.Errorf("read %s: %w", c.proc, err)
	}
	s.pids = pids
	if cap(s.procs) < len(pids) {
		s.procs = make([]procInfo, len(pids), len(pids)+len(pids)/8)
		s.errs = make([]error, len(pids), cap(s.procs))
	}
	s.procs, s.errs = s.procs[:len(pids)], s.errs[:len(pids)]
	clear(s.errs)
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
			w.run(ctx, wfd, i, &next, hostNS, light)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if !light && c.live {
		s.bpf.note(snap, s.bpfRun, why, s.taskRun, tasksWhy)
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
	clear(s.cgNext)
	for i := range s.procs {
		if p := &s.procs[i]; p.cgroup != "" {
			s.cgNext[p.pid] = cgSeen{p.startTicks, p.cgroup, p.cgOthers}
		}
	}
	s.cgSeen, s.cgNext = s.cgNext, s.cgSeen

	if light {
		snap.Light = true
		s.fill(snap, nil, nil, hostNS)
		return errors.Join(errs...)
	}

	// Network namespaces: the host's tables, plus those of any namespace a
	// socket holder lives in (containers), read once each.
	nsDir := map[uint64]string{hostNS: filepath.Join(c.proc, "net")}
	nsSocks := map[uint64]int{}
	for i := range s.procs {
		p := &s.procs[i]
		if p.sockets() == 0 {
			continue
		}
		nsSocks[p.netns] += p.inoN
		nsSocks[hostNS] += p.sockets() - p.inoN
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
		var t *nsTables
		var err error
		if d := dump; d != nil && ns == hostNS {
			t, err = s.tables.readNSDumped(dir, d, nsSocks[ns])
		} else {
			t, err = s.tables.readNSDiag(dir, c.live && ns == hostNS && hostNS != 0, nsSocks[ns])
		}
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
	s.hostSocks = nsSocks[hostNS]

	s.fill(snap, tables, tables[hostNS], hostNS)
	return errors.Join(errs...)
}

// socketsInUse is the first line of /proc/net/sockstat, "sockets: used
// N": every socket of every namespace the kernel has allocated
// (sock_inuse_get, net/core/sock.c), 0 when it cannot be read.
func socketsInUse(proc string) int {
	b, err := os.ReadFile(filepath.Join(proc, "net", "sockstat"))
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 3 || string(f[0]) != "sockets:" || string(f[1]) != "used" {
		return 0
	}
	n, err := strconv.Atoi(string(f[2]))
	if err != nil || n < 0 {
		return 0
	}
	return min(n, 1<<22)
}

// tasksInUse is the kernel's count of tasks, threads included: the
// denominator of /proc/loadavg's fourth field ("1/3107", nr_threads in
// fs/proc/loadavg.c), 0 when it cannot be read.
func tasksInUse(proc string) int {
	b, err := os.ReadFile(filepath.Join(proc, "loadavg"))
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 4 {
		return 0
	}
	_, total, ok := bytes.Cut(f[3], []byte("/"))
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(string(total))
	if err != nil || n < 0 {
		return 0
	}
	return min(n, 1<<22)
}

// overlapPasses runs the task_file pass, the task pass and, when hostNS
// is known, the sock_diag dumps of picket's own namespace at once, and
// returns the dumps (nil: none started) for the tables to wait for. None
// needs another's result, and each is a walk of the kernel's own lists
// (tasks and their fd tables, the socket hashes) that the kernel serves on
// every CPU at once: one after the other they are most of a full look.
// The passes' errors are left in s.passErr and s.taskErr.
func (s *procScanner) overlapPasses(ctx context.Context, hostNS uint64) *pendingDump {
	var dump *pendingDump
	if s.hostSocks == 0 {
		// The first look has no last count: the kernel's count of
		// sockets in use sizes the maps and the pass's list instead of
		// a dozen doublings (and a rehash of every map at each).
		s.hostSocks = socketsInUse(s.c.proc)
		if cap(s.bpf.list) < s.hostSocks {
			s.bpf.list = make([]sockiter.Socket, 0, s.hostSocks+s.hostSocks/8)
		}
		// Likewise the task list, after the kernel's count of threads
		// (at least one a process): ~240 bytes a task, grown by doubling,
		// was a seventh of a one-shot's CPU in copies and page faults. The
		// list holds no pointers, so what the count overshoots (threads
		// that are not leaders) is address space the look never touches.
		if n := tasksInUse(s.c.proc); cap(s.bpf.tlist) < n+1 {
			s.bpf.tlist = make([]sockiter.Task, 0, n+1) // +1: pid 1, see taskPids
		}
	}
	if hostNS != 0 {
		// Only counted: the pass says which sockets they list (the
		// /proc walk of a look whose pass fails dumps again, inodes and
		// all).
		dump = s.tables.startDump(s.hostSocks, false)
	}
	s.taskErr = nil
	var wg sync.WaitGroup
	if s.bpf.tasks != nil {
		wg.Go(func() { s.taskErr = s.bpf.taskPass(ctx) })
	}
	// With the dumps counting picket's own namespace's tables, the
	// fd walk need only count the sockets they list.
	var countIn uint64
	if dump != nil && !s.c.opts.bpfListAll {
		countIn = hostNS
	}
	s.passErr = s.bpf.pass(ctx, countIn)
	wg.Wait()
	if s.passErr == nil {
		s.dropDumpSockets(dump)
	}
	return dump
}

// dropDumpSockets removes the dumps' own netlink sockets from the pass,
// which may have listed picket's fds while they were open: they are not
// picket's sockets as the /proc walk sees them (it runs once they are
// closed), and a look that counted them would see picket hold sockets
// that no other look finds.
func (s *procScanner) dropDumpSockets(dump *pendingDump) {
	if dump == nil {
		return
	}
	s.bpf.dropSockets(int32(os.Getpid()), func(sk sockiter.Socket) bool {
		return sk.Family == unix.AF_NETLINK && dump.dumpFD(int(sk.FD))
	})
}

// run reads chunks of pids until none are left or ctx is done.
func (w *procWorker) run(ctx context.Context, procfd, id int, next *atomic.Int64, hostNS uint64, light bool) {
	s := w.s
	for ctx.Err() == nil {
		lo := int(next.Add(walkChunk)) - walkChunk
		if lo >= len(s.pids) {
			return
		}
		for i := lo; i < min(lo+walkChunk, len(s.pids)); i++ {
			var p procInfo
			var err error
			missed := s.bpfMissed(s.pids[i])
			if s.taskRun && !missed {
				p, err = w.fromTask(procfd, &s.bpf.tlist[i])
			} else {
				p, err = w.readProc(procfd, s.pids[i], light)
			}
			p.worker = id
			if err == nil && s.bpfRun && !missed {
				// The process's sockets stay in the pass's list, read
				// there by fill (bpfRef): a copy of 30,000 of them per
				// look was half a MiB of fresh pages.
				p.inoLo, p.inoN = s.bpf.socketRange(p.pid)
				p.counted = s.bpf.countedOf(p.pid)
				p.bpfSocks = true
			}
			if err == nil && p.sockets() > 0 && s.taskRun && !missed {
				p.netns = uint64(s.bpf.tlist[i].NetNS)
				if p.netns == 0 { // exiting: no namespaces left
					p.netns = hostNS
				}
			} else if err == nil && p.sockets() > 0 {
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

// taskPids is the pids of the task iterator's pass, each once, with
// s.bpf.tlist cut to one task per pid in the same order. Pid 1 is put
// first if the pass does not have it (see bpfMissed).
func (s *procScanner) taskPids() []int {
	tl := slices.CompactFunc(s.bpf.tlist, func(a, b sockiter.Task) bool { return a.PID == b.PID })
	if len(tl) == 0 || tl[0].PID != 1 {
		tl = slices.Insert(tl, 0, sockiter.Task{PID: 1})
	}
	s.bpf.tlist = tl
	pids := s.pids[:0]
	for i := range tl {
		pids = append(pids, int(tl[i].PID))
	}
	return pids
}

// bpfMissed says whether this scan reads pid from /proc (stat, status,
// cgroup, and a readlink of each fd) although the iterators ran: on the
// 6.18 kernels picket is tested on, neither the task nor the task_file
// iterator ever shows pid 1, the first task find_ge_pid finds
// (kernel/bpf/task_iter.c, task_seq_get_next), whatever the program does.
// Pid 1 is one process, and the one that most matters (systemd's sockets,
// a container's init).
func (s *procScanner) bpfMissed(pid int) bool {
	if !s.bpfRun || pid != 1 {
		return false
	}
	if s.taskRun {
		return s.bpf.tlist[0].Flags == 0 && s.bpf.tlist[0].StartBoottime == 0
	}
	return s.bpf.fdsOf(1) == 0
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
			if pid, ok := proctext.Dec(name); ok && pid > 0 && pid <= math.MaxInt32 {
				pids = append(pids, int(pid))
			}
		})
	}
	sort.Ints(pids)
	return pids, nil
}
