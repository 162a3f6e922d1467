package collect_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/hostcap"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
)

// exiter is a helper process that opens a few sockets, says "ready", and
// when its stdin closes exits within 0–300 ms: a process that is there
// when a look starts and gone before it ends.
func exiter() int {
	if fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0); err == nil {
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
	}
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err == nil {
		defer unix.Close(fd)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	return 0
}

// duringExits starts n exiters, waits until each holds its sockets, lets
// them all go and runs look while they exit. It returns their pids.
func duringExits(t *testing.T, n int, look func()) map[int]bool {
	t.Helper()
	pids := map[int]bool{}
	var stdins []io.Closer
	var cmds []*exec.Cmd
	for range n {
		c := testkit.HelperCommand("exiter")
		in, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "ready\n" {
			t.Fatalf("exiter: %q %v", l, err)
		}
		pids[c.Process.Pid] = true
		stdins, cmds = append(stdins, in), append(cmds, c)
	}
	for _, in := range stdins {
		in.Close()
	}
	look()
	for _, c := range cmds {
		c.Wait()
	}
	return pids
}

// TestLiveBPFMatchesProc holds one live load (unix pairs, bound and unbound
// UDP, TCP pairs and a listener, netlink, raw, a holder in another network
// namespace, processes exiting while the looks run) and takes a look with
// the BPF iterator and one with the /proc walk: both must attribute the
// same sockets, of the same kinds, to the same processes. Only a process
// that exits during the looks may differ.
func TestLiveBPFMatchesProc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterator, creating a network namespace")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	specs := []hold.Spec{
		{Comm: "pkt-ref-a", UnixPairs: 60, UDPBound: 25, UDPUnbound: 7, TCPPairs: 20, Netlink: 2, Raw: 1},
		{Comm: "pkt-ref-b", UnixPairs: 5, UDPUnbound: 30},
		{Comm: "pkt-ref-c", TCPPairs: 40},
	}
	var holders []int
	for _, sp := range specs {
		holders = append(holders, testkit.StartSockets(t, sp, nil).Process.Pid)
	}
	ns := testkit.StartSockets(t, hold.Spec{Comm: "pkt-ref-ns", UnixPairs: 3, UDPBound: 4, UDPUnbound: 2, TCPPairs: 1, AnyAddr: true},
		&syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	holders = append(holders, ns.Process.Pid)

	look := func(opts collect.Options) *snapshot.Snapshot {
		c, err := collect.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.Collect(context.Background(), collect.Full)
		if err != nil {
			t.Fatalf("look (%+v): %v", opts, err)
		}
		return s
	}
	// Each look runs while 20 processes holding sockets exit.
	var bpf, proc *snapshot.Snapshot
	exiters := duringExits(t, 20, func() { bpf = look(collect.Options{}) })
	maps.Copy(exiters, duringExits(t, 20, func() { proc = look(collect.Options{ProcOnly: true}) }))
	if bpf.Collector != snapshot.CollectorBPF {
		t.Fatalf("the iterator did not run: collector %q, %s", bpf.Collector, bpf.CollectorReason)
	}
	if proc.Collector != snapshot.CollectorProc || proc.CollectorReason == "" {
		t.Errorf("proc look says collector %q (%q)", proc.Collector, proc.CollectorReason)
	}

	// Every holder of the load, and every process present in both looks
	// and unchanged between them, has the same sockets both ways. Other
	// processes of this host may open and close sockets between the two
	// looks; the load's do not.
	byPID := func(s *snapshot.Snapshot) map[int]snapshot.Holder {
		m := map[int]snapshot.Holder{}
		for _, h := range s.Sockets.Processes {
			m[h.PID] = h
		}
		return m
	}
	hb, hp := byPID(bpf), byPID(proc)
	for i, pid := range holders {
		b, okb := hb[pid]
		p, okp := hp[pid]
		if !okb || !okp {
			t.Errorf("holder %d (%s) missing: bpf %v, proc %v", pid, b.Comm, okb, okp)
			continue
		}
		if b.SocketCounts != p.SocketCounts || b.Total != p.Total || b.FDs != p.FDs || b.UID != p.UID {
			t.Errorf("holder %d: bpf %+v, proc %+v", pid, b, p)
		}
		if i < len(specs) {
			if want := specs[i].Want(); b.SocketCounts != want {
				t.Errorf("holder %d (%s): %+v, want %+v", pid, specs[i].Comm, b.SocketCounts, want)
			}
		}
	}
	if want := (snapshot.SocketCounts{TCP: 1, UDP: 6, Unix: 6}); hb[ns.Process.Pid].SocketCounts != want {
		t.Errorf("holder in its own netns: %+v, want %+v", hb[ns.Process.Pid].SocketCounts, want)
	}
	seen := 0
	for pid, h := range hb {
		if exiters[pid] {
			seen++
			continue
		}
		if p, ok := hp[pid]; ok && p.Comm == h.Comm && p.SocketCounts != h.SocketCounts && isLoad(h.Comm) {
			t.Errorf("pid %d (%s): bpf %+v, proc %+v", pid, h.Comm, h.SocketCounts, p.SocketCounts)
		}
	}
	t.Logf("%d holders each way; %d exiting processes, %d of them seen holding sockets by the BPF look",
		len(hb), len(exiters), seen)
}

func isLoad(comm string) bool { return len(comm) > 8 && comm[:8] == "pkt-ref-" }

// TestLiveBPFFallback: where the iterator may not run, a full look walks
// /proc and says why; a light look and a fixture tree say nothing.
func TestLiveBPFFallback(t *testing.T) {
	host := hostcap.Probe(hostcap.Options{})
	for _, c := range []struct {
		name string
		opts collect.Options
		want string // in the reason
	}{
		{"no BTF", collect.Options{Host: host.Without(hostcap.BTF)}, "BTF"},
		{"no privilege", collect.Options{Host: host.WithoutCaps(hostcap.CapSysAdmin, hostcap.CapBPF, hostcap.CapPerfmon)}, "CAP_BPF"},
		{"bpf_iter refused", collect.Options{Host: host.Without(hostcap.BPFIter)}, "bpf_iter"},
		{"an idle host for a one-shot", collect.Options{BPFMinFiles: 1 << 30}, "files open"},
		{"asked for", collect.Options{ProcOnly: true}, "asked for"},
	} {
		t.Run(c.name, func(t *testing.T) {
			col, err := collect.New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer col.Close()
			s, _ := col.Collect(context.Background(), collect.Full)
			if s.Collector != snapshot.CollectorProc || !strings.Contains(s.CollectorReason, c.want) {
				t.Errorf("collector %q, reason %q; want proc, a reason with %q", s.Collector, s.CollectorReason, c.want)
			}
			l, _ := col.Collect(context.Background(), collect.Light)
			if l.Collector != "" || l.CollectorReason != "" {
				t.Errorf("light look: collector %q (%q)", l.Collector, l.CollectorReason)
			}
		})
	}
}
