package hostcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// The netlink probes are written by hand: each is one request on a raw
// socket, and neither of the libraries picket uses for these sockets can
// send what the probe needs (google/nftables always ends its batches with
// NFNL_MSG_BATCH_END, which commits).

// probeSockDiag dumps sockets in no state (a states mask of 0) over
// NETLINK_SOCK_DIAG: the kernel answers NLMSG_DONE when it has the
// protocol's diag handler (unix_diag, inet_diag with tcp_diag and
// udp_diag), and ENOENT when it has not, without listing a socket.
func probeSockDiag(n Name) Feature {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return missing(n, "NETLINK_SOCK_DIAG socket: "+err.Error())
	}
	defer unix.Close(fd)
	setTimeout(fd)
	var reqs []struct {
		what string
		body []byte
	}
	if n == SockDiagUnix {
		r := make([]byte, 24) // struct unix_diag_req, udiag_states 0
		r[0] = unix.AF_UNIX
		reqs = append(reqs, struct {
			what string
			body []byte
		}{"unix", r})
	} else {
		for _, p := range []struct {
			what  string
			proto uint8
		}{{"tcp", unix.IPPROTO_TCP}, {"udp", unix.IPPROTO_UDP}} {
			r := make([]byte, 56) // struct inet_diag_req_v2, idiag_states 0
			r[0], r[1] = unix.AF_INET, p.proto
			reqs = append(reqs, struct {
				what string
				body []byte
			}{p.what, r})
		}
	}
	for i, r := range reqs {
		msg := nlmsg(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, uint32(i+1), r.body)
		if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return missing(n, r.what+" dump: "+err.Error())
		}
		if err := awaitDone(fd, uint32(i+1)); err != nil {
			why := err.Error()
			if errors.Is(err, unix.ENOENT) {
				why += fmt.Sprintf(" (no %s_diag in this kernel)", r.what)
			}
			return missing(n, r.what+" dump: "+why)
		}
	}
	if n == SockDiagUnix {
		return found(n, "unix dumps")
	}
	return found(n, "tcp and udp dumps")
}

// awaitDone reads answers to request seq until its NLMSG_DONE (nil) or
// NLMSG_ERROR (its errno).
func awaitDone(fd int, seq uint32) error {
	buf := make([]byte, 16<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		done, err := scanAnswers(buf[:n], seq, false)
		if done || err != nil {
			return err
		}
	}
}

// scanAnswers walks netlink messages: it returns done at the NLMSG_DONE
// of seq, or the first NLMSG_ERROR carrying an errno (any seq, since a
// batch's errors may answer its first message). With acks, an
// NLMSG_ERROR of 0 for seq (an acknowledgement) is done too.
func scanAnswers(b []byte, seq uint32, acks bool) (bool, error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := binary.NativeEndian.Uint32(b[0:4])
		typ := binary.NativeEndian.Uint16(b[4:6])
		s := binary.NativeEndian.Uint32(b[8:12])
		if l < unix.NLMSG_HDRLEN || int(l) > len(b) {
			return true, errors.New("malformed netlink answer")
		}
		switch typ {
		case unix.NLMSG_DONE:
			if s == seq {
				return true, nil
			}
		case unix.NLMSG_ERROR:
			if l >= unix.NLMSG_HDRLEN+4 {
				errno := int32(binary.NativeEndian.Uint32(b[16:20]))
				if errno != 0 {
					return true, unix.Errno(-errno)
				}
				if acks && s == seq {
					return true, nil
				}
			}
		}
		adv := int((l + 3) &^ 3)
		if adv > len(b) {
			break
		}
		b = b[adv:]
	}
	return false, nil
}

func nlmsg(typ, flags uint16, seq uint32, body []byte) []byte {
	m := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body)+3)
	m = append(m, body...)
	for len(m)%4 != 0 {
		m = append(m, 0)
	}
	binary.NativeEndian.PutUint32(m[0:4], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(m[4:6], typ)
	binary.NativeEndian.PutUint16(m[6:8], flags)
	binary.NativeEndian.PutUint32(m[8:12], seq)
	return m
}

func setTimeout(fd int) {
	tv := unix.Timeval{Sec: 2}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

// probeTable is the name the nftables probe asks to create; the batch is
// aborted, so it never exists.
const probeTable = "picket-probe"

// probeNftables sends nf_tables a batch that creates a table and has no
// NFNL_MSG_BATCH_END: nfnetlink_rcv_batch() checks and prepares each
// message (permissions, the subsystem, the table's attributes), then,
// finding no end, aborts the transaction (ss->abort) and delivers the
// errors and acknowledgements it collected. An acknowledgement of the new
// table means throttle's own batch would be accepted; the ruleset is never
// changed. In netns when it is set (throttle's namespace).
func probeNftables(netns string) Feature {
	type result struct{ f Feature }
	ch := make(chan result, 1)
	// The socket is made in the target namespace by a thread that enters
	// it; that thread is not reused if it cannot get back.
	go func() {
		runtime.LockOSThread()
		fd, restore, err := netlinkIn(netns, unix.NETLINK_NETFILTER)
		if restore {
			runtime.UnlockOSThread()
		}
		if err != nil {
			why := err.Error()
			if errors.Is(err, unix.EPROTONOSUPPORT) {
				why += " (a kernel without nfnetlink)"
			}
			ch <- result{missing(Nftables, "NETLINK_NETFILTER socket: "+why)}
			return
		}
		defer unix.Close(fd)
		ch <- result{dryBatch(fd)}
	}()
	return (<-ch).f
}

// netlinkIn opens a netlink socket of proto in the namespace file netns
// ("" for the current one). restore is false when the calling thread
// could not go back to its namespace (it must then stay locked, and die
// with its goroutine).
func netlinkIn(netns string, proto int) (fd int, restore bool, err error) {
	if netns == "" {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return fd, true, err
	}
	target, err := os.Open(netns)
	if err != nil {
		return -1, true, fmt.Errorf("network namespace: %w", err)
	}
	defer target.Close()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return -1, true, err
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return -1, true, fmt.Errorf("enter %s: %w", netns, err)
	}
	fd, serr := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	restore = unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil
	return fd, restore, serr
}

// nfgenmsg is struct nfgenmsg: family, version, res_id (big-endian).
func nfgenmsg(family uint8, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

func dryBatch(fd int) Feature {
	setTimeout(fd)
	const (
		seqBegin = 1
		seqTable = 2
	)
	name := append([]byte(probeTable), 0)
	attr := make([]byte, 4, 4+len(name)+3)
	binary.NativeEndian.PutUint16(attr[0:2], uint16(4+len(name)))
	binary.NativeEndian.PutUint16(attr[2:4], unix.NFTA_TABLE_NAME)
	attr = append(attr, name...)
	for len(attr)%4 != 0 {
		attr = append(attr, 0)
	}
	var batch []byte
	batch = append(batch, nlmsg(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, seqBegin,
		nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES))...)
	batch = append(batch, nlmsg(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE,
		unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_ACK, seqTable,
		append(nfgenmsg(unix.NFPROTO_INET, 0), attr...))...)
	if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return missing(Nftables, "send: "+err.Error())
	}
	buf := make([]byte, 8<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return missing(Nftables, "no answer from nf_tables: "+err.Error())
		}
		done, err := scanAnswers(buf[:n], seqTable, true)
		if err != nil {
			why := err.Error()
			switch {
			case errors.Is(err, unix.EPERM):
				why += " (picket lacks CAP_NET_ADMIN in this network namespace)"
			case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOENT):
				why += " (no nf_tables in this kernel: CONFIG_NF_TABLES, module nf_tables)"
			}
			return missing(Nftables, "creating a table (never committed): "+why)
		}
		if done {
			return found(Nftables, "a table of family inet is creatable (checked by a batch that was aborted)")
		}
	}
}
