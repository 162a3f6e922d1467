package act

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/collect"
	"github.com/picket-guard/picket/internal/procid"
	"github.com/picket-guard/picket/internal/snapshot"
	"github.com/picket-guard/picket/internal/testkit"
)

// TestReaderAgreesWithCollector: the collector's walk (its own system
// calls on reused buffers, the owner of /proc/PID/fd, procid's parsers) and
// the runner's reader (procid's FS: the stat and status files) see the same
// identity of every live process: pid, parent, uid, comm, start time and
// kernel-thread flag, in full and light looks. A kill picked from a
// snapshot is carried out only when the runner recognises the process by
// those fields, so they must agree, even for comms a process chose to break
// a parser: spaces, parentheses, a newline.
func TestReaderAgreesWithCollector(t *testing.T) {
	hostile := []string{"pkt a b", "pkt) S 1 (x", "pkt\n1 (y) R 0", "(pkt)", "pkt)"}
	bin := testkit.NamedBin(t, hostile...)
	uid := -1
	if os.Geteuid() == 0 {
		uid = nobody
	} else {
		t.Log("not root: the children run as the test's user, and none changes uid")
	}
	want := map[int]string{} // pid -> comm
	for _, n := range hostile {
		want[spawn(t, uid, nil, filepath.Join(bin, n), "600").pid] = n
	}
	if os.Geteuid() == 0 {
		const comm = "pkt (nodump)"
		c := spawn(t, -1, []string{testkit.HelperEnv("dropuid"), "PICKET_ACT_UID=65534", "PICKET_ACT_COMM=" + comm}, os.Args[0])
		want[c.pid] = comm
	}
	r := newRunner(t, Options{DryRun: true})
	if !waitFor(5*time.Second, func() bool {
		for pid, comm := range want {
			if p, err := r.procs.read(pid); err != nil || p.comm != comm || (uid >= 0 && p.uid != nobody) {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the children did not take their names and users")
	}
	for pid, comm := range want {
		var st unix.Stat_t
		if comm == "pkt (nodump)" && unix.Stat(fmt.Sprintf("/proc/%d/fd", pid), &st) == nil && st.Uid != 0 {
			t.Logf("pid %d is dumpable here (fs.suid_dumpable): the walk takes its uid from the owner of fd/, not status", pid)
		}
	}
	btime, err := r.procs.bootTime()
	if err != nil {
		t.Fatal(err)
	}

	c, err := collect.New(collect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// disagree compares one snapshot with the reader, process by process:
	// pid -> what differs. A process that exited in between is skipped.
	disagree := func(s *snapshot.Snapshot) (map[int]string, int, int) {
		out := map[int]string{}
		compared, kthreads := 0, 0
		for _, sp := range s.Processes.List {
			p, err := r.procs.read(sp.PID)
			if err != nil {
				continue
			}
			compared++
			if sp.KernelThread {
				kthreads++
			}
			comm := sp.Comm
			if sp.KernelThread && p.kthread && strings.HasPrefix(sp.Comm, "kworker/") && strings.HasPrefix(p.comm, "kworker/") {
				// A workqueue worker renames itself after the work it
				// takes (wq_worker_comm, kernel/workqueue.c): its comm
				// may change between any two reads.
				comm = p.comm
			}
			got := fmt.Sprintf("ppid %d uid %d comm %q start %v kthread %v", sp.PPID, sp.UID, comm, sp.StartTime, sp.KernelThread)
			read := fmt.Sprintf("ppid %d uid %d comm %q start %v kthread %v", p.ppid, p.uid, p.comm, procid.StartTime(btime, p.start), p.kthread)
			if got != read || p.pid != sp.PID {
				out[sp.PID] = fmt.Sprintf("snapshot: %s\n\treader:   %s", got, read)
			}
		}
		return out, compared, kthreads
	}
	for _, depth := range []collect.Depth{collect.Full, collect.Light} {
		s, err := c.Collect(context.Background(), depth)
		if s == nil {
			t.Fatalf("collect: %v", err)
		}
		diff, compared, kthreads := disagree(s)
		for pid, comm := range want {
			sp := findProcess(s, pid)
			if sp == nil || sp.Comm != comm {
				t.Errorf("depth %d: child %d (%q) missing from the snapshot: %+v", depth, pid, comm, sp)
			} else if d, ok := diff[pid]; ok {
				t.Errorf("depth %d: child %d %q:\n\t%s", depth, pid, comm, d)
			}
		}
		// Another process of the host may exec or change user between
		// the two reads: a disagreement counts when a second look sees it
		// again.
		if len(diff) > 0 {
			s2, _ := c.Collect(context.Background(), depth)
			again, _, _ := disagree(s2)
			for pid, d := range diff {
				if _, ok := again[pid]; ok && want[pid] == "" {
					t.Errorf("depth %d: pid %d:\n\t%s", depth, pid, d)
				}
			}
		}
		if compared < len(want) {
			t.Errorf("depth %d: only %d processes compared", depth, compared)
		}
		if findProcess(s, 2) != nil && findProcess(s, 2).KernelThread && kthreads == 0 {
			t.Errorf("depth %d: kthreadd is in the snapshot but no kernel thread was compared", depth)
		}
		t.Logf("depth %d: %d processes compared (%d kernel threads), %d disagreed once", depth, compared, kthreads, len(diff))
	}
}

func findProcess(s *snapshot.Snapshot, pid int) *snapshot.Process {
	for i := range s.Processes.List {
		if s.Processes.List[i].PID == pid {
			return &s.Processes.List[i]
		}
	}
	return nil
}
