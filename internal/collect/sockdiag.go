package collect

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The big socket tables of picket's own network namespace (tcp, tcp6, udp,
// udp6, unix) are read with NETLINK_SOCK_DIAG dumps (SOCK_DIAG_BY_FAMILY)
// instead of their /proc/net text, on the live system only: the kernel then
// hands over fixed binary records instead of formatting a line per socket,
// and /proc/net/udp in particular restarts its walk of the hash table from
// the first socket at every read(2) of a page (udp_seq_start ->
// udp_get_idx), which makes it quadratic in the number of UDP sockets. At
// 31,000 sockets the dumps take about a third of the time of the text
// (docs/benchmarks.md, BenchmarkAttribution). Each dump lists exactly the
// sockets its /proc/net file lists; a dump that fails (no inet_diag module,
// netlink forbidden by a sandbox) falls back to the file.
//
// A dump only sees the namespace of the socket that asks, so other network
// namespaces (containers) keep reading /proc/PID/net/*: that needs no setns.
// Message layouts are the kernel's (include/uapi/linux/inet_diag.h,
// unix_diag.h); x/sys/unix has the constants but not these structs.

// tcpfBoundInactive is TCPF_BOUND_INACTIVE (include/net/tcp_states.h,
// Linux 6.5): bound-only TCP sockets, which inet_diag can dump but
// /proc/net/tcp does not list. They are left out so both ways count the
// same (such a socket is still found, through the xattr, by its holder).
const tcpfBoundInactive = 1 << 13

// sockDiag is a NETLINK_SOCK_DIAG socket and its receive buffer.
type sockDiag struct {
	fd  int
	seq uint32
	buf []byte
	req []byte
}

// openSockDiag opens the socket; buf is a receive buffer to reuse (nil:
// a new one).
func openSockDiag(buf []byte) (*sockDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	// A dump always ends with NLMSG_DONE; the timeout only guards against
	// a kernel that never answers (then the text tables are read).
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The kernel sizes a dump's messages after the largest buffer recvmsg
	// was given (up to 32 KiB), so a big buffer means fewer calls and never
	// a truncated message.
	if len(buf) < 64<<10 {
		buf = make([]byte, 64<<10)
	}
	return &sockDiag{fd: fd, buf: buf, req: make([]byte, 0, 128)}, nil
}

func (d *sockDiag) close() error { return unix.Close(d.fd) }

// diagRequest is one table's dump: the kind of its sockets, the request
// body, and where the inode (and for TCP the state) sit in each answer.
type diagRequest struct {
	kind     sockKind
	body     []byte
	inoOff   int
	stateOff int    // -1: not TCP
	msgType  uint16 // 0: SOCK_DIAG_BY_FAMILY
}

// inetDiagReq is struct inet_diag_req_v2 for every state but
// TCP_BOUND_INACTIVE, no extensions, no filter.
func inetDiagReq(family, proto uint8) []byte {
	r := make([]byte, 56)
	r[0], r[1] = family, proto
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff&^tcpfBoundInactive) // idiag_states
	return r
}

// unixDiagReq is struct unix_diag_req: every state, nothing to show.
func unixDiagReq() []byte {
	r := make([]byte, 24)
	r[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff) // udiag_states
	return r
}

// tcpdiagGetsock is TCPDIAG_GETSOCK (include/uapi/linux/inet_diag.h), the
// request of inet_diag's first interface, which x/sys/unix does not name.
const tcpdiagGetsock = 18

// tcpBoth dumps tcp and tcp6 in one walk: inet_diag_dump_compat
// (net/ipv4/inet_diag.c) asks for family AF_UNSPEC, which a
// SOCK_DIAG_BY_FAMILY request cannot (its family picks the handler). Each
// walk of the established table visits every bucket, empty or not (262,144
// on a host with 24 GiB), so one walk instead of two is a third of the
// dumps' kernel time at 12,000 TCP sockets. Its body is struct
// inet_diag_req (60 bytes): family, lengths, extensions, sockid, states,
// dbs.
var tcpBoth = diagRequest{kindTCP, func() []byte {
	r := make([]byte, 60)
	r[0] = unix.AF_INET
	binary.NativeEndian.PutUint32(r[52:], 0xffffffff&^tcpfBoundInactive) // idiag_states
	return r
}(), 68, 1, tcpdiagGetsock}

// diagRequests maps the /proc/net files that have a sock_diag twin to it.
// struct inet_diag_msg: family, state, timer, retrans, 48 bytes of sockid,
// expires, rqueue, wqueue, uid, inode (offset 68). struct unix_diag_msg:
// family, type, state, pad, inode (offset 4).
var diagRequests = map[string]diagRequest{
	"tcp":  {kindTCP, inetDiagReq(unix.AF_INET, unix.IPPROTO_TCP), 68, 1, 0},
	"tcp6": {kindTCP, inetDiagReq(unix.AF_INET6, unix.IPPROTO_TCP), 68, 1, 0},
	"udp":  {kindUDP, inetDiagReq(unix.AF_INET, unix.IPPROTO_UDP), 68, -1, 0},
	"udp6": {kindUDP, inetDiagReq(unix.AF_INET6, unix.IPPROTO_UDP), 68, -1, 0},
	"unix": {kindUnix, unixDiagReq(), 4, -1, 0},
}

// dump runs one dump and adds its sockets to t. Counts are added
// only when the dump completed, so a failed one can be replaced by the
// text file without counting twice (the inodes it stored map to the same
// kind either way).
func (d *sockDiag) dump(req diagRequest, t *nsTables) error {
	kind := req.kind
	var total int
	var states [len(tcpStates)]int
	typ := req.msgType
	if typ == 0 {
		typ = unix.SOCK_DIAG_BY_FAMILY
	}
	err := d.exchange(typ, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, req.body, func(body []byte) error {
		if len(body) < req.inoOff+4 {
			return fmt.Errorf("sock_diag message of %d bytes", len(body))
		}
		total++
		if req.stateOff >= 0 {
			if st := body[req.stateOff]; int(st) < len(states) {
				states[st]++
			}
		}
		if ino := binary.NativeEndian.Uint32(body[req.inoOff:]); ino != 0 && t.kinds != nil {
			t.kinds[uint64(ino)] = kind
		}
		return nil
	})
	if err != nil {
		return err
	}
	addKind(&t.totals, kind, total)
	for st, c := range states {
		t.states[st] += c
	}
	return nil
}

// exchange sends one SOCK_DIAG_BY_FAMILY request and hands each answer's
// body to fn until the kernel says it is done: NLMSG_DONE ends a dump, and
// a request without NLM_F_DUMP gets one answer (or an NLMSG_ERROR), after
// which it returns.
func (d *sockDiag) exchange(typ, flags uint16, reqBody []byte, fn func(body []byte) error) error {
	d.seq++
	msg := d.req[:unix.SizeofNlMsghdr]
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(reqBody)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], d.seq)
	binary.NativeEndian.PutUint32(msg[12:], 0)
	msg = append(msg, reqBody...)
	if err := unix.Sendto(d.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	dumping := flags&unix.NLM_F_DUMP != 0
	for {
		got, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b := d.buf[:got]
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errors.New("malformed netlink message")
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			body := b[unix.SizeofNlMsghdr:l]
			if a := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1); a < len(b) {
				b = b[a:]
			} else {
				b = nil
			}
			if seq != d.seq {
				continue // the rest of an earlier, abandoned dump
			}
			switch typ {
			case unix.NLMSG_DONE:
				// The kernel may put the dump's error code in DONE.
				if len(body) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(body)); e < 0 {
						return unix.Errno(-e)
					}
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(body) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(body)); e < 0 {
						return unix.Errno(-e)
					}
					// An error code of 0 is an acknowledgement.
					if !dumping {
						return nil
					}
				}
				return errors.New("netlink error without a code")
			}
			if err := fn(body); err != nil {
				return err
			}
			if !dumping {
				return nil
			}
		}
	}
}
