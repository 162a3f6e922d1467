package collect

import (
	"maps"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSockDiagMatchesTables: the sock_diag dumps picket uses for its own
// namespace say what the /proc/net text says: the same inodes with the same
// kinds, the same totals and TCP states. Sockets of the rest of the system
// may come and go between the two reads, so a difference is retried.
func TestSockDiagMatchesTables(t *testing.T) {
	if d, err := openSockDiag(nil); err != nil {
		t.Skipf("no NETLINK_SOCK_DIAG here: %v", err)
	} else {
		d.close()
	}
	var own []int
	t.Cleanup(func() {
		for _, fd := range own {
			unix.Close(fd)
		}
	})
	lo := [4]byte{127, 0, 0, 1}
	for i := 0; i < 20; i++ {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, p[0], p[1])
		u, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, u)
		if err := unix.Bind(u, &unix.SockaddrInet4{Addr: lo}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	own = append(own, l)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: lo}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 16); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(l)
	for i := 0; i < 10; i++ {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, c)
		if err := unix.Connect(c, sa); err != nil {
			t.Fatal(err)
		}
		a, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, a)
	}
	// A bound-only TCP socket: in neither (it is found through the xattr).
	b, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	own = append(own, b)
	if err := unix.Bind(b, &unix.SockaddrInet4{Addr: lo}); err != nil {
		t.Fatal(err)
	}
	ownKind := map[uint64]sockKind{}
	for _, fd := range own {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		switch {
		case fd == b:
			ownKind[st.Ino] = kindUnknown
		case typ == unix.AF_UNIX:
			ownKind[st.Ino] = kindUnix
		default:
			styp, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
			if styp == unix.SOCK_DGRAM {
				ownKind[st.Ino] = kindUDP
			} else {
				ownKind[st.Ino] = kindTCP
			}
		}
	}

	var r tableReader
	for try := 1; ; try++ {
		text, err := r.readNS("/proc/net")
		if err != nil {
			t.Fatal(err)
		}
		dumped, err := r.readNSDiag("/proc/net", true, 0)
		if err != nil {
			t.Fatal(err)
		}
		for ino, want := range ownKind {
			if text.kind(ino) != want || dumped.kind(ino) != want {
				t.Fatalf("own socket %d: text says %d, sock_diag %d, want %d", ino, text.kind(ino), dumped.kind(ino), want)
			}
		}
		same := text.totals == dumped.totals && text.states == dumped.states && text.size() == dumped.size()
		text.each(func(ino uint64, k sockKind) {
			if dumped.kind(ino) != k {
				same = false
			}
		})
		if same {
			return
		}
		if try == 5 {
			t.Fatalf("text tables %+v %v (%d inodes), sock_diag %+v %v (%d inodes)",
				text.totals, text.states, text.size(), dumped.totals, dumped.states, dumped.size())
		}
	}
}

// TestTCPBothDumpsBothFamilies: the one walk of tcpBoth lists the IPv4 and
// the IPv6 TCP sockets that the two SOCK_DIAG_BY_FAMILY dumps list.
func TestTCPBothDumpsBothFamilies(t *testing.T) {
	d, err := openSockDiag(nil)
	if err != nil {
		t.Skipf("no NETLINK_SOCK_DIAG here: %v", err)
	}
	defer d.close()
	var inos []uint64
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			if network == "tcp6" {
				t.Logf("no IPv6 loopback: %v", err)
				continue
			}
			t.Fatal(err)
		}
		defer ln.Close()
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, st.Ino)
	}
	for try := 1; ; try++ {
		both := &nsTables{kinds: map[uint64]sockKind{}}
		if err := d.dump(tcpBoth, both); err != nil {
			t.Fatalf("the TCPDIAG_GETSOCK dump: %v", err)
		}
		each := &nsTables{kinds: map[uint64]sockKind{}}
		for _, f := range tcpBothFiles {
			if err := d.dump(diagRequests[f], each); err != nil {
				t.Fatalf("the %s dump: %v", f, err)
			}
		}
		for _, ino := range inos {
			if both.kind(ino) != kindTCP {
				t.Fatalf("own listener %d not in the TCPDIAG_GETSOCK dump", ino)
			}
		}
		if both.totals == each.totals && both.states == each.states && maps.Equal(both.kinds, each.kinds) {
			return
		}
		if try == 5 {
			t.Fatalf("one walk: %+v %v (%d inodes); one a family: %+v %v (%d inodes)", both.totals, both.states, len(both.kinds), each.totals, each.states, len(each.kinds))
		}
	}
}
