package collect

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/picket-guard/picket/internal/testkit"
)

// TestSocketOwner: the owner of a loopback connection's client socket is
// the uid that made it, seen from the server's side of the connection
// (its RemoteAddr is the client's own address), for IPv4 and IPv6; a
// connection that has closed has no owner.
func TestSocketOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: dials as nobody; CI runs as root")
	}
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", network)
		if err != nil {
			t.Fatalf("listen %s: %v", network, err)
		}
		defer l.Close()
		for _, uid := range []int{0, 65534} {
			c, err := testkit.DialAs(context.Background(), uid, l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			sc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			client := sc.RemoteAddr().(*net.TCPAddr).AddrPort()
			server := sc.LocalAddr().(*net.TCPAddr).AddrPort()
			got, err := SocketOwner(client, server)
			if err != nil || got != uint32(uid) {
				t.Errorf("%s: owner of a socket made by uid %d: %d, %v", network, uid, got, err)
			}
			// The server's own end is not the client's: it belongs to the
			// listener's owner, and is found only the other way round.
			if got, err := SocketOwner(server, client); err != nil || got != 0 {
				t.Errorf("%s: owner of the server's end: %d, %v", network, got, err)
			}
			c.Close()
			sc.Close()
		}
	}

	// A port nobody is connected from.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := l.Addr().(*net.TCPAddr).AddrPort()
	if _, err := SocketOwner(netip.MustParseAddrPort("127.0.0.1:1"), srv); !errors.Is(err, ErrNoSocket) {
		t.Errorf("no such connection: %v, want ErrNoSocket", err)
	}
	// The listener itself, which the kernel's lookup falls back to, is not
	// a connection.
	if _, err := SocketOwner(srv, netip.MustParseAddrPort("127.0.0.1:1")); !errors.Is(err, ErrNoSocket) {
		t.Errorf("a listener: %v, want ErrNoSocket", err)
	}
}

func BenchmarkSocketOwner(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	client := c.LocalAddr().(*net.TCPAddr).AddrPort()
	server := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	for b.Loop() {
		if _, err := SocketOwner(client, server); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDiagSockID: any answer of at least the size SocketOwner checks for
// is read without a panic, and an IPv4 one reads back the ports as sent.
func FuzzDiagSockID(f *testing.F) {
	msg := make([]byte, 72)
	msg[0], msg[1] = 2, 1
	msg[4], msg[5], msg[6], msg[7] = 0xe5, 0x6a, 0x85, 0x63
	copy(msg[8:], []byte{127, 0, 0, 1})
	copy(msg[24:], []byte{127, 0, 0, 1})
	f.Add(msg)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 72 {
			return
		}
		l, r, ok := diagSockID(b)
		if ok && b[0] == 2 && (l.Port() != uint16(b[4])<<8|uint16(b[5]) || r.Port() != uint16(b[6])<<8|uint16(b[7])) {
			t.Errorf("ports %d %d from % x", l.Port(), r.Port(), b[4:8])
		}
	})
}
