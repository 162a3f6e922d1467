package collect

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/sockiter"
	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
)

// heldSockets is what the last look of c attributed to each of pids: its
// sockets as "fd:inode", sorted, those the fd walk counted (procInfo.counted)
// left out, and how many it holds in all.
func heldSockets(c *Collector, pids []int) (map[int][]string, map[int]int) {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	out, all := map[int][]string{}, map[int]int{}
	s := c.scanner
	for _, p := range s.procs {
		if !want[p.pid] {
			continue
		}
		var l []string
		for _, r := range s.socketsOf(&p, 0) {
			l = append(l, fmt.Sprintf("%d:%d", r.fd, r.ino))
		}
		slices.Sort(l)
		out[p.pid], all[p.pid] = l, p.sockets()
	}
	return out, all
}

// TestLiveBPFSamePairs: on one live load (unix pairs, bound and unbound
// UDP, TCP, netlink, raw, a holder in a network namespace of its own), the
// BPF look attributes exactly the sockets the /proc walk does, fd by fd
// and inode by inode, to the same pids: counts that agree could still hide
// two sockets swapped between processes. That is with the fd walk told to
// list every socket; as it runs in a look, counting those the dumps list,
// what it lists of each holder is what the /proc walk finds, and it
// counts the rest.
func TestLiveBPFSamePairs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loading the BPF iterator, creating a network namespace")
	}
	if why := sockiter.Why(); why != "" {
		t.Skip(why)
	}
	var pids []int
	for _, sp := range []hold.Spec{
		{Comm: "pkt-pair-a", UnixPairs: 40, UDPBound: 15, UDPUnbound: 5, TCPPairs: 15, Netlink: 2, Raw: 1},
		{Comm: "pkt-pair-b", UnixPairs: 3, UDPUnbound: 12, TCPPairs: 30},
	} {
		pids = append(pids, testkit.StartSockets(t, sp, nil).Process.Pid)
	}
	ns := testkit.StartSockets(t, hold.Spec{Comm: "pkt-pair-ns", UnixPairs: 3, UDPBound: 4, UDPUnbound: 2, TCPPairs: 2, AnyAddr: true},
		&syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	pids = append(pids, ns.Process.Pid)

	look := func(opts Options) (map[int][]string, map[int]int) {
		t.Helper()
		c, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.Collect(context.Background(), Full)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: snapshot.CollectorProc, false: snapshot.CollectorBPF}[opts.ProcOnly]; s.Collector != want {
			t.Fatalf("collector %q (%s), want %q", s.Collector, s.CollectorReason, want)
		}
		return heldSockets(c, pids)
	}
	proc, _ := look(Options{ProcOnly: true})
	bpf, _ := look(Options{bpfListAll: true})
	if len(proc) != len(pids) {
		t.Fatalf("the /proc walk found %d of the %d holders", len(proc), len(pids))
	}
	if !maps.EqualFunc(proc, bpf, slices.Equal[[]string]) {
		for _, pid := range pids {
			if !slices.Equal(proc[pid], bpf[pid]) {
				t.Errorf("pid %d: /proc walk %d sockets %v\nBPF %d sockets %v", pid, len(proc[pid]), proc[pid], len(bpf[pid]), bpf[pid])
			}
		}
	}
	n := 0
	for _, l := range proc {
		n += len(l)
	}
	listed, all := look(Options{})
	nl := 0
	for _, pid := range pids {
		nl += len(listed[pid])
		for _, s := range listed[pid] {
			if !slices.Contains(proc[pid], s) {
				t.Errorf("pid %d: counting, the fd walk lists %s, which the /proc walk does not find", pid, s)
			}
		}
		if all[pid] != len(proc[pid]) {
			t.Errorf("pid %d: counting, the fd walk lists %d sockets and counts the rest, %d in all; the /proc walk finds %d", pid, len(listed[pid]), all[pid], len(proc[pid]))
		}
	}
	t.Logf("%d sockets of %d holders, the same fds and inodes both ways; %d of them listed by a look's fd walk, the rest counted", n, len(pids), nl)
}
