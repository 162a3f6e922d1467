package collect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/proctext"
	"github.com/picket-guard/picket/internal/snapshot"
)

// sockKind is a socket's type as picket counts it.
type sockKind uint8

const (
	kindUnknown sockKind = iota // in no table: resolved by protoKind
	kindTCP
	kindUDP
	kindUnix
	kindRaw
	kindNetlink
	kindPacket
	kindOther
)

// netTable is one /proc/net file: which kind its sockets are and in which
// whitespace-separated column the kernel prints the inode.
type netTable struct {
	file     string
	kind     sockKind
	inodeCol int
	stateCol int // TCP only: the "st" column; -1 elsewhere
}

// netTables are the files the kernel lists sockets in, one line per socket.
// Column numbers follow the kernel's seq_show functions (tcp4_seq_show,
// unix_seq_show, netlink_seq_show, packet_seq_show). UDP-Lite and ping
// (icmp) sockets count as "other", as ss lists neither with -u.
var netTables = []netTable{
	{"tcp", kindTCP, 9, 3},
	{"tcp6", kindTCP, 9, 3},
	{"udp", kindUDP, 9, -1},
	{"udp6", kindUDP, 9, -1},
	{"raw", kindRaw, 9, -1},
	{"raw6", kindRaw, 9, -1},
	{"unix", kindUnix, 6, -1},
	{"netlink", kindNetlink, 9, -1},
	{"packet", kindPacket, 8, -1},
	{"udplite", kindOther, 9, -1},
	{"udplite6", kindOther, 9, -1},
	{"icmp", kindOther, 9, -1},
	{"icmp6", kindOther, 9, -1},
}

// tcpStates names the "st" column, from include/net/tcp_states.h.
var tcpStates = [...]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
	11: "CLOSING", 12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE",
}

// nsTables is what the tables of one network namespace say.
type nsTables struct {
	kinds map[uint64]sockKind // inode -> kind; inode 0 (TIME_WAIT, request socks) is not stored
	// more are the inode maps of the other dumps of the same namespace,
	// run at once on sockets of their own: looked up after kinds rather
	// than merged into it, which would copy ~20,000 entries on the look's
	// critical path and size one map for all of them.
	more   []map[uint64]sockKind
	totals snapshot.SocketCounts
	states [len(tcpStates)]int
	// hashed are the tables dumped without storing their inodes (a bit
	// per dumpTable), where the BPF pass says of each socket whether the
	// kernel has it in this namespace's table: such a socket is one the
	// dump listed (sockRef.hashed).
	hashed uint8
}

// dumpTable is the bit of the dumped table that lists a socket of kind k
// and family (0 for a kind with no dump). The dumps walk the kernel's own
// tables: TCP's listening and established hashes (inet_diag_dump_icsk),
// UDP's hash slots (udp_dump) and the namespace's unix table
// (unix_diag_dump), each socket linked in through its skc_node: the
// socket is in the dump exactly when sk_hashed says it is in one.
func dumpTable(k sockKind, family uint16) uint8 {
	v6 := family == unix.AF_INET6
	switch {
	case k == kindTCP && !v6:
		return 1 << 0
	case k == kindTCP:
		return 1 << 1
	case k == kindUDP && !v6:
		return 1 << 2
	case k == kindUDP:
		return 1 << 3
	case k == kindUnix:
		return 1 << 4
	}
	return 0
}

// dumpTables are the bits of dumpTable by file.
var dumpTables = map[string]uint8{
	"tcp": dumpTable(kindTCP, unix.AF_INET), "tcp6": dumpTable(kindTCP, unix.AF_INET6),
	"udp": dumpTable(kindUDP, unix.AF_INET), "udp6": dumpTable(kindUDP, unix.AF_INET6),
	"unix": dumpTable(kindUnix, unix.AF_UNIX),
}

// lists says whether the tables list the socket sr, whichever way they
// were read.
func (t *nsTables) lists(sr sockRef) bool {
	return sr.hashed&t.hashed != 0 || t.kind(sr.ino) != kindUnknown
}

// kind is the kind the tables give the socket with inode ino (kindUnknown
// for one they do not list).
func (t *nsTables) kind(ino uint64) sockKind {
	if k, ok := t.kinds[ino]; ok {
		return k
	}
	for _, m := range t.more {
		if k, ok := m[ino]; ok {
			return k
		}
	}
	return kindUnknown
}

// size is how many sockets with an inode the tables list.
func (t *nsTables) size() int {
	n := len(t.kinds)
	for _, m := range t.more {
		n += len(m)
	}
	return n
}

// each calls fn for every inode the tables list, with its kind.
func (t *nsTables) each(fn func(ino uint64, k sockKind)) {
	for ino, k := range t.kinds {
		fn(ino, k)
	}
	for _, m := range t.more {
		for ino, k := range m {
			fn(ino, k)
		}
	}
}

// tableReader reads /proc/net tables with one reused buffer. These files
// hold a line per socket (30,000 lines at the load picket is built for), so
// they are scanned in place: procfs's NetTCP/NetUNIX build a struct with
// parsed addresses per line, which costs more than the kernel's own
// formatting at that size, and only two columns are needed here.
type tableReader struct {
	buf      []byte
	diagBufs [][]byte // one per diagGroups entry, kept between scans
	// partLen is how many inodes each diagGroups entry's dump stored at
	// the last look: the next one's map is made that size.
	partLen [len(diagGroups)]int
}

// readNS reads every table under dir (ROOT/proc/net, or ROOT/proc/PID/net
// for another namespace). A table that does not exist (IPv6 off, no packet
// module) is skipped.
func (r *tableReader) readNS(dir string) (*nsTables, error) {
	return r.readNSDiag(dir, false, 0)
}

// readNSDiag is readNS with the tables that have a sock_diag twin (see
// sockdiag.go) dumped instead when dump is set; dir must then be picket's
// own namespace's. hint is how many sockets the namespace is expected to
// have (its holders' socket fds), to size the inode maps once.
func (r *tableReader) readNSDiag(dir string, dump bool, hint int) (*nsTables, error) {
	var d *pendingDump
	if dump {
		d = r.startDump(hint, true)
	}
	return r.readNSDumped(dir, d, hint)
}

// readNSDumped is readNS with the tables d dumped (d nil: none) taken from
// it; it waits for d, and d must be of the namespace of dir.
func (r *tableReader) readNSDumped(dir string, d *pendingDump, hint int) (*nsTables, error) {
	var t *nsTables
	var dumped map[string]bool
	if d != nil {
		t, dumped = d.wait()
	} else {
		t = &nsTables{kinds: make(map[uint64]sockKind, max(hint+hint/4, 1024))}
	}
	var errs []error
	for _, nt := range netTables {
		if dumped[nt.file] {
			continue
		}
		if err := r.readTable(filepath.Join(dir, nt.file), nt, t); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			errs = append(errs, err)
		}
	}
	return t, errors.Join(errs...)
}

// diagGroups splits the dumps between goroutines of about equal work, each
// with its own netlink socket, which the kernel serves on two CPUs at once.
var diagGroups = [...][]string{tcpBothFiles, {"udp", "udp6", "unix"}}

// tcpBothFiles are the tables tcpBoth dumps at once (each is dumped on its
// own where that fails).
var tcpBothFiles = []string{"tcp", "tcp6"}

// pendingDump is a dump of picket's own namespace's tables under way:
// startDump has opened its netlink sockets and started a goroutine per
// diagGroups entry; wait joins them.
type pendingDump struct {
	r     *tableReader
	wg    sync.WaitGroup
	fds   []int // the netlink sockets, -1 for one that did not open
	parts []*nsTables
	done  [][]bool
	t     *nsTables
	fin   map[string]bool
	over  bool
	// inodes is false for dumps that only count: the BPF pass says which
	// held sockets they list (nsTables.hashed).
	inodes bool
}

// startDump opens the netlink sockets now, so that their fds are known
// (fds) to whoever lists picket's own fds meanwhile, and starts the
// dumps. hint sizes the inode maps; without inodes, the dumps count
// sockets and store none of them, for a look whose BPF pass says which
// held sockets they list: at 31,000 sockets the maps were a fifth of a
// look's user CPU (~3 ms, in inserts and lookups) and 0.9 MB of its
// 2.3 MB of allocations.
func (r *tableReader) startDump(hint int, inodes bool) *pendingDump {
	d := &pendingDump{
		r:      r,
		fds:    make([]int, len(diagGroups)),
		parts:  make([]*nsTables, len(diagGroups)),
		done:   make([][]bool, len(diagGroups)),
		inodes: inodes,
	}
	if len(r.diagBufs) < len(diagGroups) {
		r.diagBufs = make([][]byte, len(diagGroups))
	}
	for i, files := range diagGroups {
		size := r.partLen[i] + r.partLen[i]/8
		if size == 0 {
			size = hint / len(diagGroups)
		}
		d.parts[i] = &nsTables{}
		d.done[i] = make([]bool, len(files))
		d.fds[i] = -1
		sd, err := openSockDiag(r.diagBufs[i])
		if err != nil {
			d.parts[i].kinds = make(map[uint64]sockKind, 1024)
			continue
		}
		r.diagBufs[i] = sd.buf
		d.fds[i] = sd.fd
		d.wg.Go(func() {
			// The map is made here, beside the socket pass: at 30,000
			// sockets making both (a MiB of fresh pages) held the pass
			// back by ~10 ms.
			if inodes {
				d.parts[i].kinds = make(map[uint64]sockKind, max(size, 1024))
			}
			defer sd.close()
			if slices.Equal(files, tcpBothFiles) && sd.dump(tcpBoth, d.parts[i]) == nil {
				for j := range files {
					d.done[i][j] = true
				}
				return
			}
			for j, f := range files {
				d.done[i][j] = sd.dump(diagRequests[f], d.parts[i]) == nil
			}
		})
	}
	return d
}

// dumpFD says whether fd is one of d's netlink sockets.
func (d *pendingDump) dumpFD(fd int) bool {
	return fd >= 0 && slices.Contains(d.fds, fd)
}

// wait joins the dumps (their netlink sockets are closed on return, before
// any text table is read, so that picket's own sockets are not counted in
// /proc/net/netlink) and says which tables were dumped; a dump that failed
// (or a socket that could not be opened) leaves its file to be read as
// text, which says the same. Called again, it returns the same.
func (d *pendingDump) wait() (*nsTables, map[string]bool) {
	if d == nil {
		return nil, nil
	}
	if d.over {
		return d.t, d.fin
	}
	d.wg.Wait()
	d.over = true
	for i, p := range d.parts {
		if d.inodes {
			d.r.partLen[i] = len(p.kinds)
		}
		if p.kinds == nil {
			// A text table read in place of a failed dump stores its
			// inodes here.
			p.kinds = make(map[uint64]sockKind)
		}
	}
	t := d.parts[0]
	for _, p := range d.parts[1:] {
		t.more = append(t.more, p.kinds)
		addCounts(&t.totals, p.totals)
		for st, n := range p.states {
			t.states[st] += n
		}
	}
	dumped := make(map[string]bool, len(diagRequests))
	for i, files := range diagGroups {
		for j, f := range files {
			dumped[f] = d.done[i][j]
			if d.done[i][j] && !d.inodes {
				t.hashed |= dumpTables[f]
			}
		}
	}
	d.t, d.fin = t, dumped
	return t, dumped
}

func (r *tableReader) readTable(path string, nt netTable, t *nsTables) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.scan(f, path, nt, t)
}

// scan counts the sockets of one table read from f; path names it in errors.
func (r *tableReader) scan(f io.Reader, path string, nt netTable, t *nsTables) error {
	if r.buf == nil {
		// seq_file hands over at most a page per read(2) whatever the
		// buffer's size, so a bigger one only costs memory; it must
		// still hold the longest line.
		r.buf = make([]byte, 32<<10)
	}
	line := 0
	return eachLine(f, r.buf, func(l []byte) error {
		line++
		if line == 1 {
			return nil // header
		}
		inode, ok := proctext.Dec(proctext.Field(l, nt.inodeCol))
		if !ok {
			return fmt.Errorf("%s:%d: no inode in column %d", path, line, nt.inodeCol+1)
		}
		switch nt.kind {
		case kindTCP:
			t.totals.TCP++
			st, ok := proctext.Hex(proctext.Field(l, nt.stateCol))
			if !ok {
				return fmt.Errorf("%s:%d: bad state in column %d", path, line, nt.stateCol+1)
			}
			if st < uint64(len(t.states)) {
				t.states[st]++
			}
		case kindUDP:
			t.totals.UDP++
		case kindUnix:
			t.totals.Unix++
		case kindRaw:
			t.totals.Raw++
		case kindNetlink:
			t.totals.Netlink++
		case kindPacket:
			t.totals.Packet++
		default:
			t.totals.Other++
		}
		if inode != 0 {
			t.kinds[inode] = nt.kind
		}
		return nil
	})
}

// eachLine calls fn for every line of r, reading through buf. A line longer
// than buf is an error rather than a silent split.
func eachLine(r io.Reader, buf []byte, fn func([]byte) error) error {
	start, end := 0, 0
	for {
		n, err := r.Read(buf[end:])
		end += n
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			if ferr := fn(buf[start : start+i]); ferr != nil {
				return ferr
			}
			start += i + 1
		}
		if err == io.EOF {
			if start < end {
				return fn(buf[start:end])
			}
			return nil
		}
		if err != nil {
			return err
		}
		if start == 0 && end == len(buf) {
			return fmt.Errorf("line longer than %d bytes", len(buf))
		}
		copy(buf, buf[start:end])
		end -= start
		start = 0
	}
}

func (c *snapshotCounts) add(k sockKind) {
	switch k {
	case kindTCP:
		c.TCP++
	case kindUDP:
		c.UDP++
	case kindUnix:
		c.Unix++
	case kindRaw:
		c.Raw++
	case kindNetlink:
		c.Netlink++
	case kindPacket:
		c.Packet++
	default:
		c.Other++
	}
}

type snapshotCounts snapshot.SocketCounts

// addKind adds n sockets of kind k to c.
func addKind(c *snapshot.SocketCounts, k sockKind, n int) {
	switch k {
	case kindTCP:
		c.TCP += n
	case kindUDP:
		c.UDP += n
	case kindUnix:
		c.Unix += n
	case kindRaw:
		c.Raw += n
	case kindNetlink:
		c.Netlink += n
	case kindPacket:
		c.Packet += n
	default:
		c.Other += n
	}
}
