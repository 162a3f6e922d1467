package sockiter

import (
	"context"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestListSeesOwnSockets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF iterator needs root (CAP_BPF and CAP_PERFMON)")
	}
	it, err := Load(Options{})
	if err != nil {
		t.Skipf("this host cannot run the iterator: %v", err)
	}
	defer it.Close()
	// Go listens with MPTCP where the kernel has it (Go 1.24): the
	// socket's protocol says which it got.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	socks, counts, err := it.List(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Since 6.2 the stat of fd/ counts open fds (proc_fd_getattr): the
	// iterator's count is the same, nothing having opened or closed one
	// since but the pass's own fd, open while it ran.
	var fdst unix.Stat_t
	if err := unix.Stat("/proc/self/fd", &fdst); err != nil {
		t.Fatal(err)
	}
	var own int32 = -1
	for _, c := range counts {
		if c.PID == int32(os.Getpid()) {
			own = c.N
		}
	}
	if fdst.Size > 0 && int64(own) != fdst.Size+1 {
		t.Errorf("the iterator counts %d fds of its own process, the stat of /proc/self/fd %d, and one more for the pass", own, fdst.Size)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		t.Fatal(err)
	}
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	var lst unix.Stat_t
	if err := unix.Fstat(int(lf.Fd()), &lst); err != nil {
		t.Fatal(err)
	}
	var gotUnix, gotTCP bool
	for _, s := range socks {
		if s.PID != int32(os.Getpid()) {
			continue
		}
		switch s.Inode {
		case st.Ino:
			gotUnix = s.FD == int32(fds[0]) && s.Family == unix.AF_UNIX && s.Type == unix.SOCK_DGRAM
			if !gotUnix {
				t.Errorf("unix socket listed as %+v", s)
			}
		case lst.Ino:
			if s.Family == unix.AF_INET && s.Type == unix.SOCK_STREAM && (s.Protocol == unix.IPPROTO_TCP || s.Protocol == unix.IPPROTO_MPTCP) && s.State == 10 /* TCP_LISTEN */ {
				gotTCP = true
			} else {
				t.Errorf("listener listed as %+v", s)
			}
		}
	}
	if !gotUnix || !gotTCP {
		t.Errorf("own sockets not listed (unix %v, tcp listener %v) among %d", gotUnix, gotTCP, len(socks))
	}
}
