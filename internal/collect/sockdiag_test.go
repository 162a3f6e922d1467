package collect

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// A minimal NETLINK_SOCK_DIAG client, only for BenchmarkAttribution's (c):
// SOCK_DIAG_BY_FAMILY dumps of every TCP, UDP, unix, netlink and packet
// socket of the caller's network namespace, keeping only the inode. The
// request and message layouts are the kernel's
// (include/uapi/linux/inet_diag.h, unix_diag.h, netlink_diag.h,
// packet_diag.h); x/sys/unix has the constants but not these structs.
//
// It is a test file on purpose: picket does not use sock_diag (see
// docs/benchmarks.md for why), and it only sees the namespace of the thread
// that asks, so a container's sockets would need setns per namespace.

type diagClient struct {
	fd  int
	seq uint32
	buf []byte
	req []byte
}

func newDiagClient() (*diagClient, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The kernel sizes a dump's skbs after the largest buffer recvmsg was
	// given (capped at 32 KiB of messages), so a big one saves calls.
	return &diagClient{fd: fd, buf: make([]byte, 64<<10), req: make([]byte, 0, 128)}, nil
}

func (d *diagClient) Close() error { return unix.Close(d.fd) }

// inetReq is struct inet_diag_req_v2: every state, no extensions.
func inetReq(family, proto uint8) []byte {
	r := make([]byte, 56)
	r[0], r[1] = family, proto
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff) // idiag_states
	return r
}

// smallReq is struct unix_diag_req / netlink_diag_req / packet_diag_req:
// family, protocol, pad, then u32 ino, u32 show, u64 cookie (states first
// for unix).
func smallReq(family, proto uint8, unixStates bool) []byte {
	n := 20
	if unixStates {
		n = 24
	}
	r := make([]byte, n)
	r[0], r[1] = family, proto
	if unixStates {
		binary.NativeEndian.PutUint32(r[4:], 0xffffffff) // udiag_states
	}
	return r
}

// diagDump is one dump: the request body and where the inode sits in each
// answer message.
type diagDump struct {
	kind   sockKind
	req    []byte
	inoOff int
}

var diagDumps = []diagDump{
	{kindTCP, inetReq(unix.AF_INET, unix.IPPROTO_TCP), 68},
	{kindTCP, inetReq(unix.AF_INET6, unix.IPPROTO_TCP), 68},
	{kindUDP, inetReq(unix.AF_INET, unix.IPPROTO_UDP), 68},
	{kindUDP, inetReq(unix.AF_INET6, unix.IPPROTO_UDP), 68},
	{kindUnix, smallReq(unix.AF_UNIX, 0, true), 4},
	{kindNetlink, smallReq(unix.AF_NETLINK, 255 /* NDIAG_PROTO_ALL */, false), 16},
	{kindPacket, smallReq(unix.AF_PACKET, 0, false), 4},
}

// kinds fills m with inode -> kind from every dump; a family whose diag
// module is not loaded (ENOENT) is skipped.
func (d *diagClient) kinds(m map[uint64]sockKind) error {
	for _, dd := range diagDumps {
		if err := d.dump(dd, m); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("sock_diag family %d proto %d: %w", dd.req[0], dd.req[1], err)
		}
	}
	return nil
}

func (d *diagClient) dump(dd diagDump, m map[uint64]sockKind) error {
	d.seq++
	req := d.req[:unix.SizeofNlMsghdr]
	binary.NativeEndian.PutUint32(req[0:], uint32(unix.SizeofNlMsghdr+len(dd.req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], d.seq)
	binary.NativeEndian.PutUint32(req[12:], 0)
	req = append(req, dd.req...)
	if err := unix.Sendto(d.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	for {
		n, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b := d.buf[:n]
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			typ := binary.NativeEndian.Uint16(b[4:])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errors.New("short netlink message")
			}
			body := b[unix.SizeofNlMsghdr:l]
			switch typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(body) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(body)); e != 0 {
						return unix.Errno(-e)
					}
				}
				return nil
			}
			if len(body) >= dd.inoOff+4 {
				if ino := binary.NativeEndian.Uint32(body[dd.inoOff:]); ino != 0 {
					m[uint64(ino)] = dd.kind
				}
			}
			if a := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1); a < len(b) {
				b = b[a:]
			} else {
				b = nil
			}
		}
	}
}
