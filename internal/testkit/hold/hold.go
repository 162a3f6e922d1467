// Package hold is the socket holder that picket's tests and
// scripts/bench-snapshot start: a process that opens exactly the sockets it
// is asked for, says "ready", and keeps them until its stdin closes. The
// collector's counts are checked against what it opened, so the numbers a
// test asserts are the ones it made, whatever else runs on the machine.
//
// It is a test tool: nothing in cmd/picket imports it.
package hold

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/snapshot"
)

// Spec is what one holder opens.
type Spec struct {
	// Comm, when set, is the name the holder gives itself
	// (/proc/self/comm, any bytes a process may choose, up to 15).
	Comm       string
	UnixPairs  int // socketpair(AF_UNIX, SOCK_STREAM): 2 unix sockets each
	UDPBound   int // bound to 127.0.0.1:0, listed in /proc/net/udp
	UDPUnbound int // never bound: in no /proc/net table nor sock_diag dump
	TCPPairs   int // one listener, plus a connected client and accepted server per pair
	Netlink    int // NETLINK_ROUTE
	Raw        int // ICMP raw sockets; needs CAP_NET_RAW
	// AnyAddr binds to 0.0.0.0 instead of the loopback, for a fresh
	// network namespace whose lo is down: there the TCP pairs cannot
	// connect, so only the listener is made.
	AnyAddr bool
}

// Want is what the collector must count for a holder of s.
func (s Spec) Want() snapshot.SocketCounts {
	tcp := 0
	switch {
	case s.TCPPairs > 0 && s.AnyAddr:
		tcp = 1
	case s.TCPPairs > 0:
		tcp = 1 + 2*s.TCPPairs
	}
	return snapshot.SocketCounts{TCP: tcp, UDP: s.UDPBound + s.UDPUnbound, Unix: 2 * s.UnixPairs, Netlink: s.Netlink, Raw: s.Raw}
}

// Serve is a holder's whole life: it names itself, opens s's sockets, says
// "ready" on stdout and holds them until stdin closes (its parent is done
// or died). It returns the exit status: 0, or 1 after saying on stdout what
// it could not open.
func Serve(s Spec) int {
	if s.Comm != "" {
		// /proc/self/comm names the thread group leader, whichever thread
		// the runtime runs this on (PR_SET_NAME would name only this one).
		if err := os.WriteFile("/proc/self/comm", []byte(s.Comm), 0); err != nil {
			fmt.Println("comm:", err)
			return 1
		}
	}
	if err := Open(s); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// Open opens s's sockets (not its Comm) and leaves them open for the
// life of the process: holding them is its point.
func Open(s Spec) error {
	addr := [4]byte{127, 0, 0, 1}
	if s.AnyAddr {
		addr = [4]byte{}
	}
	for range s.UnixPairs {
		if _, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("socketpair: %w", err)
		}
	}
	for i := range s.UDPBound + s.UDPUnbound {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("udp: %w", err)
		}
		if i < s.UDPBound {
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: addr}); err != nil {
				return fmt.Errorf("bind udp: %w", err)
			}
		}
	}
	if s.TCPPairs > 0 {
		if err := openTCP(addr, s.TCPPairs, s.AnyAddr); err != nil {
			return err
		}
	}
	for range s.Netlink {
		if _, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
	}
	for range s.Raw {
		if _, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP); err != nil {
			return fmt.Errorf("raw: %w", err)
		}
	}
	return nil
}

// openTCP makes a listener and, unless listenOnly, pairs connected
// clients and their accepted servers.
func openTCP(addr [4]byte, pairs int, listenOnly bool) error {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tcp: %w", err)
	}
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: addr}); err != nil {
		return fmt.Errorf("bind tcp: %w", err)
	}
	// Each connect is accepted before the next, so the backlog never fills.
	if err := unix.Listen(l, 128); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if listenOnly {
		return nil
	}
	sa, err := unix.Getsockname(l)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	for range pairs {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("tcp client: %w", err)
		}
		if err := unix.Connect(c, &unix.SockaddrInet4{Addr: addr, Port: port}); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		if _, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
	}
	return nil
}
