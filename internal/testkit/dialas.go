package testkit

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialAs connects to a TCP address with a socket made by uid: for a server
// test that must tell its clients apart by who they are, without starting
// a process per client. The socket is created on a thread of its own whose
// user ids (real, effective, saved, and so the fsuid the kernel stamps on
// a new socket) are uid's; the rest of the test keeps root's. The thread
// is never given back to the scheduler: it ends with the dial (a goroutine
// that exits locked takes its thread with it, runtime.LockOSThread).
//
// setresuid(2) is called directly: Go's syscall.Setresuid changes every
// thread of the process (it goes through AllThreadsSyscall).
func DialAs(ctx context.Context, uid int, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			ch <- result{nil, fmt.Errorf("setresuid %d on the dialing thread: %w", uid, e)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
