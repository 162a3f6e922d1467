package doctor

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/picket-guard/picket/internal/testkit"
	"github.com/picket-guard/picket/internal/testkit/hold"
	"github.com/picket-guard/picket/internal/testkit/snaptest"
)

// The live tests create what a check must see — real orphans on loopback,
// a process holding thousands of sockets, a storm under nobody — and check
// the finding's evidence for it. They compare with what they created, never
// with the rest of the machine, and undo everything in t.Cleanup.

// The test binary doubles as the socket holder of TestLiveOtherSockets
// (testkit.StartSockets) and the fork loop of TestLiveCgroupPidsLimit.
func TestMain(m *testing.M) {
	testkit.Main(m, map[string]func() int{"forkloop": func() int { forkLoopChild(os.Getenv("PICKET_DOCTOR_FORKEE")); return 0 }})
}

// TestLiveOrphans makes real orphans: a loopback server accepts and never
// reads, with a small receive buffer; each client fills its small send
// buffer until the write would block, then closes. The kernel keeps each
// client socket, with its unsent data, in FIN_WAIT1 and no file descriptor:
// an orphan (sockstat's "orphan"), probing the shut window until the server
// side is closed (then a reset frees it).
func TestLiveOrphans(t *testing.T) {
	const n = 64
	before := run(t, TCPOrphans{}, nil, snaptest.Live(t))
	if before.Severity == Unknown {
		t.Skipf("no sockstat here: %s", before.Title)
	}

	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	t.Cleanup(func() {
		// Closing the server side with unread data sends a reset: the
		// orphans go at once.
		for _, fd := range fds {
			unix.Close(fd)
		}
		unix.Close(ln)
	})
	// Accepted sockets inherit the listener's buffer sizes.
	if err := unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, n); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatal(err)
	}
	addr := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: sa.(*unix.SockaddrInet4).Port}
	chunk := make([]byte, 64<<10)
	for i := 0; i < n; i++ {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.SetsockoptInt(c, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
			unix.Close(c)
			t.Fatal(err)
		}
		if err := unix.Connect(c, addr); err != nil {
			unix.Close(c)
			t.Fatalf("connect %d: %v", i, err)
		}
		a, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err != nil {
			unix.Close(c)
			t.Fatalf("accept %d: %v", i, err)
		}
		fds = append(fds, a)
		if err := unix.SetNonblock(c, true); err != nil {
			unix.Close(c)
			t.Fatal(err)
		}
		// Fill the peer's window and our send buffer (bounded: a few MiB
		// at most even with autotuning).
		full := false
		for w := 0; w < 256 && !full; w++ {
			_, err := unix.Write(c, chunk)
			switch {
			case err == unix.EAGAIN:
				full = true
			case err == unix.EINTR:
			case err != nil:
				unix.Close(c)
				t.Fatalf("write %d: %v", i, err)
			}
		}
		if !full {
			unix.Close(c)
			t.Fatalf("client %d: the send buffer never filled", i)
		}
		unix.Close(c) // the orphan: unsent data, FIN queued behind it, no fd
	}

	after := run(t, TCPOrphans{}, nil, snaptest.Live(t))
	got, was := evInt(t, after, "orphans"), evInt(t, before, "orphans")
	t.Logf("orphans before %d, after %d (made %d); %s", was, got, n, after.Title)
	if got < n {
		t.Errorf("orphans = %d after making %d", got, n)
	}
	v, _ := after.Evidence.Get("closing_states")
	if fw1 := v.(map[string]int)["FIN_WAIT1"]; fw1 < n {
		t.Errorf("FIN_WAIT1 = %d, want at least the %d orphans made", fw1, n)
	}
	if evInt(t, after, "orphans_x4") != 4*got || evInt(t, after, "recommended_tcp_max_orphans") < 4*got {
		t.Errorf("evidence = %v", after.Evidence)
	}
}

// TestLiveOtherSockets: a child holding 3000 unix and 500 UDP sockets is
// named with its pid and exact counts among other-sockets' holders.
func TestLiveOtherSockets(t *testing.T) {
	const pairs, udp = 1500, 500
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Max < 2*pairs+udp+64 {
		t.Skipf("hard RLIMIT_NOFILE %d is below the %d fds the child needs", rl.Max, 2*pairs+udp+64)
	}
	cmd := testkit.StartSockets(t, hold.Spec{Comm: "pkt-doc-sockets", UnixPairs: pairs, UDPBound: udp}, nil)
	pid := cmd.Process.Pid

	th := DefaultThresholds()
	th.Top = 100000 // every holder: whatever else runs here, the child is listed
	f := runOne(OtherSockets{}, Input{Cur: snaptest.Live(t), Thresholds: th})
	v, _ := f.Evidence.Get("top_holders")
	var row *HolderRow
	for _, h := range v.(HolderRows) {
		if h.PID == pid {
			row = &h
		}
	}
	if row == nil {
		t.Fatalf("pid %d not among the holders: %s", pid, f.Title)
	}
	if row.Unix != 2*pairs || row.UDP != udp || row.NonTCP != 2*pairs+udp || row.Comm != "pkt-doc-sockets" {
		t.Errorf("child row = %+v, want %d unix and %d udp", *row, 2*pairs, udp)
	}
	// The verdict follows from the evidence: outsized when the child holds
	// half of all non-TCP sockets here.
	flagged := false
	fv, _ := f.Evidence.Get("flagged")
	for _, h := range fv.(HolderRows) {
		flagged = flagged || h.PID == pid
	}
	if want := row.SharePercent >= th.HolderMinPercent; flagged != want {
		t.Errorf("flagged = %v with a share of %.1f%%", flagged, row.SharePercent)
	}
	if flagged && (f.Severity != Warning || !strings.Contains(strings.Join(f.Fix, "\n"), fmt.Sprintf("'pid=%d,'", pid))) {
		t.Errorf("flagged but %s, fix %q", f.Severity, f.Fix)
	}
}

// TestLiveStorm: 60 processes of one command under nobody are a storm,
// named with their count, user and parent (this test).
func TestLiveStorm(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the storm runs under uid 65534 (nobody) via SysProcAttr.Credential")
	}
	const n = 60
	testkit.Sleepers(t, "pkt-doc-storm", n, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})

	// The share threshold depends on how many other processes run here;
	// the count threshold is the one this test controls.
	th := DefaultThresholds()
	th.StormMinCount, th.StormMinPercent = n, 0
	f := runOne(ProcessStorm{}, Input{Cur: snaptest.Live(t), Thresholds: th})
	if f.Severity < Warning {
		t.Errorf("severity %s with a storm of %d", f.Severity, n)
	}
	v, _ := f.Evidence.Get("storms")
	var row *GroupRow
	rank := 0
	for i, g := range v.(GroupRows) {
		if g.Comm == "pkt-doc-storm" {
			row, rank = &g, i
		}
	}
	if row == nil {
		t.Fatalf("the storm is not among %v", v)
	}
	if row.Count != n || row.UID != 65534 || row.ParentPID != os.Getpid() || row.FromParent != n || row.StartedLastMinute != n {
		t.Errorf("storm row = %+v, want %d of uid 65534 forked by pid %d", *row, n, os.Getpid())
	}
	if !strings.Contains(f.Explanation, fmt.Sprintf("nobody × pkt-doc-storm: %d processes", n)) {
		t.Errorf("explanation does not name the storm: %s", f.Explanation)
	}
	// The fix lists the children of the three largest storms' parents;
	// larger ones may run here besides this test's.
	if rank < 3 && !strings.Contains(strings.Join(f.Fix, "\n"), fmt.Sprintf("--ppid %d ", os.Getpid())) {
		t.Errorf("fix does not list the parent's children: %q", f.Fix)
	}
}
