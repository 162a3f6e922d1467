package collect

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/sockiter"
)

// TestDumpSocketsNotPicketsOwn: the task_file pass runs while the
// sock_diag dumps have their netlink sockets open, and lists them among
// picket's fds; the look drops exactly those, and keeps picket's other
// sockets, a netlink one included.
func TestDumpSocketsNotPicketsOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterator")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.scanner
	if !s.bpf.ready(c) {
		t.Fatalf("the iterator did not load: %s", s.bpf.why)
	}
	// A dump's socket, held open as one under way is.
	diag, err := openSockDiag(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer diag.close()
	// Picket's own sockets: a netlink one (as the conntrack source's)
	// and a unix pair.
	own, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(own)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])

	if err := s.bpf.pass(context.Background(), 0); err != nil { // 0: every socket listed
		t.Fatal(err)
	}
	fds := func() map[int32]bool {
		m := map[int32]bool{}
		lo, n := s.bpf.socketRange(os.Getpid())
		for _, sk := range s.bpf.list[lo : lo+n] {
			m[sk.FD] = true
		}
		return m
	}
	before := fds()
	for _, fd := range []int{diag.fd, own, pair[0], pair[1]} {
		if !before[int32(fd)] {
			t.Fatalf("the pass does not list fd %d of this process: %v", fd, before)
		}
	}
	s.dropDumpSockets(&pendingDump{fds: []int{-1, diag.fd}})
	after := fds()
	if after[int32(diag.fd)] {
		t.Errorf("the dump's socket (fd %d) is still picket's", diag.fd)
	}
	for _, fd := range []int{own, pair[0], pair[1]} {
		if !after[int32(fd)] {
			t.Errorf("fd %d was dropped with the dump's", fd)
		}
	}
	if len(after) != len(before)-1 {
		t.Errorf("%d sockets before, %d after dropping one", len(before), len(after))
	}
	// No dump under way: nothing is dropped.
	s.dropDumpSockets(nil)
	if len(fds()) != len(after) {
		t.Error("dropping no dump changed the pass")
	}
}
