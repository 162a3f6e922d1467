package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// timeWait keeps at least n TCP sockets in TIME_WAIT on the loopback: the
// state a busy web or mail server's /proc/net/tcp is full of (node_exporter
// reads the whole table and crawls there). A TIME_WAIT socket has no fd,
// so it is no process's, but every table dump (ss, sock_diag, /proc/net/tcp)
// lists it.
type timeWait struct {
	lns []net.Listener
	n   int
}

// twPerListener keeps the ephemeral ports toward one listener sparse.
// connect(2) takes a port from a random offset and, on loopback, where
// tcp_tw_reuse is on by default, recycles a TIME_WAIT socket of the same
// four-tuple it lands on (__inet_hash_connect, tcp_twsk_unique): with
// most ports toward a listener in TIME_WAIT, new connections only replace
// old ones. With 2,000 of the 14,116 ports connect uses (every other port of
// ip_local_port_range) taken per listener, few are.
const twPerListener = 2000

func newTimeWait(n int) (*timeWait, error) {
	tw := &timeWait{n: n}
	for i := 0; i < (n+twPerListener-1)/twPerListener+1; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			tw.close()
			return nil, err
		}
		tw.lns = append(tw.lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				// The client closes first and keeps the TIME_WAIT; this
				// side reads the FIN and closes (LAST_ACK, then gone).
				go func() {
					var b [1]byte
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					c.Read(b[:])
					c.Close()
				}()
			}
		}()
	}
	return tw, nil
}

func (tw *timeWait) close() {
	for _, ln := range tw.lns {
		ln.Close()
	}
}

// topUp makes connections until sockstat counts n sockets in TIME_WAIT
// (they last 60 s, TCP_TIMEWAIT_LEN), and returns how many there are. A
// client socket reaches TIME_WAIT only once the accepting side has read
// the FIN and closed, so the count lags the dials: it is read again after
// a pause, and the rest dialled, a few times.
func (tw *timeWait) topUp(ctx context.Context) (int, error) {
	have := sockstatTW()
	for pass := 0; pass < 5 && have < tw.n && ctx.Err() == nil; pass++ {
		if err := tw.dial(ctx, tw.n-have); err != nil {
			return have, err
		}
		for wait := 0; wait < 10; wait++ {
			time.Sleep(200 * time.Millisecond)
			if have = sockstatTW(); have >= tw.n {
				break
			}
		}
	}
	return have, nil
}

// dial opens and closes n connections to the listeners, 8 at a time.
func (tw *timeWait) dial(ctx context.Context, n int) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	per := (n + 7) / 8
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; i < per && ctx.Err() == nil; i++ {
				ln := tw.lns[(w*per+i)%len(tw.lns)]
				c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// sockstatTW is the "tw" count of /proc/net/sockstat's TCP line.
func sockstatTW() int {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "TCP:" {
			for i := 1; i+1 < len(f); i += 2 {
				if f[i] == "tw" {
					n, _ := strconv.Atoi(f[i+1])
					return n
				}
			}
		}
	}
	return 0
}
