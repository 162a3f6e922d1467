package collect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ErrNoSocket is what SocketOwner returns when no connected TCP socket of
// this network namespace has the addresses asked about (the peer has gone,
// or it is on another host).
var ErrNoSocket = errors.New("no such connected TCP socket here")

// TCP states in which a socket is a full socket with its creator's uid
// (include/net/tcp_states.h). A listener, a request socket (SYN_RECV,
// NEW_SYN_RECV) and a TIME_WAIT socket are answered with uid 0
// (inet_req_diag_fill, inet_twsk_diag_fill): trusting those would give a
// closed connection root's rights.
var ownedTCPStates = [...]bool{
	1:  true, // ESTABLISHED
	4:  true, // FIN_WAIT1
	5:  true, // FIN_WAIT2
	8:  true, // CLOSE_WAIT
	9:  true, // LAST_ACK
	11: true, // CLOSING
}

// SocketOwner is the uid that created the connected TCP socket whose own
// address is local and whose peer is remote, looked up in this process's
// network namespace with one NETLINK_SOCK_DIAG request (no dump): for a
// server, local is the client's address (the connection's RemoteAddr) and
// remote its own. The uid is the socket's sk_uid, fixed when the socket was
// made (sock_init_data), so a process cannot claim another's by changing
// its credentials afterwards.
func SocketOwner(local, remote netip.AddrPort) (uint32, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	la, ra := local.Addr(), remote.Addr()
	if la.Is4() != ra.Is4() || !la.IsValid() || !ra.IsValid() {
		return 0, fmt.Errorf("socket owner of %s -> %s: mixed or invalid addresses", local, remote)
	}
	family := uint8(unix.AF_INET6)
	if la.Is4() {
		family = unix.AF_INET
	}
	// struct inet_diag_req_v2 with its inet_diag_sockid: ports big-endian,
	// addresses in network order (an IPv4 one in the first four bytes),
	// cookie INET_DIAG_NOCOOKIE so the kernel does not check it
	// (sock_diag_check_cookie).
	req := make([]byte, 56)
	req[0], req[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[4:], 0xffffffff)
	binary.BigEndian.PutUint16(req[8:], local.Port())
	binary.BigEndian.PutUint16(req[10:], remote.Port())
	putAddr(req[12:28], la)
	putAddr(req[28:44], ra)
	binary.NativeEndian.PutUint32(req[48:], 0xffffffff)
	binary.NativeEndian.PutUint32(req[52:], 0xffffffff)

	d, err := openSockDiag(make([]byte, 4096))
	if err != nil {
		return 0, fmt.Errorf("socket owner: sock_diag: %w", err)
	}
	defer d.close()
	var uid uint32
	found := false
	err = d.exchange(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_REQUEST, req, func(body []byte) error {
		// struct inet_diag_msg: family, state, timer, retrans, sockid
		// (4..52: ports, addresses, interface, cookie), expires, rqueue,
		// wqueue, uid (64), inode (68).
		if len(body) < 72 {
			return fmt.Errorf("sock_diag message of %d bytes", len(body))
		}
		// The kernel's exact lookup falls back to a listener on the local
		// port (__inet_lookup): only the very connection asked about will do.
		if l, r, ok := diagSockID(body); !ok || l != local || r != remote {
			return nil
		}
		if st := int(body[1]); st >= len(ownedTCPStates) || !ownedTCPStates[st] {
			return nil
		}
		uid, found = binary.NativeEndian.Uint32(body[64:]), true
		return nil
	})
	if errors.Is(err, unix.ENOENT) || err == nil && !found {
		return 0, fmt.Errorf("socket owner of %s -> %s: %w", local, remote, ErrNoSocket)
	}
	if err != nil {
		return 0, fmt.Errorf("socket owner of %s -> %s: sock_diag: %w", local, remote, err)
	}
	return uid, nil
}

func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	v := a.As16()
	copy(b, v[:])
}

// diagSockID reads the local and remote address of an inet_diag_msg, with
// IPv4-mapped IPv6 addresses unmapped (a dual-stack socket talking IPv4).
func diagSockID(body []byte) (local, remote netip.AddrPort, ok bool) {
	addr := func(b []byte) netip.Addr {
		if body[0] == unix.AF_INET {
			return netip.AddrFrom4([4]byte(b[:4]))
		}
		return netip.AddrFrom16([16]byte(b[:16])).Unmap()
	}
	if body[0] != unix.AF_INET && body[0] != unix.AF_INET6 {
		return local, remote, false
	}
	local = netip.AddrPortFrom(addr(body[8:24]), binary.BigEndian.Uint16(body[4:]))
	remote = netip.AddrPortFrom(addr(body[24:40]), binary.BigEndian.Uint16(body[6:]))
	return local, remote, true
}
