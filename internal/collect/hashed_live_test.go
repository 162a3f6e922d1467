package collect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
	"github.com/picket-guard/picket/internal/testkit"
)

// hashedCase is one socket of TestHashedIsWhatTheDumpsList and whether the
// kernel has it in a table of its namespace.
type hashedCase struct {
	name   string
	fd     int
	hashed bool
	ns     bool // made in a namespace of its own
}

// TestHashedIsWhatTheDumpsList: a socket the BPF passes mark hashed in
// picket's own namespace is one the sock_diag dumps list, and no other,
// for sockets in every state a process can hold them in. A full look whose
// pass ran counts the dumps' sockets without storing their inodes and
// takes a held socket's place in the tables from the pass (aggregate.go).
func TestHashedIsWhatTheDumpsList(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterators, creating a network namespace")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	cases := hashedSockets(t)
	var iters []*sockiter.Iter
	if testkit.KernelAtLeast(6, 2) {
		it, err := sockiter.LoadWalk(sockiter.Options{})
		if err != nil {
			t.Fatalf("load the fd walk: %v", err)
		}
		iters = append(iters, it)
	}
	it, err := sockiter.Load(sockiter.Options{})
	if err != nil {
		t.Fatalf("load the task_file iterator: %v", err)
	}
	iters = append(iters, it)
	defer func() {
		for _, it := range iters {
			it.Close()
		}
	}()

	var hostNS uint64
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	hostNS = st.Ino
	// The dumps, inodes and all, as a /proc walk's look has them.
	var r tableReader
	d := r.startDump(0, true)
	tables, dumped := d.wait()
	for f := range dumpTables {
		if !dumped[f] {
			t.Fatalf("the %s dump failed", f)
		}
	}
	inode := map[int]uint64{}
	for _, c := range cases {
		var st unix.Stat_t
		if err := unix.Fstat(c.fd, &st); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		inode[c.fd] = st.Ino
		if got, want := tables.kind(st.Ino) != kindUnknown, c.hashed && !c.ns; got != want {
			t.Errorf("%s: in the dumps %v, want %v", c.name, got, want)
		}
	}
	pid := int32(os.Getpid())
	for _, it := range iters {
		list, _, err := it.List(context.Background(), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", it.Program(), err)
		}
		seen := map[int]bool{}
		for _, sk := range list {
			if sk.PID != pid {
				continue
			}
			// What a look whose pass ran says against what the dumps
			// say, for every socket this process holds.
			if got, want := bpfRef(sk, hostNS).hashed != 0, tables.kind(sk.Inode) != kindUnknown; got != want {
				t.Errorf("%s: socket fd %d (%+v): listed by the pass %v, by the dumps %v", it.Program(), sk.FD, sk, got, want)
			}
			seen[int(sk.FD)] = true
			for _, c := range cases {
				if c.fd != int(sk.FD) {
					continue
				}
				if sk.Hashed != c.hashed {
					t.Errorf("%s: %s: hashed %v, want %v (%+v)", it.Program(), c.name, sk.Hashed, c.hashed, sk)
				}
				if sk.Inode != inode[c.fd] {
					t.Errorf("%s: %s: inode %d, want %d", it.Program(), c.name, sk.Inode, inode[c.fd])
				}
				if (uint64(sk.NetNS) == hostNS) == c.ns || sk.NetNS == 0 {
					t.Errorf("%s: %s: network namespace %d, this process's %d", it.Program(), c.name, sk.NetNS, hostNS)
				}
			}
		}
		for _, c := range cases {
			if !seen[c.fd] {
				t.Errorf("%s: %s (fd %d) not listed", it.Program(), c.name, c.fd)
			}
		}
	}
}

// hashedSockets opens sockets in the states a process holds them in, and
// two in a network namespace of their own (named "ns..."), closed when t
// ends.
func hashedSockets(t *testing.T) []hashedCase {
	t.Helper()
	var cases []hashedCase
	add := func(name string, fd int, hashed bool) {
		t.Cleanup(func() { unix.Close(fd) })
		cases = append(cases, hashedCase{name, fd, hashed, false})
	}
	sock := func(family, typ int) int {
		fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}

	l := sock(unix.AF_INET, unix.SOCK_STREAM)
	must(unix.Bind(l, lo))
	must(unix.Listen(l, 16))
	add("tcp listener", l, true)
	sa, _ := unix.Getsockname(l)
	c := sock(unix.AF_INET, unix.SOCK_STREAM)
	must(unix.Connect(c, sa))
	add("tcp established", c, true)
	a, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	must(err)
	add("tcp accepted", a, true)
	// The peer closes: this end is in CLOSE_WAIT, still in the
	// established hash.
	c2 := sock(unix.AF_INET, unix.SOCK_STREAM)
	must(unix.Connect(c2, sa))
	a2, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	must(err)
	unix.Close(a2)
	add("tcp close_wait", c2, true)
	// This end shuts down its writes: FIN_WAIT2 once the peer acks.
	c3 := sock(unix.AF_INET, unix.SOCK_STREAM)
	must(unix.Connect(c3, sa))
	a3, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	must(err)
	add("tcp peer of fin_wait2", a3, true)
	must(unix.Shutdown(c3, unix.SHUT_WR))
	add("tcp fin_wait2", c3, true)
	// Bound but not listening: in the bind hash only, which the dumps
	// are not asked for (TCP_BOUND_INACTIVE).
	b := sock(unix.AF_INET, unix.SOCK_STREAM)
	must(unix.Bind(b, lo))
	add("tcp bound", b, false)
	add("tcp new", sock(unix.AF_INET, unix.SOCK_STREAM), false)
	// Refused: back to CLOSE, unhashed.
	r := sock(unix.AF_INET, unix.SOCK_STREAM)
	bsa, _ := unix.Getsockname(b)
	if err := unix.Connect(r, bsa); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("connect to a bound socket that does not listen: %v", err)
	}
	add("tcp refused", r, false)

	u := sock(unix.AF_INET, unix.SOCK_DGRAM)
	must(unix.Bind(u, lo))
	add("udp bound", u, true)
	add("udp unbound", sock(unix.AF_INET, unix.SOCK_DGRAM), false)
	usa, _ := unix.Getsockname(u)
	uc := sock(unix.AF_INET, unix.SOCK_DGRAM)
	must(unix.Connect(uc, usa)) // binds a port: hashed
	add("udp connected", uc, true)
	// Disconnected (AF_UNSPEC): udp_disconnect unhashes a socket whose
	// port only the connect bound, and keeps one bound by hand.
	ud := sock(unix.AF_INET, unix.SOCK_DGRAM)
	must(unix.Connect(ud, usa))
	must(disconnect(ud))
	add("udp disconnected", ud, false)
	ub := sock(unix.AF_INET, unix.SOCK_DGRAM)
	must(bindSomePort(ub))
	must(unix.Connect(ub, usa))
	must(disconnect(ub))
	add("udp bound, disconnected", ub, true)

	if l6, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
		if unix.Bind(l6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}) == nil && unix.Listen(l6, 4) == nil {
			add("tcp6 listener", l6, true)
			u6 := sock(unix.AF_INET6, unix.SOCK_DGRAM)
			must(unix.Bind(u6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}))
			add("udp6 bound", u6, true)
			add("udp6 unbound", sock(unix.AF_INET6, unix.SOCK_DGRAM), false)
		} else {
			unix.Close(l6)
			t.Log("no ::1 here: no IPv6 cases")
		}
	}

	// Every unix socket is in its namespace's table, bound or not
	// (unix_create1 inserts it unbound).
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(err)
	add("unix pair", p[0], true)
	add("unix pair peer", p[1], true)
	add("unix dgram", sock(unix.AF_UNIX, unix.SOCK_DGRAM), true)
	ul := sock(unix.AF_UNIX, unix.SOCK_STREAM)
	must(unix.Bind(ul, &unix.SockaddrUnix{Name: filepath.Join(t.TempDir(), "s")}))
	must(unix.Listen(ul, 4))
	add("unix listener", ul, true)
	ua := sock(unix.AF_UNIX, unix.SOCK_SEQPACKET)
	must(unix.Bind(ua, &unix.SockaddrUnix{Name: "@picket-hashed-test"}))
	add("unix abstract", ua, true)

	// Sockets made in another namespace: hashed there, not in the
	// tables of this one. The thread that made them is left locked, so
	// the runtime ends it with its namespace; never the main thread,
	// which the runtime keeps (and whose namespace /proc/self shows).
	type nsOut struct {
		fds []int
		err error
	}
	// work runs on a locked thread and leaves it locked.
	work := func(out chan<- nsOut) {
		var o nsOut
		defer func() { out <- o }()
		if o.err = unix.Unshare(unix.CLONE_NEWNET); o.err != nil {
			return
		}
		u, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if o.err = err; err != nil {
			return
		}
		o.fds = append(o.fds, u)
		if o.err = unix.Bind(u, &unix.SockaddrInet4{}); o.err != nil {
			return
		}
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		o.err = err
		o.fds = append(o.fds, p[:]...)
	}
	ch := make(chan nsOut)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			work(ch)
			return
		}
		// The main thread stays locked to this goroutine meanwhile, so
		// the other one runs on another.
		inner := make(chan nsOut)
		go func() {
			runtime.LockOSThread()
			work(inner)
		}()
		o := <-inner
		runtime.UnlockOSThread()
		ch <- o
	}()
	o := <-ch
	must(o.err)
	for i, name := range []string{"udp bound", "unix pair", "unix pair peer"} {
		add("other namespace: "+name, o.fds[i], true)
		cases[len(cases)-1].ns = true
	}
	return cases
}

// bindSomePort binds fd to a port of 127.0.0.1 by its number, as a
// server does: a port bound by number stays bound through a disconnect
// (SOCK_BINDPORT_LOCK, __inet_bind), one the kernel picked for port 0
// does not.
func bindSomePort(fd int) error {
	var err error
	for range 10 {
		var p int
		if p, err = freePort(); err != nil {
			return err
		}
		if err = unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: p}); !errors.Is(err, unix.EADDRINUSE) {
			return err
		}
	}
	return err
}

// freePort is a UDP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	return sa.(*unix.SockaddrInet4).Port, nil
}

// disconnect dissolves a datagram socket's association (connect with
// AF_UNSPEC), which x/sys/unix has no Sockaddr for.
func disconnect(fd int) error {
	sa := unix.RawSockaddrAny{}
	sa.Addr.Family = unix.AF_UNSPEC
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
	if e != 0 {
		return e
	}
	return nil
}

// TestPassFailureDumpsAgain: a full look with the BPF pass counts the
// sockets this process holds once in the totals, as a look of the /proc
// walk does, though its dumps store no inodes; a look whose pass fails
// walks /proc, which needs them: it dumps again with them, and counts the
// same.
func TestPassFailureDumpsAgain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterator")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	const n = 200
	for range n {
		u, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(u) })
		if err := unix.Bind(u, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Options{BPFNoWalk: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, _ := c.Collect(context.Background(), Full)
	if first.Collector != snapshot.CollectorBPF {
		t.Fatalf("the iterator did not run: %s", first.CollectorReason)
	}
	// The next pass reads a closed iterator and fails.
	c.scanner.bpf.iter.Close()
	s, err := c.Collect(context.Background(), Full)
	if err != nil {
		t.Fatal(err)
	}
	if s.Collector != snapshot.CollectorProc || !strings.Contains(s.CollectorReason, "task_file") {
		t.Fatalf("look after a failed pass: collector %q (%s), want proc and why", s.Collector, s.CollectorReason)
	}
	ref, err := New(Options{ProcOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ref.Collect(context.Background(), Full)
	// Other tests may open and close sockets meanwhile, not n of them
	// all bound UDP: counted twice, this process's would be n more.
	for _, l := range []struct {
		name string
		s    *snapshot.Snapshot
	}{{"with the pass", first}, {"after the failed pass", s}} {
		if d := l.s.Sockets.Totals.UDP - r.Sockets.Totals.UDP; d > n/2 || d < -n/2 {
			t.Errorf("UDP sockets in the totals: %d %s, %d by the /proc walk", l.s.Sockets.Totals.UDP, l.name, r.Sockets.Totals.UDP)
		}
	}
	var own int
	for _, h := range s.Sockets.Processes {
		if h.PID == os.Getpid() {
			own = h.UDP
		}
	}
	if own < n {
		t.Errorf("this process holds %d UDP sockets in the look after the failed pass, want at least %d", own, n)
	}
}
